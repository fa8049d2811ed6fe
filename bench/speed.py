"""Speed of our training loops against the naive loop, on this machine, in one run.

    python bench/speed.py [--repeats 3] [--data-dir ../shared/data]

Prints and writes (bench/results/speed/speed-KIND.json and .md, KIND the CPU's capability,
e.g. ``avx2`` or ``avx512-bf16``, with machine, versions and commit):

0. which kind of CPU this is: its capability (AVX2, AVX512, ...) and whether bf16 is native;
1. the matmul peak of this machine, probed in the same run before each network (fp32 and bf16,
   1 and 2 threads; the best probe counts, as the second core has slow spells);
2. per network (CAE 28x28, CAE 16x16, SAE 784), samples/s of one pretraining epoch (forward,
   backward, Adam) for the naive loop (``bench/naive_loop.py``: DataLoader, eager fp32,
   default Adam, ``.item()`` per step) and for "ours, default" (``DeepClusterer.pretrain`` at
   ``precision="auto"`` as the runner resolves it on this CPU: data resident, batches as
   slices, fused Adam, one sync per epoch), each at 1 and 2 threads against naive at as many,
   and in the suite's ``--jobs 2 --threads 1`` layout (two single-thread workers at once, total
   samples/s, against naive on 2 threads); bf16 arms only where bf16 is native; the same for
   the DCEC clustering phase (60 steps, two target updates); each with achieved GFLOP/s
   (analytic counts, ``dcbench/flops.py``) as a fraction of the probed peak;
3. whole processes: one short DCEC run on USPS (10 pretraining epochs + 700 iterations, one
   thread, 20 k-means restarts, no early stop) in a fresh interpreter, ours and naive
   interleaved (``--pairs``), wall time including start-up and imports;
4. where the time of one full-protocol run goes: DCEC on USPS, per part timed on the real data
   and multiplied by the counts of the committed run (``bench/results/table1``).

Arms are interleaved and repeated (this machine's second core is throttled at random); the
median is reported, and ratios are taken within the run.
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
from dcbench.methods.training import resolve_precision  # noqa: E402

OUT = REPO / "bench" / "results" / "speed"
NETS = {  # name: backbone, input shape, samples per timed epoch
    "CAE 28x28": ("cae", (1, 28, 28), 256 * 6),
    "CAE 16x16": ("cae", (1, 16, 16), 256 * 16),
    "SAE 784": ("sae", (1, 28, 28), 256 * 10),
}
CLUSTER_STEPS, CLUSTER_T = 60, 30  # two target updates, as in a full run's every T steps


def images(shape, n, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


# -- arms: each returns samples/s of its timed part -------------------------------------------


def ours_pretrain(backbone, shape, n, precision, threads) -> float:
    torch.set_num_threads(threads)
    est = DeepClusterer(backbone=backbone, pretrain_epochs=2, precision=precision,
                        device="cpu", random_state=0)  # fmt: skip
    history = est.pretrain(images(shape, n))["history"]
    return n / history[-1]["seconds"]  # the 2nd epoch: the 1st warms oneDNN's kernels up


def naive_pretrain(backbone, shape, n, threads) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BACKBONES.get(backbone).build(shape, 10)
    x = torch.from_numpy(images(shape, n))
    naive_loop.pretrain(model, x, epochs=1)  # warm-up epoch
    start = time.perf_counter()
    naive_loop.pretrain(model, x, epochs=1)
    return n / (time.perf_counter() - start)


def ours_cluster(backbone, shape, n, precision, threads) -> float:
    torch.set_num_threads(threads)
    x = images(shape, n)
    est = DeepClusterer(backbone=backbone, pretrain_epochs=0, maxiter=CLUSTER_STEPS,
                        update_interval=CLUSTER_T, tol=0.0, kmeans_n_init=1, precision=precision,
                        device="cpu", random_state=0)  # fmt: skip
    state = est.pretrain(x)
    start = time.perf_counter()
    est.fit(x, pretrained=state)
    return CLUSTER_STEPS * 256 / (time.perf_counter() - start)


def naive_cluster(backbone, shape, n, threads) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BACKBONES.get(backbone).build(shape, 10)
    x = torch.from_numpy(images(shape, n))
    start = time.perf_counter()
    naive_loop.cluster(model, x, 10, CLUSTER_STEPS, update_interval=CLUSTER_T)
    return CLUSTER_STEPS * 256 / (time.perf_counter() - start)


def _worker_init() -> None:
    torch.set_num_threads(1)


def two_workers(pool, fn, *args) -> float:
    """Two single-thread workers running ``fn`` at once: total samples/s."""
    return sum(f.result() for f in [pool.submit(fn, *args), pool.submit(fn, *args)])


def matmul_gflops(dtype, threads, size=1024, repeats=5) -> float:
    torch.set_num_threads(threads)
    a, b = torch.rand(size, size, dtype=dtype), torch.rand(size, size, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def probe_peaks() -> dict[str, float]:
    return {
        f"{name} {t} thread{'s' * (t > 1)}": matmul_gflops(dtype, t)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        for t in (1, 2)
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- whole processes: one short DCEC run each, ours against the naive port --------------------

WHOLE_RUN = dict(pretrain_epochs=10, maxiter=700)  # USPS, one thread, the same work in both


def one_dcec_run(arm: str, data_dir: str, epochs=WHOLE_RUN["pretrain_epochs"],
                 iterations=WHOLE_RUN["maxiter"], n=None) -> None:  # fmt: skip
    """One DCEC run on USPS (``n`` samples, default all) the way each side is used: ours
    through the estimator (labels given: ACC/NMI at every target update), naive through its
    loops; both 20 k-means restarts, no early stop, one thread."""
    from dcbench.datasets import load_dataset

    torch.set_num_threads(1)
    data = load_dataset("usps", data_dir)
    x, y = data.x[:n], data.y[:n]
    if arm == "ours":
        DeepClusterer("cae", loss="kl+rec", pretrain_epochs=epochs, maxiter=iterations, tol=0.0,
                      device="cpu", random_state=0).fit(x, y)  # fmt: skip
    else:
        torch.manual_seed(0)
        model = BACKBONES.get("cae").build(x.shape[1:], 10)
        xt = torch.from_numpy(x)
        naive_loop.pretrain(model, xt, epochs=epochs)
        naive_loop.cluster(model, xt, 10, iterations, n_init=20)


def whole_process_pairs(data_dir: str, pairs: int, extra=()) -> dict:
    """Wall time of fresh processes (interpreter start and imports included), ours and naive
    interleaved; medians and their ratio."""
    import subprocess

    seconds: dict[str, list[float]] = {"ours": [], "naive": []}
    for _ in range(pairs):
        for arm in ("naive", "ours"):
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--one-run", arm, "--data-dir", data_dir,
                            *extra], check=True)  # fmt: skip
            seconds[arm].append(time.perf_counter() - start)
    ours, naive = statistics.median(seconds["ours"]), statistics.median(seconds["naive"])
    return {"run": "DCEC on USPS, 10 pretraining epochs + 700 iterations, 1 thread",
            "seconds": seconds, "ours_s": round(ours, 1), "naive_s": round(naive, 1),
            "naive_over_ours": round(naive / ours, 3)}  # fmt: skip


# -- the breakdown of one full-protocol run ---------------------------------------------------


def breakdown(data_dir: str) -> dict:
    """DCEC on USPS, seed 0: each part timed here (1 thread), times the committed run's counts."""
    from dcbench.datasets import load_dataset
    from dcbench.runner.store import ResultsStore

    torch.set_num_threads(1)
    done = ResultsStore(REPO / "bench" / "results" / "table1").get("dcec", "usps", 0)
    if done is None:
        return {}
    updates = len(done["history"]["clustering"])
    n_iter = done["history"]["clustering"][-1]["iteration"]
    epochs = done["config"]["pretrain_epochs"]
    start = time.perf_counter()
    data = load_dataset("usps", data_dir)
    load_s = time.perf_counter() - start
    steps = 2 * done["config"]["update_interval"]
    config = {**done["config"], "device": "cpu", "pretrain_epochs": 2, "maxiter": steps}
    est = DeepClusterer(**{k: v for k, v in config.items() if k in DeepClusterer().get_params()})
    state = est.pretrain(data.x)
    epoch_s = state["history"][-1]["seconds"]
    est.set_params(tol=0.0).fit(data.x, data.y, pretrained=state)
    s = est.seconds_
    per_update = s["target_updates"] / 2
    per_eval = s.get("evaluation", 0.0) / 2
    per_step = s["steps"] / steps
    parts = {
        "data load": load_s,
        f"pretraining ({epochs} epochs)": epoch_s * epochs,
        "k-means init (n_init 20)": s["kmeans_init"],
        f"target updates ({updates})": per_update * updates,
        f"clustering steps ({n_iter})": per_step * n_iter,
        f"evaluation ({updates} x ACC/NMI)": per_eval * updates,
    }
    return {
        "run": "dcec / usps / seed 0 (bench/results/table1)",
        "committed_wall_s": done["seconds"] + (done.get("pretrain_seconds") or 0),
        "projected_s": parts,
    }


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--pairs", type=int, default=2, help="whole-process DCEC pairs (ours, naive)")
    p.add_argument("--one-run", choices=("ours", "naive"), help=argparse.SUPPRESS)
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: 300 samples
    args = p.parse_args()
    if args.one_run:  # a fresh process of the whole-process pair: one DCEC run, then exit
        size = dict(epochs=1, iterations=10, n=300) if args.tiny else {}
        one_dcec_run(args.one_run, args.data_dir, **size)
        return
    # which kind of CPU first: bf16 is native on AVX-512 bf16 and emulated (7-8x slower) on AVX2
    print("CPU:", runinfo.machine(), runinfo.cpu_features(), flush=True)
    started = time.perf_counter()
    pool = ProcessPoolExecutor(2, multiprocessing.get_context("spawn"), _worker_init)
    two_workers(pool, matmul_gflops, torch.float32, 1, 256, 1)  # start the workers

    peaks = probe_peaks()
    print("matmul peak GFLOP/s (first probe):", {k: round(v) for k, v in peaks.items()}, flush=True)

    # "ours, default": precision="auto" as the runner resolves it here (fp32 unless the CPU has
    # native bf16 and a method's bf16 results were proven); each against naive, same threads
    default = resolve_precision("auto", "cpu", bf16_proven=False)
    native = runinfo.cpu_features()["bf16_native"]
    arms = {
        "naive (1 thread)": lambda b, s, n: naive_pretrain(b, s, n, 1),
        "ours, default (1 thread)": lambda b, s, n: ours_pretrain(b, s, n, default, 1),
        "naive (2 threads)": lambda b, s, n: naive_pretrain(b, s, n, 2),
        "ours, default (2 threads)": lambda b, s, n: ours_pretrain(b, s, n, default, 2),
        "ours, default (--jobs 2, 2 x 1 thread)": lambda b, s, n: two_workers(
            pool, ours_pretrain, b, s, n, default, 1
        ),
    }
    cluster_arms = {
        "naive (1 thread)": lambda b, s, n: naive_cluster(b, s, n, 1),
        "ours, default (1 thread)": lambda b, s, n: ours_cluster(b, s, n, default, 1),
        "naive (2 threads)": lambda b, s, n: naive_cluster(b, s, n, 2),
        "ours, default (2 threads)": lambda b, s, n: ours_cluster(b, s, n, default, 2),
        "ours, default (--jobs 2, 2 x 1 thread)": lambda b, s, n: two_workers(
            pool, ours_cluster, b, s, n, default, 1
        ),
    }
    if native:  # bf16 is measured only where it is native (emulated it is 7-8x slower)
        for table, fn in ((arms, ours_pretrain), (cluster_arms, ours_cluster)):
            table["ours bf16 (2 threads)"] = lambda b, s, n, fn=fn: fn(b, s, n, "bf16", 2)
            table["ours bf16 (--jobs 2, 2 x 1 thread)"] = lambda b, s, n, fn=fn: two_workers(
                pool, fn, b, s, n, "bf16", 1
            )
    rows = []
    for phase, phase_arms in (("pretraining", arms), ("clustering (DCEC)", cluster_arms)):
        for net, (backbone, shape, n) in NETS.items():
            flops = training_flops(BACKBONES.get(backbone).build(shape, 10), shape)
            # the second core has slow spells: re-probe before each block, keep the best
            peaks = {k: max(v, peaks[k]) for k, v in probe_peaks().items()}
            samples: dict[str, list[float]] = {a: [] for a in phase_arms}
            for _ in range(args.repeats):  # interleaved: A B C ... A B C ...
                for arm, fn in phase_arms.items():
                    samples[arm].append(fn(backbone, shape, n))
            for arm, values in samples.items():
                # against the naive loop on as many threads (--jobs 2: two cores, as naive's 2)
                naive = statistics.median(
                    samples[f"naive ({'1 thread' if '(1 thread)' in arm else '2 threads'})"]
                )
                median = statistics.median(values)
                rows.append({
                    "phase": phase, "net": net, "arm": arm,
                    "samples_per_s": round(median), "best": round(max(values)),
                    "vs_naive": round(median / naive, 2),
                    "gflops": round(median * flops / 1e9, 1),
                })  # fmt: skip
                print(f"{phase:18s} {net:10s} {arm:36s} {median:8.0f}/s  x{median / naive:.2f}",
                      flush=True)  # fmt: skip
    pool.shutdown()
    for row in rows:  # against the best peak probed over the whole run
        row["of_fp32_peak"] = round(row["gflops"] / peaks["fp32 2 threads"], 2)
    whole = whole_process_pairs(args.data_dir, args.pairs)
    parts = breakdown(args.data_dir)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        **runinfo.cpu_features(),
        "versions": runinfo.versions(),
        "repeats": args.repeats,
        "matmul_peak_gflops": {k: round(v, 1) for k, v in peaks.items()},
        "default_precision": default,
        "rows": rows,
        "whole_process": whole,
        "breakdown": parts,
        "bench_seconds": round(time.perf_counter() - started),
    }
    text = markdown(result)
    # one file per kind of CPU (speed-avx2, speed-avx512-bf16, ...): their ratios differ
    kind = result["cpu_capability"].lower() + ("-bf16" if result["bf16_native"] else "")
    write_result(OUT, f"speed-{kind}", result, text)
    print(text)


