"""Seeds trained together: the units of S seeds that differ in nothing else, as one unit.

``stack_units`` groups the units of one plan whose runs are the same methods with the same
configs but the seed (the seeds of one backbone, dataset and method set); ``run_stacked_unit``
pretrains their autoencoders as one stacked model and fits each method's seeds together where
its loss stacks (``methods.stacked``), one seed at a time on the stacked pretraining where it
does not. Each seed still gets its own record, fitted model and pretrained cache file, so a
stacked run's results folder reads like any other. On by default on a GPU (``--stack-seeds``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from dcbench.datasets import ImageDataset
from dcbench.methods.stacked import (
    fit_stacked,
    pretrain_stacked,
    stackable_backbone,
    stackable_loss,
)
from dcbench.runner.pretrain_cache import PretrainCache
from dcbench.runner.work import (
    Unit,
    UnitResult,
    _SharedPretraining,
    config_on,
    finish_record,
    fit_one,
    method_spec,
    new_record,
    unit_result,
    worker_settings,
)

STACK_SEEDS = ("auto", "on", "off")


@dataclass(frozen=True)
class StackedUnit:
    units: tuple[Unit, ...]  # one per seed, each with the same methods in the same order

    @property
    def runs(self):
        return tuple(run for unit in self.units for run in unit.runs)

    @property
    def dataset(self) -> str:
        return self.units[0].dataset

    pretrain_key = None  # each seed's unit has its own


def use_stacking(choice: str, device: str) -> bool:
    """``--stack-seeds``: ``auto`` stacks on a GPU, where a step of these networks is
    launch-bound; on a CPU separate processes per seed measured as fast or faster
    (bench/results/stacked)."""
    if choice not in STACK_SEEDS:
        from dcbench.core.errors import UsageError

        raise UsageError(f"--stack-seeds '{choice}' is not allowed; choose from: "
                         f"{', '.join(STACK_SEEDS)}")  # fmt: skip
    return choice == "on" or (choice == "auto" and str(device).startswith("cuda"))


def stack_units(units: list[Unit]) -> list[Unit | StackedUnit]:
    """The units of the seeds that differ in nothing else, each group as one stacked unit
    (at the place of its first unit); units without a pretraining, or whose backbone does not
    stack, stay as they are."""
    groups: dict[str, list[Unit]] = {}
    order: list[str] = []
    for i, unit in enumerate(units):
        stacks = unit.pretrain_key and stackable_backbone(unit.runs[0].config["backbone"])
        key = _signature(unit) if stacks else f"alone:{i}"
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(unit)
    return [groups[k][0] if len(groups[k]) == 1 else StackedUnit(tuple(groups[k])) for k in order]


def _signature(unit: Unit) -> str:
    def without_seed(config):
        return {k: v for k, v in config.items() if k != "random_state"}

    runs = [(r.method, r.protocol, without_seed(r.config)) for r in unit.runs]
    return json.dumps([unit.dataset, runs], sort_keys=True, default=str)


def run_stacked_unit(
    stack: StackedUnit,
    data: ImageDataset,
    device: str,
    checkpoint_dir: str | None = None,
    pretrained: list | None = None,
    threads: int | None = None,
) -> UnitResult:
    """Every run of every seed's unit: pretraining stacked (the seeds not in the cache), then
    each method's seeds together. Records as ``run_unit``'s, plus ``stacked_seeds``; their
    ``seconds`` are the stack's wall time shared out over its seeds."""
    units = stack.units
    with worker_settings(device, threads) as scratch:
        cache = PretrainCache(checkpoint_dir or scratch)
        shared = _pretrained(units, data, device, cache, pretrained or [None] * len(units))
        per_unit: list[list] = [[] for _ in units]
        for j in range(len(units[0].runs)):
            runs = [unit.runs[j] for unit in units]
            for i, item in enumerate(_fit_together(runs, data, device, shared)):
                per_unit[i].append(item)
    parts = [unit_result(items, s.new_state) for items, s in zip(per_unit, shared, strict=True)]
    return UnitResult([], [], device_error=any(p.device_error for p in parts), parts=parts)


def _pretrained(units, data, device, cache, given) -> list[_SharedPretraining]:
    """Each seed's pretraining: given, in the cache, or trained here for the missing seeds
    together (a failure is kept for its seed's runs)."""
    shared = [
        _SharedPretraining(cache, unit.pretrain_key, data, state)
        for unit, state in zip(units, given, strict=True)
    ]
    for s in shared:
        if s.state is None:
            s.state = cache.load(s.key)
    index = [i for i, s in enumerate(shared) if s.state is None]
    if not index:
        return shared
    missing = [shared[i] for i in index]
    estimators = [method_spec(units[i].runs[0].method).build(config_on(units[i].runs[0], device))
                  for i in index]  # fmt: skip
    # each seed's checkpoint file, as a separate pretraining keeps it (either resumes from it)
    checkpoints = [cache.pretrain_checkpoint(s.key) for s in missing]
    started = time.perf_counter()
    try:
        outcomes = pretrain_stacked(estimators, data.x, checkpoints)
    except Exception as exc:  # e.g. a CUDA error: every seed's runs fail with it
        outcomes = [exc] * len(missing)
    seconds = (time.perf_counter() - started) / len(missing)
    for s, outcome, checkpoint in zip(missing, outcomes, checkpoints, strict=True):
        if isinstance(outcome, Exception):
            s.error = outcome
        else:
            whole = seconds + checkpoint.earlier_seconds / len(missing)  # + earlier attempts'
            s.state = s.new_state = {**outcome, "seconds": whole}
            s.fresh = True  # its first run records it as trained, not reused
    return shared


def _fit_together(runs, data: ImageDataset, device: str, shared: list[_SharedPretraining]):
    """One method's runs over the seeds: stacked if its loss stacks, else one by one."""
    spec = method_spec(runs[0].method)
    estimators = [spec.build(config_on(run, device)) for run in runs]
    if not stackable_loss(estimators[0].loss):  # (a stacked unit's runs are all deep)
        return [fit_one(run, data, device, s) for run, s in zip(runs, shared, strict=True)]
    records = []
    for run, s in zip(runs, shared, strict=True):
        record = new_record(run, data, device)
        record["stacked_seeds"] = [r.seed for r in runs]
        if s.error is None:
            state, reused = s.get(None)
            record.update(pretrain_reused=reused, pretrain_seconds=state.get("seconds"))
        records.append(record)
    ok = [i for i, s in enumerate(shared) if s.error is None]
    started = time.perf_counter()
    try:
        fitted = fit_stacked(
            [estimators[i] for i in ok], data.x, data.y, [shared[i].state for i in ok]
        )
    except Exception as exc:
        fitted = [exc] * len(ok)
    seconds = (time.perf_counter() - started) / max(len(ok), 1)
    outcomes: list[Any] = [s.error for s in shared]
    for i, outcome in zip(ok, fitted, strict=True):
        outcomes[i] = outcome
    return [
        finish_record(record, data, outcome, 0.0 if s.error else seconds)
        for record, outcome, s in zip(records, outcomes, shared, strict=True)
    ]
