"""The fast paths give the plain paths' results: fused optimizer steps and encoder-only target
computation give the same labels as plain ones in fp32; bf16 autocast stays close to fp32; and
the naive reference loop of bench/speed.py trains the same network (so its timings compare)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import blobs
from sklearn.metrics import adjusted_rand_score

from dcbench.core.metrics import acc
from dcbench.methods import DeepClusterer, layers, training
from dcbench.methods import losses as losses_module
from dcbench.methods.depict import DepictAutoencoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import naive_loop  # noqa: E402

SMALL = dict(
    backbone="cae", loss="kl+rec", n_clusters=3, pretrain_epochs=6, maxiter=60,
    update_interval=20, batch_size=32, pretrain_batch_size=32, kmeans_n_init=3,
    device="cpu", random_state=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return blobs(n_per_cluster=40, n_clusters=3, shape=(1, 8, 8))


def plain_optimizer(name, params, lr, momentum=0.0):
    """torch's default (per-tensor foreach) kernels instead of the fused ones."""
    if name == "adam":
        return torch.optim.Adam(list(params), lr=lr, fused=False, foreach=False)
    return torch.optim.SGD(list(params), lr=lr, momentum=momentum, fused=False, foreach=False)


def plain_embed(model, x, batch_size=4096, precision="fp32"):
    """The full autoencoder in train mode under no_grad, as public ports compute the target."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)])


def test_fp32_fast_paths_give_the_plain_paths_labels(data, monkeypatch):
    x, _ = data
    fast = DeepClusterer(**SMALL).fit(x)
    monkeypatch.setattr(training, "make_optimizer", plain_optimizer)
    monkeypatch.setattr("dcbench.methods.deep.make_optimizer", plain_optimizer)
    monkeypatch.setattr(losses_module, "make_optimizer", plain_optimizer)
    monkeypatch.setattr(losses_module, "embed", plain_embed)
    plain = DeepClusterer(**SMALL).fit(x)
    assert np.array_equal(fast.labels_, plain.labels_)
    np.testing.assert_allclose(fast.cluster_centers_, plain.cluster_centers_, atol=1e-4)


def test_bf16_autocast_stays_within_tolerance_of_fp32(data):
    x, y = data
    fp32 = DeepClusterer(**SMALL).fit(x)
    bf16 = DeepClusterer(**{**SMALL, "precision": "bf16"}).fit(x)
    rec32 = fp32.history_["pretrain"][-1]["rec"]
    rec16 = bf16.history_["pretrain"][-1]["rec"]
    assert abs(rec16 - rec32) <= 0.1 * rec32  # same pretraining, to bf16's 3 significant digits
    assert adjusted_rand_score(fp32.labels_, bf16.labels_) > 0.9
    assert acc(y, bf16.labels_) > 0.95


def test_the_naive_reference_loop_trains_the_same_network(data):
    x, _ = data
    torch.manual_seed(0)
    from dcbench.methods import BACKBONES

    model = BACKBONES.get("cae").build((1, 8, 8), 10)
    xt = torch.from_numpy(x)
    before = torch.nn.functional.mse_loss(model(xt)[1], xt).item()
    naive_loop.pretrain(model, xt, epochs=20, batch_size=32)
    after = torch.nn.functional.mse_loss(model(xt)[1], xt).item()
    assert after < 0.5 * before
    naive_loop.cluster(model, xt, n_clusters=3, iterations=30, update_interval=10, batch_size=32)


CONV_T_CASES = [  # the CAE's and DEPICT's deconvolution geometries (few channels: gradcheck's
    # Jacobians are dense), and a rectangular, bias-free one
    dict(in_channels=5, out_channels=3, kernel_size=3, stride=2, padding=0, output_padding=0),
    dict(in_channels=4, out_channels=3, kernel_size=5, stride=2, padding=2, output_padding=1),
    dict(in_channels=3, out_channels=1, kernel_size=4, stride=2, padding=0, output_padding=1),
    dict(in_channels=6, out_channels=4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2),
         output_padding=(1, 0), bias=False),
]  # fmt: skip


@pytest.mark.parametrize("case", CONV_T_CASES)
def test_conv_transpose_as_input_grad_has_the_gradients_of_conv_transpose(case):
    torch.manual_seed(0)
    native = torch.nn.ConvTranspose2d(**case).double()
    x = torch.randn(2, case["in_channels"], 3, 4, dtype=torch.double, requires_grad=True)
    bias = native.bias

    def ours(x, weight, bias):
        return layers.conv_transpose2d_as_input_grad(
            x, weight, bias, native.stride, native.padding, native.output_padding
        )

    assert torch.allclose(ours(x, native.weight, bias), native(x))
    inputs = (x, native.weight) if bias is None else (x, native.weight, bias)
    assert torch.autograd.gradcheck(lambda *a: ours(*a, *([None] * (3 - len(a)))), inputs)


def test_conv_transpose_layer_takes_the_fast_path_only_under_cpu_bf16_autocast(monkeypatch):
    torch.manual_seed(0)
    layer = layers.ConvTranspose2d(64, 32, 5, stride=2, padding=2, output_padding=1)
    native = torch.nn.ConvTranspose2d(64, 32, 5, stride=2, padding=2, output_padding=1)
    native.load_state_dict(layer.state_dict())
    x = torch.randn(4, 64, 7, 7)
    assert torch.equal(layer(x), native(x))  # fp32: PyTorch's own kernel, bitwise
    calls = []
    monkeypatch.setattr(layers, "conv_transpose2d_as_input_grad", lambda *a: calls.append(a))
    layer(x)
    assert calls == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
    assert len(calls) == 1 and calls[0][0].dtype == torch.bfloat16


BF16_LAYERS = [  # ours, PyTorch's, input shape: the CAE 28x28's first and last deconvolution
    # (the last, to a single channel, goes through fold) and its second convolution
    (layers.ConvTranspose2d, torch.nn.ConvTranspose2d, dict(in_channels=128, out_channels=64,
     kernel_size=3, stride=2), (8, 128, 3, 3)),
    (layers.ConvTranspose2d, torch.nn.ConvTranspose2d, dict(in_channels=32, out_channels=1,
     kernel_size=5, stride=2, padding=2, output_padding=1), (8, 32, 14, 14)),
    (layers.Conv2d, torch.nn.Conv2d, dict(in_channels=32, out_channels=64, kernel_size=5,
     stride=2, padding=2), (8, 32, 14, 14)),
]  # fmt: skip


@pytest.mark.parametrize("ours, theirs, kwargs, shape", BF16_LAYERS)
def test_conv_layers_in_bf16_match_native_bf16_within_tolerance(ours, theirs, kwargs, shape):
    torch.manual_seed(0)
    layer, native = ours(**kwargs), theirs(**kwargs)
    native.load_state_dict(layer.state_dict())
    x = torch.randn(shape)
    assert torch.equal(layer(x), native(x))  # fp32: PyTorch's own kernel, bitwise
    outs, grads = [], []
    for m in (layer, native):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        assert y.dtype == torch.bfloat16
        y.float().square().sum().backward()
        outs.append(y.float())
        grads.append(m.weight.grad.clone())
    assert grads[0].dtype == torch.float32 and grads[0].is_contiguous()  # as the optimizer had it
    torch.testing.assert_close(outs[0], outs[1], rtol=0.02, atol=0.02)
    scale = grads[1].abs().max().item()
    torch.testing.assert_close(grads[0], grads[1], rtol=0.05, atol=0.02 * scale)


def test_depict_network_under_bf16_autocast_tracks_fp32():
    torch.manual_seed(0)
    net = DepictAutoencoder((1, 28, 28))
    x = torch.rand(16, 1, 28, 28)
    losses, grads = [], []
    for precision in ("fp32", "bf16"):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            h1, h2, z = net.features(x, noisy=False)  # clean: no random dropout
            r2, r1, r0 = net.decode(z)
            loss = sum(
                F.mse_loss(a.float(), b.float()) for a, b in ((r0, 2 * x - 1), (r1, h1), (r2, h2))
            )
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert losses[1] == pytest.approx(losses[0], rel=0.02)
    cosine = F.cosine_similarity(grads[0], grads[1], dim=0).item()
    assert cosine > 0.99
