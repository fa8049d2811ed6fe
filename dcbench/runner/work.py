"""Units of work: a pretraining plus the runs that share it, fitted by a worker anywhere.

A worker (this process, a local process or a Ray task) runs ``run_unit`` and returns every
result to the driver, which alone writes the results store: workers need no shared disk.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from dcbench.core import runinfo
from dcbench.core.fileio import load_torch, save_torch
from dcbench.core.metrics import evaluate
from dcbench.datasets import ImageDataset
from dcbench.methods import METHODS, combination
from dcbench.methods.training import use_exact_cuda_numerics
from dcbench.runner.plan import Run
from dcbench.runner.pretrain_cache import PretrainCache, embedding_key, pretrain_key


@dataclass(frozen=True)
class Unit:
    runs: tuple[Run, ...]
    pretrain_key: str | None = None  # the pretraining the runs share, if they are deep

    @property
    def dataset(self) -> str:
        return self.runs[0].dataset


@dataclass
class UnitResult:
    records: list[dict[str, Any]]
    fitted: list[dict[str, Any] | None]  # per record: labels, centers, weights (or None)
    pretrained: dict[str, Any] | None = None  # a state pretrained by this unit, to be cached
    # a run failed with a CUDA error: the process's CUDA context may be unusable from now on
    # (errors such as an illegal memory access are sticky), so its worker should be replaced
    device_error: bool = False
    parts: list[UnitResult] | None = None  # a StackedUnit's results: one per seed's unit


# How CUDA errors read (torch raises them as torch.AcceleratorError or RuntimeError); an out of
# memory error is not among them: the context survives it.
DEVICE_ERRORS = ("CUDA error", "CUDNN_STATUS", "CUBLAS_STATUS", "cuDNN error", "AcceleratorError")


def is_device_error(error: str) -> bool:
    """Whether a record's ``error`` (``Type: message``) is a CUDA error that spoils the
    process (not an out-of-memory error)."""
    return any(marker in error for marker in DEVICE_ERRORS) and "out of memory" not in error


def make_units(runs: list[Run], n_samples: dict[str, int], device: str = "cpu") -> list[Unit]:
    """Group runs that share a pretraining (same backbone, dataset, seed, pretraining config
    and device type) into one unit, keeping the plan's order; every other run is a unit of its
    own."""
    groups: dict[str, list[Run]] = {}
    keys: dict[str, str | None] = {}
    for run in runs:
        key = pretrain_key_of(run, n_samples[run.dataset], device)
        group = key or f"alone:{run.method}:{run.dataset}:{run.seed}"
        groups.setdefault(group, []).append(run)
        keys[group] = key
    return [Unit(tuple(group_runs), keys[g]) for g, group_runs in groups.items()]


def pretrain_key_of(run: Run, n_samples: int, device: str = "cpu") -> str | None:
    """The cache key of a run's pretraining. The device type is part of it: weights trained
    on a GPU round differently from the CPU's, and are never silently reused for them."""
    estimator = method_spec(run.method).build(run.config)
    if not hasattr(estimator, "pretrain_config"):
        return None
    config = {**estimator.pretrain_config(), "device": runinfo.device_type(device)}
    return pretrain_key(run.dataset, n_samples, run.seed, config)


def method_spec(name: str):
    """A registered method, or a BACKBONE:LOSS combination (registered on first use, also in
    a fresh worker process)."""
    return combination(name) if ":" in name else METHODS.get(name)


def run_unit(
    unit: Unit,
    data: ImageDataset,
    device: str,
    checkpoint_dir: str | None = None,
    pretrained: dict[str, Any] | None = None,
    threads: int | None = None,
    after_each_run: Callable[[], None] | None = None,
) -> UnitResult:
    """Fit every run of ``unit``, pretraining at most once (resuming from a checkpoint in
    ``checkpoint_dir`` if one is there). Never raises for a failing run: it is recorded.
    ``after_each_run``: called as each run ends (the in-process backend stores it there).
    A ``StackedUnit`` (seeds trained together) goes to ``stacking.run_stacked_unit``."""
    from dcbench.runner.stacking import StackedUnit, run_stacked_unit

    if isinstance(unit, StackedUnit):
        return run_stacked_unit(unit, data, device, checkpoint_dir, pretrained, threads)
    with worker_settings(device, threads) as scratch:
        cache = PretrainCache(checkpoint_dir or scratch)
        shared = _SharedPretraining(cache, unit.pretrain_key, data, pretrained,
                                    keep=checkpoint_dir is not None)  # fmt: skip
        results = []
        for run in unit.runs:
            results.append(fit_one(run, data, device, shared))
            if after_each_run is not None:
                after_each_run()
    return unit_result(results, shared.new_state)


