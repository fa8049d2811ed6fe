"""The plan: which (method, dataset, seed) runs to do, each with its fully resolved config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dcbench.methods import METHODS


@dataclass(frozen=True)
class Run:
    method: str
    dataset: str
    seed: int
    config: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} / {self.dataset} / seed {self.seed}"


def make_plan(
    methods: list[str],
    datasets: list[str],
    seeds: list[int],
    overrides: dict[str, dict[str, Any]] | None = None,
    n_clusters: dict[str, int] | None = None,
) -> list[Run]:
    """Runs ordered by dataset, then seed, then method (so shared work sits together).

    ``overrides`` maps a method name (or ``"*"`` for every method) to parameter values;
    ``n_clusters`` maps a dataset to its number of classes (the protocol's cluster count).
    """
    overrides = overrides or {}
    runs = []
    for dataset in datasets:
        for seed in seeds:
            for method in methods:
                spec = METHODS.get(method)
                mine = {**overrides.get("*", {}), **overrides.get(method, {})}
                preset = {"random_state": seed}
                if n_clusters and dataset in n_clusters and "n_clusters" not in mine:
                    preset["n_clusters"] = n_clusters[dataset]
                config = spec.resolve(dataset, {**preset, **mine})
                runs.append(Run(method, dataset, seed, normalized(config)))
    return runs


def normalized(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON, so stored and planned configs compare equal."""
    return json.loads(json.dumps(config, sort_keys=True))
