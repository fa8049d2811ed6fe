"""The methods registry: each entry is an estimator class plus its protocol hyperparameters.

A method's hyperparameters have one home: ``params`` (defaults) and ``dataset_params``
(per-dataset values from PROTOCOL.md) in its registry entry. Users override any of them from
the command line (``--set key=value`` or ``--set method.key=value``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sklearn.utils._param_validation import InvalidParameterError

from dcbench.core.errors import UsageError
from dcbench.core.registry import Registry

# The rows of the DCEC paper's Table 1, top to bottom. Methods are listed (tables, --list,
# ``--methods all``) in this order by their ``paper_name``, then the others in the order their
# modules register them (modules are discovered by name, so registration order alone is not
# the paper's).
TABLE1_ROWS = ("k-means", "SEC", "SAE+k-means", "DEC", "IDEC", "CAE+k-means", "DEC-conv", "DCEC")


def table_order(name: str, spec: MethodSpec) -> int:
    return (
        TABLE1_ROWS.index(spec.paper_name) if spec.paper_name in TABLE1_ROWS else len(TABLE1_ROWS)
    )


METHODS = Registry("method", order=table_order)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    estimator: type
    params: dict[str, Any] = field(default_factory=dict)
    dataset_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper_name: str | None = None  # row name in the paper's Table 1, if it is there
    # For a method not in Table 1: its own paper's ACC / NMI (%) per dataset, and that paper.
    reference: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    reference_source: str | None = None
    # The estimator parameters this method uses (its config); None means all of them.
    param_names: tuple[str, ...] | None = None
    # precision="auto" gives bf16 only to a method whose 5-seed bf16 table matched fp32's
    # (bench/results: |mean difference| <= max(fp32 std, 0.5 points)); none is proven yet
    bf16_proven: bool = False

    def allowed_params(self) -> list[str]:
        every = self.estimator().get_params(deep=False)
        return sorted(every if self.param_names is None else self.param_names)

    def resolve(self, dataset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full estimator config for ``dataset``: defaults < per-dataset values < overrides."""
        allowed = self.allowed_params()
        defaults = self.estimator().get_params(deep=False)
        config = {k: defaults[k] for k in allowed}
        for source in (self.params, self.dataset_params.get(dataset, {}), overrides or {}):
            for key, value in source.items():
                if key not in allowed:
                    raise UsageError(
                        f"method '{self.name}' has no parameter '{key}'; its parameters: {', '.join(allowed)}"
                    )
                config[key] = value
        self.check(config)
        return config

    def check(self, config: dict[str, Any]) -> None:
        """Type and range of every value, by the estimator's own ``_parameter_constraints``,
        so a bad ``--set`` is refused when the run is planned, before any training."""
        estimator = self.build(config)
        if hasattr(estimator, "_parameter_constraints"):
            try:
                estimator._validate_params()
            except InvalidParameterError as exc:
                raise UsageError(f"method '{self.name}': {exc}") from None

    def build(self, config: dict[str, Any]):
        return self.estimator(**config)


def register_method(spec: MethodSpec) -> MethodSpec:
    return METHODS.register(spec.name, spec, description=spec.description)