def unit_result(results: list[tuple[dict, dict | None]], pretrained) -> UnitResult:
    """A unit's result from its runs' (record, fitted state) pairs and its new pretraining."""
    records = [r for r, _ in results]
    return UnitResult(
        records=records,
        fitted=[f for _, f in results],
        pretrained=pretrained,
        device_error=any(is_device_error(r.get("error", "")) for r in records),
    )


@contextlib.contextmanager
def worker_settings(device: str, threads: int | None):
    """A unit's process settings (threads, CUDA numerics); yields a scratch folder."""
    if threads:
        torch.set_num_threads(threads)
    if torch.device(device).type == "cuda":
        use_exact_cuda_numerics()
    # torch's setting does not reach scikit-learn's OpenMP (k-means) or BLAS: without this a
    # "1-thread" run's k-means used every core (two workers on two cores oversubscribe them),
    # and its OpenMP reduction order varied with the thread count
    with (
        threadpool_limits(limits=threads or torch.get_num_threads()),
        tempfile.TemporaryDirectory(prefix="dcbench-") as scratch,
    ):
        yield scratch


class _SharedPretraining:
    """The unit's pretrained state: given, found in the cache folder, or trained once here.
    A pretraining that fails fails every run of the unit, without being retried per run.
    ``keep``: the cache folder outlives the unit, so a state trained here is saved there at
    once: the driver can store the unit's finished runs before the unit ends, and a unit
    interrupted later resumes from it."""

    def __init__(self, cache: PretrainCache, key, data: ImageDataset, given, keep=False):
        self.cache, self.key, self.data, self.keep = cache, key, data, keep
        self.state = given
        self.new_state = None
        self.fresh = False  # trained for this unit (stacked), not yet claimed by a run
        self.error: BaseException | None = None

    def get(self, estimator) -> tuple[dict[str, Any], bool]:
        """The state, and whether it was reused (False only for the run that trained it)."""
        if self.error is not None:
            raise self.error
        if self.state is None:
            self.state = self.cache.load(self.key)
        if self.state is None:
            try:
                self.state = self.new_state = self.cache.pretrain(estimator, self.data.x, self.key)
            except Exception as exc:
                self.error = exc
                raise
            if self.keep:
                self._save_now()
            return self.state, False
        fresh, self.fresh = self.fresh, False
        return self.state, not fresh

    def _save_now(self) -> None:
        """Only a shortcut (the driver saves the state with the unit): a file that cannot be
        written is a warning, never a failed run."""
        try:
            self.cache.save(self.key, self.state)
        except OSError as exc:
            warnings.warn(f"could not save {self.cache.path(self.key).name} ({exc}): the "
                          "unit's runs are stored when it ends", stacklevel=3)  # fmt: skip


