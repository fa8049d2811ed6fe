"""The prepared GPU check: what the first session with a GPU runs first (a few minutes).

    python bench/device_check.py                          # on the GPU machine
    python bench/device_check.py --device cpu --quick     # every code path, tiny sizes (tests)

1. **Speed**: ``bench/speed_gpu.py`` with one repeat: samples/s of ours against the naive loop
   per network (CAE 28x28, CAE 16x16, SAE 784) and phase, fp32 and bf16, and W processes
   sharing the device.
2. **Launches per step**: kernel launches in one DCEC clustering step per network
   (``torch.profiler``: ``cudaLaunchKernel`` calls on CUDA; on CPU, the aten ops instead): a
   step of these small networks is launch-bound when this is in the hundreds.
3. **Stacked seeds**: 5 seeds of a short USPS DCEC stacked against separate (the largest
   relative difference of a logged loss, the labels that agree), and ``bench/stacked.py`` with
   one repeat (samples/s, stacked vs separate, per network and phase).
4. **Pixel k-means on the device**: the k-means baseline (20 restarts) on MNIST-full's pixels
   in torch on the device (``device_kmeans``): seconds, ACC and inertia, to set beside the CPU
   records of ``bench/results/table1`` (scikit-learn, same data).
5. **Projection**: the full Table 1 (8 methods x 3 datasets x 5 seeds, the registry's
   schedules) on this device, from the measured samples/s: pretraining once per (backbone,
   dataset, seed) at epochs x n samples, each clustering phase at maxiter x batch samples (an
   upper bound: runs stop early at tol), over W processes. Labelled a projection, not a
   measurement.

Writes ``bench/results/device-check/device_check.json`` and ``.md`` (device, versions,
commit). Then the second command, the table itself, whose ``meta.json`` records the measured
wall time of each call (its stages run as one suite): ``python bench/table1.py --device cuda
--workers W``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import speed_gpu  # noqa: E402
import stacked as stacked_speed  # noqa: E402

from dcbench.core import runinfo  # noqa: E402
from dcbench.core.fileio import write_result  # noqa: E402
from dcbench.methods import BACKBONES, LOSSES, METHODS, DeepClusterer  # noqa: E402
from dcbench.methods.stacked import fit_stacked, pretrain_stacked  # noqa: E402

OUT = REPO / "bench" / "results" / "device-check"
TABLE1 = ("kmeans", "sec", "sae-kmeans", "dec", "idec", "cae-kmeans", "dec-conv", "dcec")
DATASETS = {"mnist-full": (70000, (1, 28, 28)), "mnist-test": (10000, (1, 28, 28)),
            "usps": (9298, (1, 16, 16))}  # fmt: skip
SEEDS = 5


def network(backbone: str, shape) -> str:
    """The speed_gpu network whose rates stand for (backbone, image shape)."""
    if backbone == "sae":
        return "SAE 784"  # USPS's SAE (256 inputs) is smaller: an upper bound
    return "CAE 28x28" if shape[-1] == 28 else "CAE 16x16"


def launches_per_step(backbone: str, shape, device: str) -> int:
    """Kernel launches (CUDA) or aten ops (CPU) in one clustering step of kl+rec, batch 256."""
    from torch.profiler import ProfilerActivity, profile

    model = BACKBONES.get(backbone).build(shape, 10).to(device)
    x = torch.rand(256, *shape, device=device)
    centers = torch.nn.Parameter(torch.randn(10, 10, device=device))
    optimizer = torch.optim.Adam([*model.parameters(), centers], fused=True)
    phase = LOSSES.get("kl+rec")(_Est())
    p = torch.full((256, 10), 0.1, device=device)

    def step():
        phase.step(optimizer, *phase.batch_loss(model, centers, x, p))

    step()  # warm-up: first-call allocations and lazy initialization
    speed_gpu.sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        speed_gpu.sync(device)
    events = prof.events()
    if device == "cuda":
        return sum(1 for e in events if e.name in ("cudaLaunchKernel", "cuLaunchKernel"))
    return sum(1 for e in events if e.name.startswith("aten::"))


class _Est:
    """What the kl+rec phase reads of its estimator for one step."""

    alpha, gamma = 1.0, 0.1


def images(dataset: str, data_dir: str, synthetic_shape=None):
    """A dataset's images and labels, or (``--quick``) random images of ``synthetic_shape``."""
    import numpy as np

    if synthetic_shape is not None:
        x = np.random.default_rng(0).random(synthetic_shape, dtype=np.float32)
        return x, np.arange(len(x)) % 10
    from dcbench.datasets import load_dataset

    data = load_dataset(dataset, data_dir)
    return data.x, data.y


