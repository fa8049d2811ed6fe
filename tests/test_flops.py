"""The analytic FLOP counts that bench/speed.py divides by agree with PyTorch's own counter."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from dcbench.core.flops import forward_flops, training_flops
from dcbench.methods.backbones import BACKBONES

CASES = [("cae", (1, 28, 28)), ("cae", (1, 16, 16)), ("cae", (1, 8, 8)), ("sae", (1, 28, 28))]


def counted(model, shape, backward: bool) -> int:
    x = torch.rand(4, *shape)
    with FlopCounterMode(display=False) as counter:
        _, rec = model(x)
        if backward:
            F.mse_loss(rec, x).backward()
    return counter.get_total_flops() // 4


@pytest.mark.parametrize(("backbone", "shape"), CASES)
def test_analytic_counts_match_torch_flop_counter(backbone, shape):
    model = BACKBONES.get(backbone).build(shape, 10)
    assert forward_flops(model, shape) == counted(model, shape, backward=False)
    assert training_flops(model, shape) == counted(model, shape, backward=True)


def test_known_count_of_the_28x28_cae_forward_pass():
    # conv1 + conv2 + conv3 + fc + fc + deconv3 + deconv2 + deconv1, by hand (2 FLOP per MAC)
    by_hand = 2 * (
        32 * 25 * 14 * 14 + 64 * 32 * 25 * 7 * 7 + 128 * 64 * 9 * 3 * 3 + 1152 * 10
        + 10 * 1152 + 64 * 128 * 9 * 3 * 3 + 32 * 64 * 25 * 7 * 7 + 1 * 32 * 25 * 14 * 14
    )  # fmt: skip
    model = BACKBONES.get("cae").build((1, 28, 28), 10)
    assert forward_flops(model, (1, 28, 28)) == by_hand
