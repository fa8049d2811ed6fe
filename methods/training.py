"""Small training helpers shared by pretraining and the clustering phases."""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings

import numpy as np
import torch
from torch import nn

from dcbench.core.errors import TrainingDiverged, UsageError

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("auto", "fp32", "bf16")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    """Adam (Keras defaults but torch's eps) or SGD with momentum. Fused kernels where available:
    same arithmetic, one kernel per step instead of one per tensor."""
    params = list(params)
    fused = {"fused": True} if _fused_ok(params) else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, **fused)
    raise UsageError(f"unknown optimizer '{name}'; choose from: {', '.join(OPTIMIZERS)}")


def _fused_ok(params) -> bool:
    device = params[0].device.type if params else "cpu"
    return device in ("cpu", "cuda")


def autocast(device: torch.device, precision: str):
    """bf16 autocast for the forward pass when asked; fp32 is the plain path. ``auto`` left
    unresolved (an estimator used directly, which does not know its method's proof) is fp32."""
    if precision in ("fp32", "auto"):
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise UsageError(f"unknown precision '{precision}'; choose from: {', '.join(PRECISIONS)}")


def resolve_precision(precision: str, device, bf16_proven: bool) -> str:
    """``auto`` -> ``bf16`` where the device computes bf16 natively and the method's bf16
    results were shown to match fp32 (its registry entry's ``bf16_proven``), else ``fp32``;
    ``fp32`` and ``bf16`` stay as asked."""
    if precision != "auto":
        return precision
    return "bf16" if bf16_proven and native_bf16(torch.device(str(device))) else "fp32"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 in hardware (on a CPU: oneDNN's native bf16 kernels)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    from dcbench.core.runinfo import cpu_features

    return bool(cpu_features()["bf16_native"])


def check_precision(precision: str, device: torch.device) -> None:
    """Warn once per process when bf16 is asked for on a CPU that emulates it."""
    from dcbench.core.runinfo import cpu_features

    if precision == "bf16" and device.type == "cpu" and not cpu_features()["bf16_native"]:
        _warn_emulated_bf16(cpu_features()["cpu_capability"])


@functools.cache
def _warn_emulated_bf16(capability: str) -> None:
    warnings.warn(
        f"precision='bf16' on a CPU without native bf16 ({capability}): it runs about 7-8x "
        "slower than fp32 here (CPU-NOTES.md); use precision='fp32'",
        stacklevel=4,
    )


@torch.inference_mode()
def embed(
    model: nn.Module, x: torch.Tensor, batch_size: int = 4096, precision: str = "fp32"
) -> torch.Tensor:
    """The encoder's embedding of the whole dataset (encoder only, no autograd), in fp32."""
    was_training = model.training
    model.eval()
    with autocast(x.device, precision):
        z = torch.cat(
            [model.encode(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)]
        )
    model.train(was_training)
    return z


def use_exact_cuda_numerics() -> None:
    """The suite's stated CUDA choices, set by the runner in every process that runs units on
    a GPU (call it yourself when you use the estimators on CUDA directly):

    - fp32 means fp32: TF32 off for matmuls and for cuDNN convolutions (PyTorch leaves cuDNN's
      TF32 on by default, which would round the CAE's convolutions to 10-bit mantissas);
    - cuDNN picks deterministic algorithms, and does not benchmark (its pick could differ
      from one process to the next).

    A CUDA run is then repeatable for the same seed on the same GPU model, driver and torch
    version, except where an op has no deterministic CUDA kernel (DCN's ``index_add_`` center
    update adds with atomics); it is not bitwise the same as a CPU run."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init) and return a generator for data order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_image_tensor(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """Checked images (``check_images``) as (N, C, H, W) on ``device``; (N, H, W) gets a
    channel axis, (N, D) becomes (N, 1, 1, D)."""
    if X.ndim == 2:
        X = X[:, None, None, :]
    elif X.ndim == 3:
        X = X[:, None]
    return torch.from_numpy(np.ascontiguousarray(X)).to(device)


def check_finite(losses: dict[str, float], where: str, hint: str) -> None:
    """Stop a diverged run with its reason (it is recorded as failed; the others go on)."""
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        terms = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainingDiverged(f"loss diverged at {where} ({terms}); try a smaller {hint}")


CHECKPOINT_SECONDS = 60.0  # a clustering phase saves its progress at most this often


class PhaseCheckpoint:
    """A clustering phase's checkpoint (or none), saved at most every ``CHECKPOINT_SECONDS``."""

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        self.last_save = time.perf_counter()

    def load(self) -> dict | None:
        return self.checkpoint.load() if self.checkpoint is not None else None

    def due(self) -> bool:
        elapsed = time.perf_counter() - self.last_save
        return self.checkpoint is not None and elapsed >= CHECKPOINT_SECONDS

    def save(self, state: dict) -> None:
        self.checkpoint.save(state)
        self.last_save = time.perf_counter()


def rng_state(device: torch.device) -> dict:
    """The global RNG states a phase's dropout draws from (CPU, and the device's on CUDA)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