def stacked_equivalence(device: str, data_dir: str, quick: bool) -> dict:
    """A short USPS DCEC, 5 seeds, stacked against separate on this device: the largest
    relative difference of any logged loss (per target update) and the share of labels that
    agree. ``quick``: synthetic 16x16 images instead of USPS."""
    import numpy as np

    x, y = images("usps", data_dir, (128, 1, 16, 16) if quick else None)
    params = dict(loss="kl+rec", pretrain_epochs=1 if quick else 5, maxiter=10 if quick else 280,
                  update_interval=5 if quick else 20, tol=0.0, device=device)  # fmt: skip
    build = lambda: [DeepClusterer("cae", **params, random_state=s) for s in range(SEEDS)]  # noqa: E731
    started = time.perf_counter()
    pretrained = pretrain_stacked(build(), x)
    alone = [e.fit(x, y, pretrained=st) for e, st in zip(build(), pretrained, strict=True)]
    together = fit_stacked(build(), x, y, pretrained)
    worst, agree = 0.0, []
    for a, b in zip(alone, together, strict=True):
        for ha, hb in zip(a.history_["clustering"], b.history_["clustering"], strict=True):
            for term in ("kl", "rec"):
                if term in ha:
                    worst = max(worst, abs(hb[term] - ha[term]) / max(abs(ha[term]), 1e-12))
        agree.append(float(np.mean(a.labels_ == b.labels_)))
    return {"seeds": SEEDS, "iterations": params["maxiter"], "max_relative_loss_difference":
            worst, "labels_agree": agree, "seconds": round(time.perf_counter() - started)}  # fmt: skip


def pixel_kmeans(device: str, data_dir: str, quick: bool) -> dict:
    """The k-means baseline on MNIST-full's pixels (``quick``: 500 random 8x8 images) where
    ``device`` is: seconds (data on the device, result on the host), iterations, ACC."""
    from dcbench.core.metrics import acc
    from dcbench.methods import PixelKMeans, device_kmeans
    from dcbench.methods.training import resolve_device

    x, y = images("mnist-full", data_dir, (500, 1, 8, 8) if quick else None)
    spec = METHODS.get("kmeans")
    estimator = spec.build(spec.resolve("mnist-full", {"random_state": 0, "device": device}))
    PixelKMeans(n_init=1, max_iter=2, device=device).fit(x[:1000])  # warm-up: CUDA context, kernels
    speed_gpu.sync(device)
    started = time.perf_counter()
    estimator.fit(x)
    seconds = time.perf_counter() - started
    on_device = resolve_device(device).type in device_kmeans.DEVICE_TYPES
    return {"samples": len(x), "n_init": estimator.n_init, "seconds": round(seconds, 2),
            "path": "torch, on the device" if on_device else "scikit-learn, on the CPU",
            "n_iter": estimator.n_iter_, "acc": round(100 * acc(y, estimator.labels_), 2),
            "inertia": estimator.inertia_}  # fmt: skip


