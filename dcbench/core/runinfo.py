"""Where and with what a run happened: library versions, git commit, device."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from dcbench.core.errors import UsageError

_LIBRARIES = ("dcbench", "torch", "numpy", "scipy", "scikit-learn", "pandas", "openTSNE")


@functools.cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@functools.cache
def git_commit() -> str:
    """The checkout's commit, with ``-dirty`` if its code has uncommitted changes (committed
    benchmark output under bench/results/ does not count). Outside git (an installed copy, or
    a checkout's files sent to a machine without its history): ``DCBENCH_GIT_COMMIT`` as the
    sender stated it (``git describe --always --dirty --abbrev=40`` says whether the files were
    dirty), marked ``(stated)``, else ``unknown``."""
    repo = Path(__file__).resolve().parents[2]  # dcbench/core/runinfo.py -> the checkout
    stated = os.environ.get("DCBENCH_GIT_COMMIT")
    if not (repo / ".git").exists() and stated:
        return f"{stated} (stated)"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


@functools.cache
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs"


@functools.cache
def cpu_features() -> dict[str, object]:
    """What kind of CPU the numbers came from: torch's kernel capability (e.g. AVX2, AVX512)
    and whether oneDNN has native bf16 (without it, bf16 autocast runs 7-8x slower than fp32)."""
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16_native": native}


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda requested but no CUDA device is available; use --device cpu or auto"
        )
    if requested not in ("cpu", "cuda"):
        raise UsageError(f"unknown device '{requested}'; choose from: auto, cpu, cuda")
    return requested


def device_type(device) -> str:
    """``cpu``, ``cuda``, ...: what a planned device or a record's device runs on
    (``cuda (H100)``, ``cuda:1``, ``cpu (1 threads)`` -> ``cuda``, ``cuda``, ``cpu``)."""
    return str(device).split(" ")[0].split(":")[0]


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return "cpu"
