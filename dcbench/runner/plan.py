"""The plan: which (method, dataset, seed) runs to do, each with its fully resolved config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dcbench.core import runinfo
from dcbench.core.errors import UsageError
from dcbench.methods import METHODS, combination
from dcbench.methods.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from dcbench.methods.training import resolve_precision

ORDERS = ("dataset", "seed")
WRITTEN_BEFORE = {"precision": "fp32"}


@dataclass(frozen=True)
class Run:
    method: str
    dataset: str
    seed: int
    config: dict[str, Any]
    protocol: str = DEFAULT_PROTOCOL

    @property
    def label(self) -> str:
        return f"{self.method} / {self.dataset} / seed {self.seed}"


def make_plan(
    methods: list[str],
    datasets: list[str],
    seeds: list[int],
    overrides: dict[str, dict[str, Any]] | None = None,
    n_clusters: dict[str, int] | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    order: str = "dataset",
    device: str = "cpu",
) -> list[Run]:
    """Runs ordered by dataset, then seed, then method (so shared work sits together), or with
    ``order="seed"`` by seed, then dataset, then method: one seed of everything before a second
    seed of anything, so that a long campaign has complete, committable rows early.

    ``overrides`` maps a method name (or ``"*"`` for every method) to parameter values;
    ``n_clusters`` maps a dataset to its number of classes (the protocol's cluster count);
    ``protocol`` names the variant (``methods/protocols.py``) laid over the registry entries,
    below the overrides. ``precision="auto"`` is resolved here, for ``device``, so that every
    record stores the precision it ran in.
    """
    overrides = overrides or {}
    PROTOCOLS.get(protocol)  # an unknown name: the one-line error
    if order not in ORDERS:
        raise UsageError(f"--order '{order}' is not allowed; choose from: {', '.join(ORDERS)}")
    pairs = (
        [(d, s) for d in datasets for s in seeds]
        if order == "dataset"
        else [(d, s) for s in seeds for d in datasets]
    )
    runs = []
    for dataset, seed in pairs:
        for method in methods:
            mine = {**overrides.get("*", {}), **overrides.get(method, {})}
            preset = {"random_state": seed}
            if n_clusters and dataset in n_clusters and "n_clusters" not in mine:
                preset["n_clusters"] = n_clusters[dataset]
            config = resolve(method, dataset, protocol, {**preset, **mine}, device)
            runs.append(Run(method, dataset, seed, normalized(config), protocol))
    return runs


def resolve(
    method: str, dataset: str, protocol: str, values: dict[str, Any], device: str = "cpu"
) -> dict[str, Any]:
    """A method's full config on ``dataset``: its registry entry < the protocol's values <
    ``values``, with ``precision="auto"`` resolved for ``device``."""
    spec = _spec(method)
    backbone = spec.params.get("backbone")
    protocol_values = PROTOCOLS.get(protocol).params(method, backbone, dataset)
    config = spec.resolve(dataset, {**protocol_values, **values})
    if "precision" in config:
        config["precision"] = resolve_precision(config["precision"], device, spec.bf16_proven)
    return config


def config_changes(method: str, planned: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The keys in which a stored run's config differs from a planned one. A key the stored
    config lacks (a parameter added since it was written) counts at the estimator's default,
    the value that run had implicitly."""
    # what a key meant before it was written down: the estimator's default, except that a
    # record without a precision ran fp32 (the default before "auto")
    defaults = {**normalized(_spec(method).estimator().get_params(deep=False)), **WRITTEN_BEFORE}
    stored = {**{k: defaults[k] for k in planned if k in defaults}, **stored}
    return sorted(k for k in set(planned) | set(stored) if planned.get(k) != stored.get(k))


def protocol_of(record: dict[str, Any]) -> str:
    """The protocol a record was run under: as it stores it, or, for a record written before
    protocols had names, the first protocol that resolves to its config ('custom' if none)."""
    if record.get("protocol"):
        return record["protocol"]
    config = record.get("config") or {}
    for name in PROTOCOLS:
        preset = {k: config[k] for k in ("random_state", "n_clusters") if k in config}
        try:
            device = runinfo.device_type(record.get("device") or "cpu")
            planned = normalized(resolve(record["method"], record["dataset"], name, preset, device))
        except UsageError:
            continue
        if not config_changes(record["method"], planned, config):
            return name
    return "custom"


def _spec(method: str):
    return combination(method) if ":" in method else METHODS.get(method)


def normalized(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON, so stored and planned configs compare equal."""
    return json.loads(json.dumps(config, sort_keys=True))
