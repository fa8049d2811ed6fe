"""Layers shared by the backbones.

``ConvTranspose2d`` is ``nn.ConvTranspose2d`` (same parameters, state dict and fp32 results),
except under CPU bf16 autocast: there it computes the same transposed convolution as the input
gradient of the matching convolution (``conv2d_input``). oneDNN's bf16 deconvolution is slow on
CPUs without AMX: the CAE's first 128 -> 64 deconvolution took 20 ms forward at batch 256 on
one thread here, its input-gradient form 3.7 ms, and a whole bf16 CAE 28x28 training step got
about 1.2x faster (bench/results/speed). fp32 and CUDA take PyTorch's own path unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ConvTranspose2dAsInputGrad(torch.autograd.Function):
    """y = conv_transpose2d(x, w) + b, written as the input gradient of conv2d(., w)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_hw):
        out_shape = (x.shape[0], weight.shape[1], *output_hw)
        y = torch.nn.grad.conv2d_input(out_shape, weight, x, stride=stride, padding=padding)
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return y if bias is None else y + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        stride, padding = ctx.stride, ctx.padding
        # the transposed convolution's input gradient is the forward convolution of grad_y
        grad_x = F.conv2d(grad_y, weight, stride=stride, padding=padding)
        # and its weight gradient that of conv2d(grad_y, w) for the output gradient x
        grad_w = torch.ops.aten.convolution_backward(
            x, grad_y, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], 1,
            [False, True, False],
        )[1]  # fmt: skip
        grad_b = grad_y.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None, None


def conv_transpose2d_as_input_grad(x, weight, bias, stride, padding, output_padding):
    """``F.conv_transpose2d`` (groups 1, dilation 1) through ``conv2d_input``; same values."""
    out_hw = tuple(
        (size - 1) * s - 2 * p + k + op
        for size, s, p, k, op in zip(
            x.shape[2:], stride, padding, weight.shape[2:], output_padding, strict=True
        )
    )
    return _ConvTranspose2dAsInputGrad.apply(x, weight, bias, stride, padding, out_hw)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with a fast path for CPU bf16 autocast (see the module docstring)."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        plain = (
            x.device.type != "cpu"
            or not torch.is_autocast_enabled("cpu")
            or output_size is not None
            or self.groups != 1
            or self.dilation != (1, 1)
            or self.padding_mode != "zeros"
        )
        if plain:
            return super().forward(x, output_size)
        dtype = torch.get_autocast_dtype("cpu")
        weight, bias = self.weight.to(dtype), None if self.bias is None else self.bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return conv_transpose2d_as_input_grad(
                x.to(dtype), weight, bias, self.stride, self.padding, self.output_padding
            )
