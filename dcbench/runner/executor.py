"""The driver: plan -> units of work -> a backend runs them -> the driver stores each result.

Only the driver writes the output folder (records, fitted models, pretrained cache), so
workers on other machines need no shared disk. Every file is written atomically as its unit
finishes: an interruption keeps everything finished so far. A run that finishes inside a
unit still running is stored as it ends (in-process) or within a minute (local processes, Ray
with a shared folder: the driver looks at the workers' folder), not when the unit's last run
ends; seeds stacked on a GPU (``runner.stacking``) are stored with their unit.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, wait
from datetime import datetime
from typing import Any

from tqdm.auto import tqdm

from dcbench.core import runinfo
from dcbench.core.errors import UsageError
from dcbench.core.fileio import load_torch, save_torch
from dcbench.datasets import ImageDataset
from dcbench.runner.backends import InProcess
from dcbench.runner.plan import Run, config_changes, protocol_of
from dcbench.runner.pretrain_cache import FINISHED, PretrainCache, adopt_finished
from dcbench.runner.stacking import stack_units
from dcbench.runner.store import ResultsStore
from dcbench.runner.work import (
    Unit,
    UnitResult,
    failed_records,
    finished_result,
    make_units,
    run_name,
)

# How often the driver looks for runs finished inside units still running (store_finished_runs)
FINISHED_RUNS_POLL_SECONDS = 60.0


def pending_runs(
    plan: Iterable[Run], store: ResultsStore, *, force: bool = False, device: str | None = None
) -> list[Run]:
    """The runs not yet done. A finished record with a different config, protocol or (when
    ``device`` is given) device type is an error, not a skip."""
    todo = []
    for run in plan:
        done = store.get(run.method, run.dataset, run.seed)
        if force or done is None or done.get("status") != "ok":
            todo.append(run)
        elif changed := config_changes(run.method, run.config, done.get("config", {})):
            raise UsageError(
                f"{store.out_dir} already holds {run.label} with a different config "
                f"(changed: {', '.join(changed)}); use --force to replace it or another --out"
            )
        elif (
            device is not None
            and done.get("device")
            and (runinfo.device_type(done["device"]) != runinfo.device_type(device))
        ):
            raise UsageError(
                f"{store.out_dir} already holds {run.label} run on {done['device']}, and this "
                f"run is on {device}: devices round differently, so they never share a results "
                "folder; pass another --out (or --force to replace it)"
            )
        elif (held := protocol_of(done)) != run.protocol:
            raise UsageError(
                f"{store.out_dir} already holds {run.label} under protocol '{held}', not "
                f"'{run.protocol}'; protocols never share a results folder: pass another --out"
            )
    return todo


def execute(
    runs: list[Run],
    data: dict[str, ImageDataset],
    store: ResultsStore,
    *,
    device: str = "cpu",
    progress: bool = True,
    backend=None,
    stack: bool = False,
) -> list[dict[str, Any]]:
    """Fit every run, storing each record as its unit finishes. A failing run (or a dead
    worker) is recorded as failed and the others go on. ``stack``: the seeds that differ in
    nothing else train together (``runner.stacking``)."""
    units = make_units(runs, {name: d.n_samples for name, d in data.items()}, device)
    if stack:
        units = stack_units(units)
    cache = PretrainCache(store.pretrained_dir)
    backend = backend or InProcess(data, device)
    workers_cache = backend.worker_cache(cache)  # where finished runs wait to be stored
    n_samples = {name: d.n_samples for name, d in data.items()}
    records: list[dict[str, Any]] = []
    stored_early: set[tuple] = set()  # the runs stored before their unit ended (_which)

    def store_finished(units: Iterable[Unit]) -> None:
        try:
            for record in store_finished_runs(units, store, cache, workers_cache, n_samples,
                                              stored_early):  # fmt: skip
                records.append(record)
                _report(bar, record, f"{len(records)}/{len(runs)}")
        except OSError as exc:  # only a shortcut: the unit's end stores them (or stops there)
            warnings.warn(f"could not store a finished run before its unit ended ({exc}); "
                          "it is stored with its unit", stacklevel=2)  # fmt: skip

    drop_spare_kept_runs(store, workers_cache)
    backend.after_each_run(lambda unit: store_finished([unit]))  # in-process units
    queue: deque[Unit] = deque(units)
    in_flight: dict = {}
    with tqdm(total=len(runs), disable=not progress, unit="run", dynamic_ncols=True) as bar:
        try:
            store_finished(queue)  # an interrupted earlier attempt's finished runs, at once
            while queue or in_flight:
                while queue and len(in_flight) < backend.slots:
                    unit = queue.popleft()
                    bar.set_description(unit.runs[0].label)
                    in_flight[backend.submit(unit, cache)] = unit
                done, _ = wait(
                    in_flight, timeout=FINISHED_RUNS_POLL_SECONDS, return_when=FIRST_COMPLETED
                )
                for future in done:
                    unit = in_flight.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # the worker died or could not be reached
                        reason = f"worker failed: {type(exc).__name__}: {exc}".splitlines()[0]
                        result = failed_records(unit, reason)
                        backend.recover()
                    if result.device_error:  # its process's CUDA context may be spoiled
                        backend.replace_workers()
                    written = store_unit(result, unit, store, cache, workers_cache, stored_early)
                    for record in written:
                        records.append(record)
                        _report(bar, record, f"{len(records)}/{len(runs)}")
                store_finished(in_flight.values())
        finally:
            backend.after_each_run(None)
            backend.close()
    return records


def store_unit(
    result: UnitResult,
    unit: Unit,
    store: ResultsStore,
    cache: PretrainCache,
    workers_cache: PretrainCache | None = None,
    stored: frozenset | set = frozenset(),
) -> list[dict[str, Any]]:
    """Write a unit's pretrained state, fitted models and records (records last: a record
    on disk means everything it points to is there); then drop the finished runs the
    workers kept in ``workers_cache`` for an interruption. Returns the records written:
    the runs in ``stored`` (``_which``; stored early, by ``store_finished_runs``) are on disk
    already, and are neither written again nor returned."""
    if result.parts is not None:  # a stacked unit: each seed's unit as if it ran alone
        return [
            record
            for sub, part in zip(unit.units, result.parts, strict=True)
            for record in store_unit(part, sub, store, cache, workers_cache, stored)
        ]
    if unit.pretrain_key and result.pretrained is not None:
        cache.save(unit.pretrain_key, result.pretrained)
    if unit.pretrain_key and cache.path(unit.pretrain_key).exists():
        # only now, the state safe on disk (saved here, by the worker as it ended, or by an
        # earlier attempt): its checkpoint goes, where the workers kept it too
        for folder in {cache, workers_cache} - {None}:
            _discard(folder.pretrain_checkpoint(unit.pretrain_key).path)
    written = []
    for run, record, fitted in zip(unit.runs, result.records, result.fitted, strict=True):
        if _which(run) not in stored:
            _store_run(record, fitted, store, cache, unit.pretrain_key)
            written.append(record)
        if workers_cache and unit.pretrain_key and record["status"] == "ok":  # now on disk
            _discard(workers_cache.finished_run(run_name(run), run.config, record["n_samples"]))
    return written


def store_finished_runs(
    units: Iterable[Unit],
    store: ResultsStore,
    cache: PretrainCache,
    workers_cache: PretrainCache | None,
    n_samples: dict[str, int],
    stored: set[tuple],
) -> list[dict[str, Any]]:
    """Store the finished runs of ``units`` not yet ended: the workers keep each finished run
    in ``workers_cache`` until its unit ends, so DEC's record lands when DEC ends, not an hour
    later with IDEC's, and a session stopped during IDEC loses neither. Only once the
    pretraining the record points to is on disk (the worker saves it as it ends). The kept
    file stays until the unit is stored (``store_unit`` then only removes it): on a rerun the
    unit still holds the run, and its worker restores it from there instead of refitting.
    ``stored``: the runs stored so (``_which``), added to here."""
    if workers_cache is None:  # the workers' folders are out of the driver's sight
        return []
    records = []
    for unit in units:
        key = unit.pretrain_key
        if key is None or not _pretraining_on_disk(key, cache, workers_cache):
            continue
        for run in unit.runs:
            if _which(run) in stored:
                continue
            path = workers_cache.finished_run(run_name(run), run.config, n_samples[run.dataset])
            kept = finished_result(path, run, key)  # None while it is not there
            if kept is None or kept[0].get("status") != "ok":
                continue
            record, fitted = kept
            _store_run(record, fitted, store, cache, key)
            stored.add(_which(run))
            records.append(record)
    return records


def drop_spare_kept_runs(store: ResultsStore, workers_cache: PretrainCache | None) -> None:
    """Remove the kept finished runs whose record is already stored: an earlier attempt stored
    them early and stopped before their unit ended. A rerun leaves those runs out of its plan,
    so no unit would remove them, and with ``--force`` they would be restored, not refitted."""
    if workers_cache is None:
        return
    for path in workers_cache.directory.glob(f"*{FINISHED}"):
        kept = load_torch(path)
        record = kept.get("record") if isinstance(kept, dict) else None
        if not isinstance(record, dict):
            continue  # unreadable or unknown: the run that owns it refits and replaces it
        done = store.get(record.get("method"), record.get("dataset"), record.get("seed"))
        if done is not None and done.get("status") == "ok":
            _discard(path)


def _pretraining_on_disk(key: str, cache: PretrainCache, workers_cache: PretrainCache) -> bool:
    """Whether the pretrained state ``key`` is in the driver's cache, copied there from the
    workers' folder if it is only there."""
    if not cache.path(key).exists() and workers_cache.path(key).exists():
        adopt_finished(workers_cache.directory, cache.directory, cache.path(key).name)
    return cache.path(key).exists()


