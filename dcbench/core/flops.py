"""Analytic FLOP counts of our networks (a multiply-add is 2 FLOP), for speed reports.

Only matrix products count (Linear, Conv2d, ConvTranspose2d), as in
``torch.utils.flop_counter.FlopCounterMode``; activations, losses and optimizer steps are
noise beside them. Shapes come from one forward pass of a single sample.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def layer_flops(model: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """Forward FLOPs per sample of each Linear / Conv2d / ConvTranspose2d, in call order."""
    flops: list[int] = []

    def count(module, inputs, output):
        if isinstance(module, nn.Linear):
            flops.append(2 * module.in_features * module.out_features)
        elif isinstance(module, nn.Conv2d):  # per output pixel: Cin/groups * k * k MACs
            k = math.prod(module.kernel_size) * module.in_channels // module.groups
            flops.append(2 * k * output[0].numel())
        elif isinstance(module, nn.ConvTranspose2d):  # per input pixel: Cout/groups * k * k
            k = math.prod(module.kernel_size) * module.out_channels // module.groups
            flops.append(2 * k * inputs[0][0].numel())

    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return flops


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    return sum(layer_flops(model, input_shape))


def training_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward + backward per sample: the backward pass costs each layer twice its forward
    (gradients of its input and of its weights), except the first layer, whose input (the
    data) needs no gradient."""
    flops = layer_flops(model, input_shape)
    return 3 * sum(flops) - flops[0]
