"""Speed on a GPU: our training loops against the naive loop, in one run, on one device.

    python bench/speed_gpu.py [--repeats 3] [--workers 4] [--device cuda]

Per network (CAE 28x28, CAE 16x16, SAE 784), samples/s of pretraining (forward, backward,
Adam; the second epoch of two) and of the DCEC clustering phase, for: the naive loop
(``bench/naive_loop.py``: DataLoader, ``.to(device)`` per batch, fp32, ``.item()`` per
step); ours in fp32 (PyTorch's defaults: TF32 off for matmuls), in bf16 autocast, and in bf16
with ``--workers`` processes sharing the device (several seeds at once, as ``run_all.py
--jobs N --device cuda`` runs them; total samples/s). Each with achieved TFLOP/s against the
device's matmul peak probed in the same run. Arms are interleaved and repeated; medians.
Writes bench/results/speed/speed_gpu.json and .md with the device, versions and commit.
``--device cpu --quick`` runs every code path on tiny sizes (what the tests do).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import naive_loop  # noqa: E402

from dcbench.core import runinfo  # noqa: E402
from dcbench.core.fileio import write_result  # noqa: E402
from dcbench.core.flops import training_flops  # noqa: E402
from dcbench.methods import BACKBONES, DeepClusterer  # noqa: E402

OUT = REPO / "bench" / "results" / "speed"
NETS = {"CAE 28x28": ("cae", (1, 28, 28)), "CAE 16x16": ("cae", (1, 16, 16)),
        "SAE 784": ("sae", (1, 28, 28))}  # fmt: skip


def images(shape, n) -> np.ndarray:
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# -- arms: each returns samples/s ---------------------------------------------------------------


def ours_pretrain(backbone, shape, n, precision, device) -> float:
    est = DeepClusterer(backbone=backbone, pretrain_epochs=2, precision=precision,
                        device=device, random_state=0)  # fmt: skip
    return n / est.pretrain(images(shape, n))["history"][-1]["seconds"]  # 2nd epoch: warm


def naive_pretrain(backbone, shape, n, device) -> float:
    torch.manual_seed(0)
    model = BACKBONES.get(backbone).build(shape, 10)
    x = torch.from_numpy(images(shape, n))
    naive_loop.pretrain(model, x, epochs=1, device=device)  # warm-up epoch
    sync(device)
    start = time.perf_counter()
    naive_loop.pretrain(model, x, epochs=1, device=device)
    sync(device)
    return n / (time.perf_counter() - start)


def ours_cluster(backbone, shape, n, steps, precision, device) -> float:
    x = images(shape, n)
    est = DeepClusterer(backbone=backbone, pretrain_epochs=0, maxiter=steps,
                        update_interval=steps // 2, tol=0.0, kmeans_n_init=1,
                        precision=precision, device=device, random_state=0)  # fmt: skip
    state = est.pretrain(x)
    start = time.perf_counter()
    est.fit(x, pretrained=state)  # ends with the labels on the host: synchronized
    return steps * 256 / (time.perf_counter() - start)


def naive_cluster(backbone, shape, n, steps, device) -> float:
    torch.manual_seed(0)
    model = BACKBONES.get(backbone).build(shape, 10)
    x = torch.from_numpy(images(shape, n))
    start = time.perf_counter()
    naive_loop.cluster(model, x, 10, steps, update_interval=steps // 2, device=device)
    sync(device)
    return steps * 256 / (time.perf_counter() - start)


def together(pool, workers, fn, *args) -> float:
    """``workers`` processes running ``fn`` at once on the same device: total samples/s."""
    return sum(f.result() for f in [pool.submit(fn, *args) for _ in range(workers)])


def matmul_tflops(dtype, device, size, tf32=False, repeats=5) -> float:
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a = torch.rand(size, size, dtype=dtype, device=device)
        b = torch.rand(size, size, dtype=dtype, device=device)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            a @ b
            sync(device)
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


# -- main ---------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=4, help="processes sharing the device")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    p.add_argument("--out", default=str(OUT), help="folder for speed_gpu.json and .md")
    args = p.parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("speed_gpu.py: no CUDA device here; use --device cpu --quick to check it")
    n, steps, size = (512, 4, 256) if args.quick else (256 * 200, 600, 8192)
    started = time.perf_counter()
    peaks = {"fp32": matmul_tflops(torch.float32, device, size),
             "tf32": matmul_tflops(torch.float32, device, size, tf32=True),
             "bf16": matmul_tflops(torch.bfloat16, device, size)}  # fmt: skip
    print("matmul peak TFLOP/s:", {k: round(v, 1) for k, v in peaks.items()}, flush=True)
    pool = ProcessPoolExecutor(args.workers, multiprocessing.get_context("spawn"))
    w = args.workers
    phases = {
        "pretraining": {
            "naive fp32": lambda b, s: naive_pretrain(b, s, n, device),
            "ours fp32": lambda b, s: ours_pretrain(b, s, n, "fp32", device),
            "ours bf16": lambda b, s: ours_pretrain(b, s, n, "bf16", device),
            f"ours bf16, {w} processes": lambda b, s: together(
                pool, w, ours_pretrain, b, s, n, "bf16", device),
        },
        "clustering (DCEC)": {
            "naive fp32": lambda b, s: naive_cluster(b, s, n, steps, device),
            "ours fp32": lambda b, s: ours_cluster(b, s, n, steps, "fp32", device),
            "ours bf16": lambda b, s: ours_cluster(b, s, n, steps, "bf16", device),
            f"ours bf16, {w} processes": lambda b, s: together(
                pool, w, ours_cluster, b, s, n, steps, "bf16", device),
        },
    }  # fmt: skip
    rows = []
    for phase, arms in phases.items():
        for net, (backbone, shape) in NETS.items():
            flops = training_flops(BACKBONES.get(backbone).build(shape, 10), shape)
            samples: dict[str, list[float]] = {a: [] for a in arms}
            for _ in range(args.repeats):  # interleaved
                for arm, fn in arms.items():
                    samples[arm].append(fn(backbone, shape))
            naive = statistics.median(samples["naive fp32"])
            for arm, values in samples.items():
                median = statistics.median(values)
                rows.append({"phase": phase, "net": net, "arm": arm,
                             "samples_per_s": round(median), "vs_naive": round(median / naive, 2),
                             "tflops": round(median * flops / 1e12, 3)})  # fmt: skip
                print(f"{phase:18s} {net:10s} {arm:24s} {median:9.0f}/s  x{median / naive:.2f}",
                      flush=True)  # fmt: skip
    pool.shutdown()
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "device": runinfo.device_name(device),
        "machine": runinfo.machine(),
        "versions": runinfo.versions(),
        "repeats": args.repeats,
        "quick": args.quick,
        "matmul_peak_tflops": {k: round(v, 4) for k, v in peaks.items()},
        "rows": rows,
        "bench_seconds": round(time.perf_counter() - started),
    }
    out = Path(args.out)
    text = markdown(result)
    write_result(out, "speed_gpu", result, text)
    print(text)
    return result


def markdown(result: dict) -> str:
    peak = result["matmul_peak_tflops"]
    lines = [
        "# Speed on a GPU (`python bench/speed_gpu.py`)",
        "",
        f"{result['date']}, commit {result['git_commit']}, {result['device']}, "
        f"{result['machine']}, torch {result['versions'].get('torch')}; median of "
        f"{result['repeats']} interleaved repeats{' (--quick)' if result['quick'] else ''}; "
        f"this benchmark took {result['bench_seconds']} s.",
        "",
        "Matmul peak (TFLOP/s): " + ", ".join(f"{k} {v:.1f}" for k, v in peak.items()),
        "",
        "| phase | network | arm | samples/s | vs naive | TFLOP/s | of bf16 peak |",
        "|---|---|---|---:|---:|---:|---:|",
        *(
            f"| {r['phase']} | {r['net']} | {r['arm']} | {r['samples_per_s']} | "
            f"{r['vs_naive']:.2f}x | {r['tflops']} | {r['tflops'] / peak['bf16']:.1%} |"
            if peak["bf16"]
            else f"{r['vs_naive']:.2f}x | {r['tflops']} | – |"
            for r in result["rows"]
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