def projection(rates: dict[tuple[str, str], float], workers: int) -> dict:
    """Seconds of the full Table 1's deep runs on this device from measured samples/s (``rates``:
    (phase, network) -> samples/s of one process; with W processes their total rate)."""
    pretrain = cluster = 0.0
    for dataset, (n, shape) in DATASETS.items():
        pretrained = set()
        for name in TABLE1:
            config = METHODS.get(name).resolve(dataset)
            if "backbone" not in config:
                continue  # k-means and SEC: CPU methods, apart
            net = network(config["backbone"], shape)
            key = (config["backbone"], config["pretrain_epochs"])
            if key not in pretrained:  # one pretraining per backbone, dataset and seed
                pretrained.add(key)
                pretrain += SEEDS * config["pretrain_epochs"] * n / rates[("pretraining", net)]
            if config["loss"] != "none":
                samples = config["maxiter"] * config["batch_size"]
                cluster += SEEDS * samples / rates[("clustering (DCEC)", net)]
    return {"workers": workers, "pretraining_s": round(pretrain), "clustering_s": round(cluster),
            "total_s": round(pretrain + cluster)}  # fmt: skip


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int, default=4, help="processes sharing the device")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    p.add_argument("--out", default=str(OUT), help="folder for device_check.json and .md")
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device_check.py: no CUDA device here; --device cpu --quick checks it")
    started = time.perf_counter()
    out = Path(args.out)
    speed = speed_gpu.main(["--device", args.device, "--repeats", "1", "--workers",
                            str(args.workers), "--out", str(out)] + ["--quick"] * args.quick)  # fmt: skip
    launches = {net: launches_per_step(b, s, args.device) for net, (b, s) in speed_gpu.NETS.items()}
    projected = {}
    for label, arm in (("1 process, fp32", "ours fp32"),
                       (f"{args.workers} processes, bf16", f"ours bf16, {args.workers} processes")):  # fmt: skip
        rates = {
            (r["phase"], r["net"]): r["samples_per_s"] for r in speed["rows"] if r["arm"] == arm
        }
        if all((phase, net) in rates for phase in ("pretraining", "clustering (DCEC)")
               for net in speed_gpu.NETS):  # fmt: skip
            projected[label] = projection(rates, 1 if arm == "ours fp32" else args.workers)
    equivalence = stacked_equivalence(args.device, args.data_dir, args.quick)
    kmeans = pixel_kmeans(args.device, args.data_dir, args.quick)
    together = stacked_speed.main(["--device", args.device, "--repeats", "1", "--seeds",
                                   str(SEEDS), "--out", str(out)] + ["--quick"] * args.quick)  # fmt: skip
    rates = {("clustering (DCEC)" if r["phase"] == "clustering" else r["phase"], r["network"]):
             r["stacked"] for r in together["rows"]}  # fmt: skip
    projected[f"1 process, {SEEDS} seeds stacked, fp32"] = projection(rates, 1)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "device": runinfo.device_name(args.device),
        "versions": runinfo.versions(),
        "quick": args.quick,
        "launches_per_step": launches,
        "stacked_vs_separate": equivalence,
        "stacked_speed": together["rows"],
        "pixel_kmeans": kmeans,
        "launch_unit": "cudaLaunchKernel calls" if args.device == "cuda" else "aten ops",
        "projected_table1_deep_runs": projected,
        "check_seconds": round(time.perf_counter() - started),
    }
    text = markdown(result)
    write_result(out, "device_check", result, text)
    print(text)
    return result


def markdown(result: dict) -> str:
    lines = [f"# Device check: {result['device']}", "",
             f"{result['date']}, commit {result['git_commit']}, {result['check_seconds']} s"
             f"{' (--quick: code paths only, no numbers to quote)' if result['quick'] else ''}.",
             "", f"Per DCEC clustering step (batch 256), {result['launch_unit']}:", ""]  # fmt: skip
    lines += [f"- {net}: {n}" for net, n in result["launches_per_step"].items()]
    eq = result["stacked_vs_separate"]
    lines += ["", f"Stacked vs separate, a short USPS DCEC ({eq['seeds']} seeds, "
              f"{eq['iterations']} iterations): largest relative difference of a logged loss "
              f"{eq['max_relative_loss_difference']:.2e}; labels agreeing per seed "
              f"{', '.join(f'{a:.4f}' for a in eq['labels_agree'])}.", "",
              "| network | phase | separate samples/s | stacked samples/s | ratio |",
              "|---|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r['network']} | {r['phase']} | {r['separate']} | {r['stacked']} | {r['ratio']} |"
              for r in result["stacked_speed"]]  # fmt: skip
    km = result["pixel_kmeans"]
    lines += ["", f"Pixel k-means ({km['path']}; {km['samples']} images, {km['n_init']} restarts): "
              f"{km['seconds']} s, {km['n_iter']} iterations, ACC {km['acc']}, inertia "
              f"{km['inertia']:.6g}."]  # fmt: skip
    lines += ["", "**Projected** (not measured) seconds of Table 1's six deep methods x 3 datasets "
              "x 5 seeds, from the samples/s above (clustering at maxiter: an upper bound):", "",
              "| setting | pretraining s | clustering s | total s |", "|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {label} | {p['pretraining_s']} | {p['clustering_s']} | {p['total_s']} |"
              for label, p in result["projected_table1_deep_runs"].items()]  # fmt: skip
    lines += ["", "Then: `python bench/table1.py --device cuda --workers W` (meta.json: its measured "
              "wall time)."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