def fit_one(
    run: Run, data: ImageDataset, device: str, shared: _SharedPretraining | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One run: its record (status ok or failed, with the reason) and its fitted state."""
    spec = method_spec(run.method)
    record = new_record(run, data, device)
    estimator, error = None, None
    checkpoint = finished = None
    start = time.perf_counter()
    try:
        estimator = spec.build(config_on(run, device))
        if shared is not None and shared.key is not None:
            # pretraining is shared by the methods on the same backbone: timed and recorded apart
            pretrained, reused = shared.get(estimator)
            finished = shared.cache.finished_run(run_name(run), run.config, data.n_samples)
            if (kept := finished_result(finished, run, shared.key)) is not None:
                # done before its unit was interrupted; the pretraining above (from the cache,
                # or its final checkpoint) is still stored with the unit: the record points to it
                return kept
            record.update(pretrain_reused=reused, pretrain_seconds=pretrained.get("seconds"))
            start = time.perf_counter()
            checkpoint = shared.cache.fit_checkpoint(run_name(run), run.config, data.n_samples)
            estimator.fit(data.x, data.y, pretrained=pretrained, checkpoint=checkpoint)
        elif shared is not None and hasattr(estimator, "embedding_state"):
            record["embedding_reused"] = fit_sharing_embedding(estimator, run, data, shared.cache)
        else:
            estimator.fit(data.x, data.y)
    except Exception as exc:
        error = exc
    seconds = time.perf_counter() - start
    if checkpoint is not None and checkpoint.earlier_seconds:
        # resumed: the earlier attempts' time (up to their last checkpoint) counts too
        seconds += checkpoint.earlier_seconds
        record["resumed_after_seconds"] = checkpoint.earlier_seconds
    record, fitted = finish_record(record, data, estimator if error is None else error, seconds)
    if checkpoint is not None and record["status"] == "ok":
        keep_finished(finished, record, fitted, shared.key)
        checkpoint.discard()
    return record, fitted


def keep_finished(path: Path, record: dict, fitted: dict | None, pretrain_key: str) -> None:
    """Keep a finished run's result at ``path`` until the driver has stored its unit
    (``store_unit`` discards it). Only a shortcut for an interrupted unit: a file that cannot
    be written is a warning, never a failed run."""
    try:
        save_torch({"record": record, "fitted": fitted, "pretrain_key": pretrain_key}, path)
    except OSError as exc:
        warnings.warn(f"could not keep {path.name} ({exc}): if this unit is interrupted "
                      "before it is stored, the run is fitted again", stacklevel=2)  # fmt: skip


def finished_result(path: Path, run: Run, pretrain_key: str) -> tuple[dict, dict | None] | None:
    """The record and fitted state kept at ``path``, if they are this run's: the same
    protocol and config, fitted from the same pretraining (whose key names the device type)."""
    kept = load_torch(path)
    if not isinstance(kept, dict) or kept.get("pretrain_key") != pretrain_key:
        return None  # none, another run's, or a format this code does not know: refit
    record = kept.get("record")
    if not isinstance(record, dict) or "fitted" not in kept:
        return None
    if (record.get("protocol"), record.get("config")) != (run.protocol, run.config):
        return None
    return record, kept["fitted"]


def run_name(run: Run) -> str:
    """A run's name in the cache folder's checkpoints; ':' as '-', not safe_name's '+': the
    names of checkpoints already on disk."""
    return f"{run.method.replace(':', '-')}__{run.dataset}__seed{run.seed}"


def fit_sharing_embedding(estimator, run: Run, data: ImageDataset, cache: PretrainCache) -> bool:
    """Fit a spectral method (SEC, spectral) whose embedding does not depend on the seed:
    the first seed's goes to the cache folder, later seeds run only their k-means on it (the
    same labels as a full fit). Returns whether an embedding was reused."""
    key = embedding_key(run.method, run.dataset, data.n_samples, run.config)
    state = cache.load_embedding(key)
    estimator.fit(data.x, data.y, embedding=state)
    if state is None:
        cache.save_embedding(key, estimator.embedding_state())
    return state is not None


def new_record(run: Run, data: ImageDataset, device: str) -> dict[str, Any]:
    """A run's record before it runs: what, where, with which software."""
    return {
        "method": run.method,
        "dataset": run.dataset,
        "seed": run.seed,
        "protocol": run.protocol,
        "config": run.config,
        "device": runinfo.device_name(device),
        "threads": torch.get_num_threads(),
        "machine": runinfo.machine(),
        **runinfo.cpu_features(),
        "versions": runinfo.versions(),
        "git_commit": runinfo.git_commit(),
        "n_samples": data.n_samples,
        "started_at": _now(),
    }


def finish_record(
    record: dict[str, Any], data: ImageDataset, outcome, seconds: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The record of a fitted estimator (status ok, metrics, history) or of the exception
    that stopped the run (status failed, the reason), and the estimator's fitted state."""
    fitted = None
    try:
        if isinstance(outcome, BaseException):
            raise outcome
        record.update(status="ok", metrics=evaluate(data.y, outcome.labels_))
        if hasattr(outcome, "history_"):
            record["history"] = outcome.history_
        if hasattr(outcome, "seconds_"):
            record["seconds_by_part"] = outcome.seconds_
        fitted = fitted_state(outcome)
    except Exception as exc:
        record.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}".splitlines()[0],
            traceback=traceback.format_exc(),
        )
    record["seconds"] = seconds
    record["finished_at"] = _now()
    return record, fitted


def config_on(run: Run, device: str) -> dict[str, Any]:
    """The run's config with its device as this worker names it."""
    config = dict(run.config)
    if "device" in config:
        config["device"] = str(device)
    return config


def fitted_state(estimator) -> dict[str, Any]:
    """Labels and centers of any estimator, plus the autoencoder's weights for deep ones,
    so reports (t-SNE, predictions) need no retraining."""
    fitted: dict[str, Any] = {
        "labels": np.asarray(estimator.labels_),
        "cluster_centers": getattr(estimator, "cluster_centers_", None),
    }
    if hasattr(estimator, "autoencoder_"):
        fitted["model"] = {
            k: v.detach().cpu() for k, v in estimator.autoencoder_.state_dict().items()
        }
    return fitted


def failed_records(unit: Unit, reason: str) -> UnitResult:
    """Records for a unit whose worker died or could not be reached."""
    if hasattr(unit, "units"):  # a StackedUnit: per seed's unit
        return UnitResult([], [], parts=[failed_records(u, reason) for u in unit.units])
    records = [
        {
            "method": run.method,
            "dataset": run.dataset,
            "seed": run.seed,
            "protocol": run.protocol,
            "config": run.config,
            "status": "failed",
            "error": reason,
            "finished_at": _now(),
        }
        for run in unit.runs
    ]
    return UnitResult(records, [None] * len(records))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