def markdown(result: dict) -> str:
    lines = [
        "# Speed (`python bench/speed.py`)",
        "",
        f"{result['date']}, commit {result['git_commit']}, {result['machine']}, "
        f"torch {result['versions'].get('torch')}; median of {result['repeats']} interleaved "
        f"repeats; this benchmark took {result['bench_seconds']} s.",
        "",
        f"CPU capability {result.get('cpu_capability')}, native bf16: "
        f'{result.get("bf16_native")}; "ours, default" ran in '
        f'{result.get("default_precision")} (precision="auto" resolved here).',
        "",
        "Matmul peak (1024^3, GFLOP/s, best of the probes before each network): "
        + ", ".join(f"{k} {v:.0f}" for k, v in result["matmul_peak_gflops"].items()),
        "",
        "| phase | network | arm | samples/s | vs naive | GFLOP/s | of fp32 2-thread peak |",
        "|---|---|---|---:|---:|---:|---:|",
        *(
            f"| {r['phase']} | {r['net']} | {r['arm']} | {r['samples_per_s']} | "
            f"{r['vs_naive']:.2f}x | {r['gflops']} | {r['of_fp32_peak']:.0%} |"
            for r in result["rows"]
        ),
        "",
    ]
    w = result.get("whole_process")
    if w:
        lines += [
            f"Whole processes ({w['run']}; fresh interpreter each, ours and naive interleaved, "
            f"median of {len(w['seconds']['ours'])}): ours {w['ours_s']} s, naive "
            f"{w['naive_s']} s: naive / ours = {w['naive_over_ours']:.3f}.",
            "",
        ]
    if result["breakdown"]:
        b = result["breakdown"]
        total = sum(b["projected_s"].values())
        lines += [
            f"Where one full-protocol run goes: {b['run']}, each part timed here on one "
            f"thread times the committed run's counts (projected total {total:.0f} s; the "
            f"committed run took {b['committed_wall_s']:.0f} s on a loaded machine).",
            "",
            "| part | seconds | share |",
            "|---|---:|---:|",
            *(f"| {k} | {v:.1f} | {v / total:.1%} |" for k, v in b["projected_s"].items()),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
