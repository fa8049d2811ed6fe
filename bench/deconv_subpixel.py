"""Is a sub-pixel rewrite of ConvTranspose2d (one conv2d over the input with the four output
phases as channels, then pixel_shuffle; same weights, so same parameters and init) faster than
PyTorch's ConvTranspose2d on this CPU? Forward + backward, batch 256, one thread, for each
transposed convolution of the CAE (28x28 and 16x16). Checks the two agree, prints the times.

    python bench/deconv_subpixel.py

Output measured on 2026-11-26: bench/results/speed/deconv_subpixel.md.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

# (in channels, out channels, kernel, padding, output_padding, input side, output side)
LAYERS = [
    (128, 64, 3, 0, 0, 3, 7), (64, 32, 5, 2, 1, 7, 14), (32, 1, 5, 2, 1, 14, 28),
    (128, 64, 3, 1, 1, 2, 4), (64, 32, 5, 2, 1, 4, 8), (32, 1, 5, 2, 1, 8, 16),
]  # fmt: skip


def phase_index(K: int, p: int) -> tuple[torch.Tensor, int, int]:
    """For output phase a in {0, 1} and tap j: kernel index a + p - 2 (T0 + j), or K (a zero
    pad) where that falls outside the kernel; and the tap range [T0, T1] over the input."""
    ranges = [(math.ceil((a + p - K + 1) / 2), (a + p) // 2) for a in (0, 1)]
    T0, T1 = min(r[0] for r in ranges), max(r[1] for r in ranges)
    idx = torch.full((2, T1 - T0 + 1), K, dtype=torch.long)
    for a in (0, 1):
        for j in range(T1 - T0 + 1):
            k = a + p - 2 * (T0 + j)
            if 0 <= k < K:
                idx[a, j] = k
    return idx, T0, T1


def subpixel_deconv(x, weight, bias, p: int, out_size: int) -> torch.Tensor:
    cin, cout, K, _ = weight.shape
    idx, T0, T1 = phase_index(K, p)
    J = idx.shape[1]
    w = F.pad(weight, (0, 1, 0, 1))[:, :, idx][:, :, :, :, idx]  # cin, cout, 2, J, 2, J
    w = w.permute(1, 2, 4, 0, 3, 5).reshape(cout * 4, cin, J, J)
    right = (out_size + 1) // 2 - x.shape[-1] + T1
    y = F.conv2d(F.pad(x, (-T0, right, -T0, right)), w, bias.repeat_interleave(4))
    return F.pixel_shuffle(y, 2)[..., :out_size, :out_size]


def best_ms(fn, grad: torch.Tensor, repeats: int = 7) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn().backward(grad)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    torch.set_num_threads(1)
    for cin, cout, K, p, op, side, out in LAYERS:
        layer = nn.ConvTranspose2d(cin, cout, K, stride=2, padding=p, output_padding=op)
        x = torch.randn(256, cin, side, side, requires_grad=True)

        def native(layer=layer, x=x):
            return layer(x)

        def subpixel(layer=layer, x=x, p=p, out=out):
            return subpixel_deconv(x, layer.weight, layer.bias, p, out)

        y1, y2 = native(), subpixel()
        err = (y1 - y2).abs().max().item()
        grad = torch.randn_like(y1)
        ga = torch.autograd.grad((y1 * grad).sum(), [x, layer.weight, layer.bias])
        gb = torch.autograd.grad((y2 * grad).sum(), [x, layer.weight, layer.bias])
        gerr = max((a - b).abs().max().item() for a, b in zip(ga, gb, strict=True))
        tn, ts = [], []
        for _ in range(3):  # interleaved rounds
            tn.append(best_ms(native, grad))
            ts.append(best_ms(subpixel, grad))
        print(
            f"{cin}->{cout} {side}->{out}: err {err:.1e} gerr {gerr:.1e}  native {min(tn):.1f} ms"
            f"  subpixel {min(ts):.1f} ms  x{min(tn) / min(ts):.2f}"
        )


if __name__ == "__main__":
    main()
