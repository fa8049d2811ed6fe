"""Autoencoder backbones: ``sae`` (fully connected) and ``cae`` (convolutional), as PROTOCOL.md describes.

Every backbone takes images (N, C, H, W) and returns ``(z, reconstruction)`` with the
reconstruction shaped like the input, so every loss works with every backbone. A backbone
entry also holds its pretraining defaults (the one home of those hyperparameters). A backbone
may define ``reconstruction_loss(x)``: pretraining then minimizes it instead of the MSE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dcbench.core.registry import Registry
from dcbench.methods.layers import Conv2d, ConvTranspose2d

BACKBONES = Registry("backbone")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str
    build: Callable[
        [tuple[int, int, int], int], nn.Module
    ]  # (input_shape, embedding_dim) -> module
    pretrain: dict[str, Any] = field(
        default_factory=dict
    )  # pretraining defaults (estimator params)
    # per-dataset pretraining values, e.g. the input scale the authors' code fed this backbone
    dataset_pretrain: dict[str, dict[str, Any]] = field(default_factory=dict)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    return BACKBONES.register(spec.name, spec, description=spec.description)


def reconstruction_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What pretraining minimizes: the backbone's own ``reconstruction_loss(x)`` if it has one
    (DEPICT's layer-wise denoising loss), else the MSE between ``x`` and its reconstruction."""
    own = getattr(model, "reconstruction_loss", None)
    if own is not None:
        return own(x)
    _, rec = model(x)
    return F.mse_loss(rec.float(), x)


def keras_init_(module: nn.Module) -> None:
    """Keras defaults, as in the authors' code: Glorot-uniform weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class StackedAutoencoder(nn.Module):
    """d-500-500-2000-10 with ReLU, linear embedding, mirror decoder with linear output."""

    def __init__(
        self, input_shape: tuple[int, int, int], embedding_dim: int = 10, hidden=(500, 500, 2000)
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        dims = [int(torch.tensor(input_shape).prod()), *hidden, embedding_dim]
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])
        keras_init_(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decoder(z).view(x.shape)


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:  # no activation on the embedding or the output
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConvAutoencoder(nn.Module):
    """conv32-64-128-FC10 with its mirror decoder (the DCEC paper's CAE).

    "same" convolutions with stride 2 use symmetric padding k//2 (Keras pads the extra pixel
    on the bottom/right only); output sizes are identical. The third conv is "valid" when H is
    not a multiple of 8 (28x28: 7 -> 3), "same" otherwise (16x16: 4 -> 2; 8x8: 2 -> 1).
    """

    def __init__(
        self, input_shape: tuple[int, int, int], embedding_dim: int = 10, filters=(32, 64, 128)
    ):
        super().__init__()
        c, h, w = self.input_shape = tuple(input_shape)
        if h != w or h % 4:
            raise ValueError(f"the CAE needs square images with a side divisible by 4; got {h}x{w}")
        same3 = h % 8 == 0
        f1, f2, f3 = filters
        side = h // 8
        self.encoder = nn.Sequential(
            Conv2d(c, f1, 5, stride=2, padding=2), nn.ReLU(),
            Conv2d(f1, f2, 5, stride=2, padding=2), nn.ReLU(),
            Conv2d(f2, f3, 3, stride=2, padding=1 if same3 else 0), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(f3 * side * side, embedding_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(embedding_dim, f3 * side * side), nn.ReLU(),
            nn.Unflatten(1, (f3, side, side)),
            ConvTranspose2d(f3, f2, 3, stride=2, padding=1 if same3 else 0, output_padding=1 if same3 else 0),
            nn.ReLU(),
            ConvTranspose2d(f2, f1, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
            ConvTranspose2d(f1, c, 5, stride=2, padding=2, output_padding=1),
        )  # fmt: skip
        keras_init_(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)


register_backbone(
    BackboneSpec(
        "sae",
        "fully connected autoencoder d-500-500-2000-10 (DEC/IDEC), pretrained end to end",
        StackedAutoencoder,
        # DCEC paper: end-to-end pretraining, 400 epochs, SGD lr 0.01 momentum 0.9.
        pretrain={
            "pretrain_epochs": 400,
            "pretrain_optimizer": "sgd",
            "pretrain_lr": 0.01,
            "pretrain_momentum": 0.9,
        },
        # The inputs of the code behind the paper's SAE rows (IDEC-toy a6803bb, datasets.py):
        # MNIST x / 50, USPS the raw .jf values in [0, 2]. Plain SGD is not scale-invariant:
        # on [0, 1] inputs the same lr trains 4x-26x slower (PROTOCOL.md, "input scale").
        dataset_pretrain={
            "usps": {"input_scale": 2.0},
            "mnist-full": {"input_scale": 255 / 50},
            "mnist-test": {"input_scale": 255 / 50},
        },
    )
)
register_backbone(
    BackboneSpec(
        "cae",
        "convolutional autoencoder conv32-64-128-FC10 with mirror decoder (DCEC)",
        ConvAutoencoder,
        # DCEC paper: Adam lr 1e-3, 200 epochs.
        pretrain={
            "pretrain_epochs": 200,
            "pretrain_optimizer": "adam",
            "pretrain_lr": 0.001,
            "pretrain_momentum": 0.0,
        },
    )
)
