"""Convolution layers with a CPU bf16 fast path, shared by the backbones.

``Conv2d`` and ``ConvTranspose2d`` are PyTorch's (same parameters, state dict and results in
fp32 and on CUDA), except under CPU bf16 autocast, where oneDNN has slow spots on CPUs without
AMX (times at batch 256, one thread, on the 2-core machine of bench/results/speed):

- bf16 deconvolution is slow: the CAE's 128 -> 64 deconvolution took 20 ms forward, the same
  values computed as the input gradient of the matching convolution (``conv2d_input``) 3.7 ms;
- to a single output channel (the reconstructed image) even that form crawls (4.3 ms for the
  CAE 16x16's 32 -> 1 layer): a GEMM plus ``fold`` does it in 0.8 ms;
- channels-last tensors make the convolutions' backward faster (the input gradient of the
  32 -> 64 5x5 convolution on 8x8 inputs: 2.7 ms instead of 4.8 ms).

Their effect on whole training steps is measured in bench/results/speed (ours bf16 vs fp32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _single_channel_conv_transpose2d(x, weight, stride, padding, output_hw):
    """Transposed convolution to one output channel (the image reconstruction) as a GEMM
    giving each input pixel's k x k patch, summed into place by ``fold`` in fp32.

    oneDNN's kernel is slow for a single output channel: the CAE 16x16's 32 -> 1 layer took
    4.3 ms forward at batch 256 on one thread, this form 0.8 ms.
    """
    n, c, h, w = x.shape
    kernel = weight.shape[2:]
    patches = torch.matmul(weight.reshape(c, -1).t(), x.reshape(n, c, h * w))  # n, k*k, h*w
    summed = patches.to(torch.promote_types(patches.dtype, torch.float32))  # overlaps add in fp32
    y = F.fold(summed, output_hw, kernel, padding=padding, stride=stride)
    return y.to(x.dtype)


class _ConvTranspose2dAsInputGrad(torch.autograd.Function):
    """y = conv_transpose2d(x, w) + b, written as the input gradient of conv2d(., w)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_hw):
        if weight.shape[1] == 1:
            y = _single_channel_conv_transpose2d(x, weight, stride, padding, output_hw)
        else:
            out_shape = (x.shape[0], weight.shape[1], *output_hw)
            y = torch.nn.grad.conv2d_input(out_shape, weight, x, stride=stride, padding=padding)
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return y if bias is None else y + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        stride, padding = ctx.stride, ctx.padding
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_x:  # the transposed convolution's input gradient: the forward conv of grad_y
            grad_x = F.conv2d(grad_y, weight, stride=stride, padding=padding)
        if need_w:  # its weight gradient: that of conv2d(grad_y, w) for the output gradient x
            grad_w = torch.ops.aten.convolution_backward(
                x, grad_y, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], 1,
                [False, True, False],
            )[1]  # fmt: skip
        if need_b and ctx.has_bias:
            grad_b = grad_y.sum((0, 2, 3))
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


def _fast_path_dtype(layer: nn.Module, x: torch.Tensor, output_size=None) -> torch.dtype | None:
    """The autocast dtype where the CPU fast path applies, None where PyTorch's own path runs."""
    plain = (
        x.device.type != "cpu"
        or not torch.is_autocast_enabled("cpu")
        or output_size is not None
        or layer.groups != 1
        or layer.dilation != (1, 1)
        or layer.padding_mode != "zeros"
    )
    return None if plain else torch.get_autocast_dtype("cpu")


def _cast(x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Cast to the autocast dtype, 4-d tensors to channels-last (oneDNN's faster bf16 layout)."""
    if x is None:
        return None
    if x.dim() == 4:
        return x.to(dtype, memory_format=torch.channels_last)
    return x.to(dtype)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d``; under CPU bf16 autocast it runs channels-last (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _fast_path_dtype(self, x)
        if dtype is None:
            return super().forward(x)
        weight, bias = _cast(self.weight, dtype), _cast(self.bias, dtype)
        with torch.autocast("cpu", enabled=False):
            return F.conv2d(_cast(x, dtype), weight, bias, self.stride, self.padding)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with a fast path for CPU bf16 autocast (see the module docstring)."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        dtype = _fast_path_dtype(self, x, output_size)
        if dtype is None:
            return super().forward(x, output_size)
        weight, bias = _cast(self.weight, dtype), _cast(self.bias, dtype)
        with torch.autocast("cpu", enabled=False):
            return conv_transpose2d_as_input_grad(
                _cast(x, dtype), weight, bias, self.stride, self.padding, self.output_padding
            )
