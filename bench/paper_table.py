"""Full-protocol benchmark: methods x datasets x seeds with the paper's settings, resumable.

    python bench/paper_table.py --name usps --datasets usps --seeds 5 --workers 2

One ``run_all.py --jobs <workers> --threads 1`` over every method and seed (on this 2-core
machine two single-thread workers beat one two-thread process), writing into
``bench/results/<name>/``. Its units (a pretraining plus the methods sharing it, for one seed)
run in plan order, by default ``--order seed``: every method and dataset of seed 0 before seed
1, so that a long campaign has complete rows early. ``--protocol`` names the variant
(``run_all.py --list``). Rerunning the same command resumes: finished runs are skipped.
On a GPU, ``--device cuda --workers 8`` runs eight single-thread worker processes sharing it,
so that several seeds train at once.
Writes ``meta.json`` (machine, versions, date, commit) and ``comparison.md`` (ours vs Table 1,
with the delta) from whatever records exist, so partial results are labelled as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text
from dcbench.reports.tables import comparison_markdown, write_tables
from dcbench.runner.store import ResultsStore
from dcbench.suite import PAPER_DATASETS, SuiteConfig, parse_seeds, run_suite

REPO = Path(__file__).resolve().parents[1]
PAPER_GROUPS = "kmeans,sec,cae-kmeans,dec-conv,dcec;sae-kmeans,dec,idec"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="folder under bench/results/")
    p.add_argument(
        "--groups", default=PAPER_GROUPS, help="';'-separated groups of comma-separated methods"
    )
    p.add_argument("--datasets", default="usps")
    p.add_argument("--seeds", default="5")
    p.add_argument("--workers", type=int, default=2, help="worker processes (one thread each)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--protocol", default="paper", help="protocol variant (run_all.py --list)")
    p.add_argument(
        "--order",
        default="seed",
        help="seed (default: one seed of everything before the next) or dataset",
    )
    p.add_argument(
        "--report-only", action="store_true", help="only rebuild meta.json and comparison.md"
    )
    args = p.parse_args()

    out = REPO / "bench" / "results" / args.name
    (out / "logs").mkdir(parents=True, exist_ok=True)
    seeds = parse_seeds(args.seeds)
    groups = [g.strip() for g in args.groups.split(";") if g.strip()]
    wall = None
    if not args.report_only:
        start = time.perf_counter()
        code = run_table(",".join(groups), seeds, args, out)
        wall = time.perf_counter() - start
        print(f"run_all exited with {code} after {wall:.0f} s")
    write_report(out, args, groups, seeds, wall)
    return 0


def run_table(methods: str, seeds: list[int], args, out: Path) -> int:
    """One suite run over every method and seed, in this process: its units (a pretraining
    and the methods sharing it) run in plan order, ``--workers`` at a time, one thread each;
    what it prints goes to ``logs/run_all.log``."""
    config = SuiteConfig(
        methods=methods, datasets=args.datasets, seeds=seeds, out=out, data_dir=args.data_dir,
        device=args.device, progress=False, jobs=args.workers, threads=1,
        overrides=args.overrides, protocol=args.protocol, order=args.order,
    )  # fmt: skip
    with open(out / "logs" / "run_all.log", "a") as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return 1 if run_suite(config).failed else 0


def write_report(
    out: Path, args, groups: list[str], seeds: list[int], wall: float | None = None
) -> None:
    store = ResultsStore(out)
    frame = store.dataframe()
    datasets = PAPER_DATASETS if args.datasets == "paper" else args.datasets.split(",")
    expected = sum(len(g.split(",")) for g in groups) * len(datasets) * len(seeds)
    done = int((frame["status"] == "ok").sum())
    meta_path = out / "meta.json"
    previous = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta = {
        "command": " ".join(sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        "cpus": os.cpu_count(),
        "node": platform.node(),
        "versions": runinfo.versions(),
        "protocol": args.protocol,
        "runs_expected": expected,
        "runs_ok": done,
        "runs_failed": int((frame["status"] == "failed").sum()),
        "complete": done == expected,
        "total_seconds_ok_runs": float(frame.loc[frame["status"] == "ok", "seconds"].sum()),
        # wall time of the last invocation that ran anything (a resumed run counts its own)
        "last_wall_seconds": wall if wall is not None else previous.get("last_wall_seconds"),
        "device": args.device if wall is not None else previous.get("device", args.device),
        "gpu": torch.cuda.get_device_name()
        if wall is not None and args.device == "cuda"
        else previous.get("gpu"),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    write_tables(out)
    status = "complete" if meta["complete"] else f"PARTIAL: {done} of {expected} runs finished"
    title = f"# {args.name}: ours vs the published numbers ({status})"
    text = f"{title}\n\n{comparison_markdown(frame)}"
    atomic_write_text(out / "comparison.md", text)
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
