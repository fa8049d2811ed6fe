"""The in-process executor: load each dataset once, fit each run, store one record per run."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dcbench import runinfo
from dcbench.datasets import ImageDataset
from dcbench.errors import UsageError
from dcbench.methods import METHODS
from dcbench.metrics import evaluate
from dcbench.plan import Run
from dcbench.pretrain_cache import PretrainCache, save_atomically
from dcbench.store import ResultsStore


def pending_runs(plan: Iterable[Run], store: ResultsStore, *, force: bool = False) -> list[Run]:
    """The runs not yet done. A finished record with a different config is an error, not a skip."""
    todo = []
    for run in plan:
        done = store.get(run.method, run.dataset, run.seed)
        if force or done is None or done.get("status") != "ok":
            todo.append(run)
        elif done.get("config") != run.config:
            changed = sorted(
                k
                for k in set(run.config) | set(done.get("config", {}))
                if run.config.get(k) != done.get("config", {}).get(k)
            )
            raise UsageError(
                f"{store.out_dir} already holds {run.label} with a different config "
                f"(changed: {', '.join(changed)}); use --force to replace it or another --out"
            )
    return todo


def execute(
    runs: list[Run],
    data: dict[str, ImageDataset],
    store: ResultsStore,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Fit every run in order, writing each record as it finishes. A failing run is recorded
    as failed and the others go on; Ctrl-C stops at once, keeping every record written so far."""
    records = []
    cache = PretrainCache(store.out_dir / "pretrained")
    with tqdm(total=len(runs), disable=not progress, unit="run", dynamic_ncols=True) as bar:
        for run in runs:
            bar.set_description(run.label)
            model_file = (
                store.out_dir
                / "models"
                / (store.record_path(run.method, run.dataset, run.seed).stem + ".pt")
            )
            record = fit_one(run, data[run.dataset], device, cache, model_file)
            store.put(record)
            records.append(record)
            bar.update()
            if record["status"] == "ok":
                bar.set_postfix(acc=f"{record['metrics']['acc']:.3f}")
            else:
                tqdm.write(f"FAILED {run.label}: {record['error']}")
    return records


def fit_one(
    run: Run,
    data: ImageDataset,
    device: str,
    cache: PretrainCache | None = None,
    model_file: Path | None = None,
) -> dict[str, Any]:
    spec = METHODS.get(run.method)
    record: dict[str, Any] = {
        "method": run.method,
        "dataset": run.dataset,
        "seed": run.seed,
        "config": run.config,
        "device": runinfo.device_name(device),
        "machine": runinfo.machine(),
        "versions": runinfo.versions(),
        "git_commit": runinfo.git_commit(),
        "n_samples": data.n_samples,
        "started_at": _now(),
    }
    start = time.perf_counter()
    try:
        config = dict(run.config)
        if "device" in config:
            config["device"] = device
        estimator = spec.build(config)
        if hasattr(estimator, "pretrain_config") and cache is not None:
            # pretraining is shared by the methods on the same backbone: timed and recorded apart
            pretrained, facts = cache.get_or_pretrain(estimator, data.x, run.dataset, run.seed)
            record.update(facts, pretrain_seconds=pretrained.get("seconds"))
            start = time.perf_counter()
            estimator.fit(data.x, data.y, pretrained=pretrained)
        else:
            estimator.fit(data.x, data.y)
        record.update(status="ok", metrics=evaluate(data.y, estimator.labels_))
        if hasattr(estimator, "history_"):
            record["history"] = estimator.history_
        if model_file is not None:  # for reports (t-SNE, predictions) without retraining
            save_fitted(estimator, model_file)
            record["model_file"] = str(model_file)
    except Exception as exc:
        record.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}".splitlines()[0],
            traceback=traceback.format_exc(),
        )
    record["seconds"] = time.perf_counter() - start
    record["finished_at"] = _now()
    return record


def save_fitted(estimator, path: Path) -> None:
    """Labels and centers of any estimator, plus the autoencoder's weights for deep ones."""
    fitted = {
        "labels": estimator.labels_,
        "cluster_centers": getattr(estimator, "cluster_centers_", None),
    }
    if hasattr(estimator, "autoencoder_"):
        fitted["model"] = {
            k: v.detach().cpu() for k, v in estimator.autoencoder_.state_dict().items()
        }
    save_atomically(fitted, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
