"""The six deep methods of the paper's Table 1 = backbone x loss, with PROTOCOL.md's settings.

Per-dataset values come from the authors' code (PROTOCOL.md, "Clustering phase"). ``digits``
(not in the paper) is the smoke-test dataset: 1797 tiny images, so it gets short schedules
that finish in seconds (its values are ours, not the paper's).
"""

from __future__ import annotations

from typing import Any

from dcbench.core.errors import UsageError
from dcbench.methods.backbones import BACKBONES
from dcbench.methods.deep import PRETRAIN_PARAMS, DeepClusterer
from dcbench.methods.losses import LOSSES
from dcbench.methods.registry import METHODS, MethodSpec, register_method

COMMON = ("loss", "n_clusters", "device", "random_state", *PRETRAIN_PARAMS)

# digits: a few seconds per run (ours; not a paper dataset)
DIGITS_PRETRAIN = {
    "pretrain_epochs": 30,
    "pretrain_optimizer": "adam",
    "pretrain_lr": 0.001,
    "pretrain_momentum": 0.0,
}
DIGITS_CLUSTER = {"update_interval": 30, "maxiter": 300}


def deep_method(
    name: str,
    backbone: str,
    loss: str,
    description: str,
    params: dict[str, Any] | None = None,
    dataset_params: dict[str, dict[str, Any]] | None = None,
    paper_name: str | None = None,
) -> MethodSpec:
    """A method = a backbone, a loss, and the hyperparameters that differ from the defaults."""
    phase = LOSSES.get(loss)
    per_dataset = BACKBONES.get(backbone).dataset_pretrain
    dataset_params = dataset_params or {}
    merged = {
        d: {**per_dataset.get(d, {}), **dataset_params.get(d, {})}
        for d in (*per_dataset, *dataset_params)
    }
    return MethodSpec(
        name,
        description,
        DeepClusterer,
        params={
            "backbone": backbone,
            "loss": loss,
            **BACKBONES.get(backbone).pretrain,
            **(params or {}),
        },
        dataset_params=merged,
        paper_name=paper_name,
        param_names=(*COMMON, *phase.reads()),
    )


def combination(name: str) -> MethodSpec:
    """``BACKBONE:LOSS`` (e.g. ``sae:kl+rec``) as an ad-hoc method with default settings."""
    backbone, sep, loss = name.partition(":")
    if not sep or backbone not in BACKBONES or loss not in LOSSES:
        raise UsageError(
            f"'{name}' is not BACKBONE:LOSS; backbones: {', '.join(BACKBONES)}; losses: {', '.join(LOSSES)}"
        )
    if name not in METHODS:
        register_method(
            deep_method(
                name, backbone, loss, f"ad-hoc combination: {backbone} backbone, {loss} loss"
            )
        )
    return METHODS.get(name)


def _digits(loss: str) -> dict[str, dict[str, Any]]:
    return {"digits": {**DIGITS_PRETRAIN, **({} if loss == "none" else DIGITS_CLUSTER)}}


DEC_SGD = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
ADAM = {"optimizer": "adam", "lr": 0.001, "momentum": 0.0}

for _spec in (
    deep_method("sae-kmeans", "sae", "none", "SAE pretrained, then k-means on its embedding",
                dataset_params=_digits("none"), paper_name="SAE+k-means"),
    deep_method("dec", "sae", "kl", "DEC: SAE + KL clustering loss (decoder dropped)",
                params={**DEC_SGD, "update_interval": 140},
                dataset_params={"usps": {"update_interval": 30}, **_digits("kl")}, paper_name="DEC"),
    deep_method("idec", "sae", "kl+rec", "IDEC: SAE + 0.1 KL + reconstruction",
                params={**ADAM, "update_interval": 140, "gamma": 0.1},
                # USPS: IDEC-toy's optimizer (the IDEC repo's lr 0.1 belongs to its layer-wise weights)
                dataset_params={"usps": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.99, "update_interval": 30},
                                **_digits("kl+rec")}, paper_name="IDEC"),
    deep_method("cae-kmeans", "cae", "none", "CAE pretrained, then k-means on its embedding",
                dataset_params=_digits("none"), paper_name="CAE+k-means"),
    deep_method("dec-conv", "cae", "kl", "DEC-conv: CAE + KL clustering loss (decoder dropped)",
                params={**ADAM, "update_interval": 140},
                dataset_params=_digits("kl"), paper_name="DEC-conv"),
    deep_method("dcec", "cae", "kl+rec", "DCEC: CAE + 0.1 KL + reconstruction (the paper's method)",
                params={**ADAM, "update_interval": 140, "gamma": 0.1},
                dataset_params=_digits("kl+rec"), paper_name="DCEC"),
):  # fmt: skip
    register_method(_spec)
