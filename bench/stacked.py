"""Seeds trained together against seeds trained one after another: samples/s, same process.

    python bench/stacked.py [--seeds 5] [--repeats 2] [--device cpu] [--threads 1]
    python bench/stacked.py --quick          # every code path on tiny sizes (the tests)

Per network (CAE 28x28, CAE 16x16, SAE 784, SAE 256) and phase, S seeds of the real code:
``DeepClusterer.pretrain`` / ``fit`` per seed in turn ("separate") against
``methods.stacked.pretrain_stacked`` / ``fit_stacked`` ("stacked"). Pretraining: the second of
two epochs (warm); the clustering phase (DCEC's kl+rec): its steps alone (``seconds_["steps"]``,
no k-means or target updates). samples/s = S x samples / wall time. Arms interleaved, repeated,
medians. Writes bench/results/stacked/stacked.json and .md with machine, versions and commit;
``runner.stacking.use_stacking``'s CPU default follows this table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from dcbench.core import runinfo  # noqa: E402
from dcbench.core.fileio import write_result  # noqa: E402
from dcbench.methods import DeepClusterer  # noqa: E402
from dcbench.methods.stacked import fit_stacked, pretrain_stacked  # noqa: E402

OUT = REPO / "bench" / "results" / "stacked"
NETS = {"CAE 28x28": ("cae", (1, 28, 28)), "CAE 16x16": ("cae", (1, 16, 16)),
        "SAE 784": ("sae", (1, 28, 28)), "SAE 256": ("sae", (1, 16, 16))}  # fmt: skip


def estimators(backbone, seeds, device, **params):
    return [
        DeepClusterer(backbone, loss="kl+rec", pretrain_epochs=2, device=device, random_state=s,
                      **params)
        for s in range(seeds)
    ]  # fmt: skip


def pretraining(backbone, x, seeds, device, stacked: bool) -> float:
    """samples/s of the second pretraining epoch over all seeds."""
    ests = estimators(backbone, seeds, device)
    if stacked:
        seconds = pretrain_stacked(ests, x)[0]["history"][-1]["seconds"]  # the stack's epoch
    else:
        seconds = sum(e.pretrain(x)["history"][-1]["seconds"] for e in ests)
    return seeds * len(x) / seconds


def clustering(backbone, x, seeds, steps, device, pretrained, stacked: bool) -> float:
    """samples/s of the kl+rec phase's steps over all seeds (batch 256)."""
    params = dict(maxiter=steps, update_interval=steps, tol=0.0, kmeans_n_init=1)
    ests = estimators(backbone, seeds, device, **params)
    if stacked:  # each seed's "steps" is the stack's wall time shared out: add them back up
        fitted = fit_stacked(ests, x, None, pretrained)
    else:
        fitted = [e.fit(x, pretrained=state) for e, state in zip(ests, pretrained, strict=True)]
    seconds = sum(e.seconds_["steps"] for e in fitted)
    return seeds * steps * min(256, len(x)) / seconds


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, steps = (64, 2) if args.quick else (1024, 20)
    rows = []
    for name, (backbone, shape) in NETS.items():
        x = np.random.default_rng(0).random((n, *shape), dtype=np.float32)
        pretrained = pretrain_stacked(estimators(backbone, args.seeds, args.device), x)
        rates: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # interleaved: separate, stacked, separate, ...
            for stacked in (False, True):
                arm = "stacked" if stacked else "separate"
                rates.setdefault(f"pretraining {arm}", []).append(
                    pretraining(backbone, x, args.seeds, args.device, stacked)
                )
                rates.setdefault(f"clustering {arm}", []).append(
                    clustering(backbone, x, args.seeds, steps, args.device, pretrained, stacked)
                )
        for phase in ("pretraining", "clustering"):
            separate = statistics.median(rates[f"{phase} separate"])
            stacked = statistics.median(rates[f"{phase} stacked"])
            rows.append({"network": name, "phase": phase, "separate": round(separate, 1),
                         "stacked": round(stacked, 1), "ratio": round(stacked / separate, 2)})  # fmt: skip
            print(f"{name:10} {phase:12} separate {separate:9.1f}  stacked {stacked:9.1f} "
                  f"samples/s  x{stacked / separate:.2f}", flush=True)  # fmt: skip
    result = {
        "seeds": args.seeds, "threads": args.threads, "repeats": args.repeats,
        "samples": n, "steps": steps, "quick": args.quick,
        "device": runinfo.device_name(args.device), "machine": runinfo.machine(),
        **runinfo.cpu_features(), "versions": runinfo.versions(),
        "git_commit": runinfo.git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows,
    }  # fmt: skip
    write_result(Path(args.out), "stacked", result, markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [
        f"# Stacked seeds vs separate seeds ({result['seeds']} seeds, {result['device']})",
        "",
        f"Measured {result['date']} on {result['machine']} ({result['cpu_capability']}), "
        f"{result['threads']} thread(s), commit {result['git_commit']}, medians of "
        f"{result['repeats']} interleaved repeats; {result['samples']} samples, "
        f"{result['steps']} clustering steps of batch 256. samples/s over all seeds.",
        "",
        "| network | phase | separate | stacked | stacked / separate |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['network']} | {r['phase']} | {r['separate']} | {r['stacked']} | {r['ratio']} |"
        for r in result["rows"]
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main() and 0)
