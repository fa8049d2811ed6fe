"""The methods registry: each entry is an estimator class plus its protocol hyperparameters.

A method's hyperparameters have one home: ``params`` (defaults) and ``dataset_params``
(per-dataset values from PROTOCOL.md) in its registry entry. Users override any of them from
the command line (``--set key=value`` or ``--set method.key=value``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcbench.errors import UsageError
from dcbench.registry import Registry

METHODS = Registry("method")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    estimator: type
    params: dict[str, Any] = field(default_factory=dict)
    dataset_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper_name: str | None = None  # row name in the paper's Table 1, if it is there

    def allowed_params(self) -> list[str]:
        return sorted(self.estimator().get_params(deep=False))

    def resolve(self, dataset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full estimator config for ``dataset``: defaults < per-dataset values < overrides."""
        allowed = self.allowed_params()
        config = dict(self.estimator().get_params(deep=False))
        for source in (self.params, self.dataset_params.get(dataset, {}), overrides or {}):
            for key, value in source.items():
                if key not in allowed:
                    raise UsageError(
                        f"method '{self.name}' has no parameter '{key}'; its parameters: {', '.join(allowed)}"
                    )
                config[key] = value
        return config

    def build(self, config: dict[str, Any]):
        return self.estimator(**config)


def register_method(spec: MethodSpec) -> MethodSpec:
    return METHODS.register(spec.name, spec, description=spec.description)
