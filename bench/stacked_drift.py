"""How far seeds trained together land from seeds trained alone after a full-length fit.

    python bench/stacked_drift.py [--methods all] [--seeds 2] [--datasets digits]
    python bench/stacked_drift.py --methods dec --datasets usps --seeds 4 \
        --separate bench/results/table1          # against a campaign's own runs

Runs the same suite twice into fresh folders, ``--stack-seeds off`` then ``on`` (same device,
threads and protocol), and compares every record: ACC and NMI of each (method, seed), and
whether the labels are the same. With ``--separate DIR`` the separate arm is DIR's records
(full-protocol runs done already) and the stacked arm starts from DIR's pretrained weights
(``pretrained/*.pt``): the difference is then that of the stacked clustering phase alone.
Stacked products round differently from single ones, and a full protocol amplifies that as
another thread count would; this says by how much. Writes
bench/results/stacked/drift-DATASETS.json and .md with machine, versions and commit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from dcbench.core import runinfo  # noqa: E402
from dcbench.core.fileio import load_torch, write_result  # noqa: E402
from dcbench.runner.plan import config_changes  # noqa: E402
from dcbench.runner.pretrain_cache import adopt_finished  # noqa: E402
from dcbench.runner.store import ResultsStore  # noqa: E402
from dcbench.suite import SuiteConfig, run_suite  # noqa: E402

OUT = REPO / "bench" / "results" / "stacked"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="all")
    p.add_argument("--datasets", default="digits")
    p.add_argument("--seeds", default="2")
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--separate", default=None, help="a results folder: its records are the "
                   "separate arm, its pretrained weights the stacked arm's start")  # fmt: skip
    args = p.parse_args(argv)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="stacked-drift-") as scratch:
        arms = ("off", "on")
        if args.separate:
            arms = ("on",)
            adopt_finished(Path(args.separate) / "pretrained", Path(scratch) / "on" / "pretrained")
        for stack in arms:
            result = run_suite(SuiteConfig(
                methods=args.methods, datasets=args.datasets, seeds=args.seeds,
                out=Path(scratch) / stack, data_dir=args.data_dir, stack_seeds=stack,
                overrides=args.overrides, figures=False, progress=False,
            ))  # fmt: skip
            runs[stack] = {
                (r["method"], r["dataset"], r["seed"]): (r, _labels(r)) for r in result.records
            }
    if args.separate:
        held = ResultsStore(Path(args.separate))
        runs["off"] = {key: (r, _labels(r)) for key in runs["on"]
                       if (r := held.get(*key)) is not None}  # fmt: skip
        if missing := sorted(set(runs["on"]) - set(runs["off"])):
            raise SystemExit(f"{args.separate} has no record of {', '.join(map(str, missing))}")
    rows = []
    for key, (alone, labels_alone) in sorted(runs["off"].items()):
        together, labels_together = runs["on"][key]
        if args.separate:
            _check_same_start(key, alone, together)
        row = {"method": key[0], "dataset": key[1], "seed": key[2],
               "stacked": bool(together.get("stacked_seeds")),
               "status": f"{alone['status']}/{together['status']}",
               "pretrain reused": together.get("pretrain_reused")}  # fmt: skip
        if alone["status"] == together["status"] == "ok":
            for metric in ("acc", "nmi_geometric"):
                row[f"{metric} separate"] = alone["metrics"][metric]
                row[f"{metric} stacked"] = together["metrics"][metric]
            row["same labels"] = (  # None: a model file could not be read
                None
                if labels_alone is None or labels_together is None
                else bool(np.array_equal(labels_alone, labels_together))
            )
        rows.append(row)
    compared = [r for r in rows if r["stacked"] and "acc separate" in r]
    gaps = [abs(r["acc stacked"] - r["acc separate"]) for r in compared]
    result = {
        "command": f"--methods {args.methods} --datasets {args.datasets} --seeds {args.seeds}"
        + (f" --separate {args.separate}" if args.separate else ""),
        "separate_commits": sorted({alone.get("git_commit", "?") for alone, _ in runs["off"].values()}),
        "overrides": args.overrides, "rows": rows,
        "stacked_runs": len(compared), "same_labels": sum(r["same labels"] is True for r in compared),
        "mean_abs_acc_gap": statistics.mean(gaps) if gaps else None,
        "max_abs_acc_gap": max(gaps) if gaps else None,
        "machine": runinfo.machine(), **runinfo.cpu_features(), "versions": runinfo.versions(),
        "git_commit": runinfo.git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    write_result(
        Path(args.out), f"drift-{args.datasets.replace(',', '-')}", result, markdown(result)
    )
    print(markdown(result))
    return result


def _check_same_start(key, alone: dict, together: dict) -> None:
    """With --separate, the stacked arm must differ from the folder's run in stacking alone: the
    same config, the same device type, and the folder's pretrained weights reused."""
    if changed := config_changes(key[0], together["config"], alone["config"]):
        raise SystemExit(f"{key}: the separate run had another config ({', '.join(changed)})")
    if runinfo.device_type(together["device"]) != runinfo.device_type(alone["device"]):
        raise SystemExit(f"{key}: the separate run was on {alone['device']}, this one on "
                         f"{together['device']}; pass --set device=... to match")  # fmt: skip
    if not together.get("pretrain_reused"):
        raise SystemExit(f"{key}: the folder's pretrained weights were not reused")


def _labels(record):
    state = load_torch(record["model_file"]) if record.get("model_file") else None
    return None if state is None else np.asarray(state["labels"])


def markdown(result: dict) -> str:
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    lines = [
        f"# Stacked vs separate seeds after a full fit ({result['command']})",
        "",
        f"Measured {result['date']} on {result['machine']} ({result['cpu_capability']}), "
        f"commit {result['git_commit']}. "
        + (
            "The separate arm is the folder's own records (commits "
            f"{', '.join(result['separate_commits'])}); the stacked arm starts from the same "
            "pretrained weights, so only the clustering phase is stacked."
            if "--separate" in result["command"]
            else "The same suite run twice into fresh folders, `--stack-seeds off` then `on`."
        ),
        "",
    ]
    if result["stacked_runs"]:
        lines += [
            f"Of {result['stacked_runs']} stacked runs, {result['same_labels']} end with the "
            f"same labels as alone; ACC differs by {pct(result['mean_abs_acc_gap'])} points "
            f"on average, {pct(result['max_abs_acc_gap'])} at most.",
            "",
        ]
    lines += [
        "| method | dataset | seed | stacked | ACC separate | ACC stacked | NMI separate "
        "| NMI stacked | same labels |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        if "acc separate" not in r:
            lines.append(f"| {r['method']} | {r['dataset']} | {r['seed']} | {r['stacked']} "
                         f"| {r['status']} | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r['method']} | {r['dataset']} | {r['seed']} | {'yes' if r['stacked'] else 'no'} "
            f"| {pct(r['acc separate'])} | {pct(r['acc stacked'])} "
            f"| {pct(r['nmi_geometric separate'])} | {pct(r['nmi_geometric stacked'])} "
            f"| {({True: 'yes', False: 'no'}).get(r['same labels'], '?')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main() and 0)
