"""Named protocol variants: the settings behind each published number, one flag away.

The registry entries (``methods/table1.py``, the backbones) hold the ``paper`` protocol: the
settings that produced the DCEC paper's Table 1, as far as the authors' code shows them. A
variant is data only: per-method (or per-backbone) and per-dataset values laid over those
entries, so a user can rerun a table under another reading of the protocol and see for
themselves why published numbers differ. ``python run_all.py --protocol NAME`` selects one;
every record stores its protocol, and tables never mix two in one cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcbench.core.registry import Registry

PROTOCOLS = Registry("protocol")
DEFAULT_PROTOCOL = "paper"


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    # key: a method name, or a backbone name for every method on it (a method's own entry wins);
    # value: dataset name (or "*" for every dataset) -> estimator parameter values
    overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def params(self, method: str, backbone: str | None, dataset: str) -> dict[str, Any]:
        """The values this protocol sets for ``method`` (on ``backbone``) on ``dataset``."""
        values: dict[str, Any] = {}
        for key in (backbone, method):
            mine = self.overrides.get(key, {}) if key else {}
            values.update({**mine.get("*", {}), **mine.get(dataset, {})})
        return values


def register_protocol(spec: Protocol) -> Protocol:
    return PROTOCOLS.register(spec.name, spec, description=spec.description)


register_protocol(
    Protocol(
        "paper",
        "the settings that produced Table 1 (the registry entries; PROTOCOL.md): SAE inputs as "
        "the authors' code fed them (USPS x2, MNIST x255/50), the CAE on [0, 1]",
    )
)
register_protocol(
    Protocol(
        "paper-text",
        "the paper's text taken literally: every input in [0, 1], IDEC on USPS with the IDEC "
        "paper's SGD lr 0.1",
        {
            "sae": {"*": {"input_scale": 1.0}},
            "idec": {"usps": {"lr": 0.1}},
        },
    )
)
register_protocol(
    Protocol(
        "dec-keras",
        "DEC-keras's later, retuned SAE recipe on [0, 1] inputs: USPS Adam 1e-3 for 50 epochs, "
        "MNIST SGD lr 1 momentum 0.9 for 300 epochs (its VarianceScaling init is not reproduced: "
        "Glorot-uniform kept)",
        {
            "sae": {
                "*": {"input_scale": 1.0},
                "usps": {"pretrain_optimizer": "adam", "pretrain_lr": 0.001,
                         "pretrain_momentum": 0.0, "pretrain_epochs": 50},
                "mnist-full": {"pretrain_optimizer": "sgd", "pretrain_lr": 1.0,
                               "pretrain_momentum": 0.9, "pretrain_epochs": 300},
                "mnist-test": {"pretrain_optimizer": "sgd", "pretrain_lr": 1.0,
                               "pretrain_momentum": 0.9, "pretrain_epochs": 300},
            },
        },
    )
)  # fmt: skip


def describe(name: str) -> str:
    """A protocol's overrides, one line per key, for ``--list``."""
    spec = PROTOCOLS.get(name)
    if not spec.overrides:
        return "(the registry entries as they are)"
    parts = []
    for key, by_dataset in spec.overrides.items():
        for dataset, values in by_dataset.items():
            settings = ", ".join(f"{k}={v!r}" for k, v in values.items())
            parts.append(f"{key} on {'every dataset' if dataset == '*' else dataset}: {settings}")
    return "; ".join(parts)