def _store_run(
    record: dict[str, Any], fitted: dict | None, store: ResultsStore, cache: PretrainCache, key
) -> None:
    """One run's fitted model, then its record (last: what it points to is on disk)."""
    if key and "pretrain_reused" in record:
        record["pretrain_file"] = str(cache.path(key))
    if fitted is not None:
        model_file = store.model_path(record["method"], record["dataset"], record["seed"])
        save_torch(fitted, model_file)
        record["model_file"] = str(model_file)
    store.put(record)


def _which(run: Run) -> tuple[str, str, int]:
    """A run's (method, dataset, seed): what names its record."""
    return run.method, run.dataset, run.seed


def _discard(path) -> None:
    """Remove a checkpoint that is no longer needed; one that will not go is a warning (it is
    only disk space), never a reason to stop storing the unit's records."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(f"could not remove {path} ({exc})", stacklevel=2)


def _report(bar, record: dict[str, Any], count: str) -> None:
    bar.update()
    run = f"{record['method']} / {record['dataset']} / seed {record['seed']}"
    if record["status"] != "ok":
        tqdm.write(f"FAILED {run}: {record['error']}")
        return
    metrics = record["metrics"]
    bar.set_postfix(acc=f"{metrics['acc']:.3f}")
    if bar.disable:  # no bar (a log file, --no-progress): one line per finished run instead
        pretrain = None if record.get("pretrain_reused") else record.get("pretrain_seconds")
        took = f"{record['seconds']:.0f} s" + (
            f" + {pretrain:.0f} s pretraining" if pretrain else ""
        )
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"{stamp} [{count}] {run}: ACC {metrics['acc']:.4f} "
              f"NMI {metrics['nmi_geometric']:.4f}, {took}", flush=True)  # fmt: skip
