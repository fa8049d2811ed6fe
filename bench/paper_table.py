"""Full-protocol benchmark: methods x datasets x seeds with the paper's settings, resumable.

    python bench/paper_table.py --name usps --datasets usps --seeds 5 --workers 2

Work is split into units (a group of methods sharing a backbone, for one seed), taken from a
queue by ``--workers`` single-thread ``run_all.py`` processes (on this 2-core machine two
single-thread workers beat one two-thread process), writing into ``bench/results/<name>/``.
Groups run in the order given, so the CAE methods (the paper's subject) finish first. Rerunning the same command resumes: finished runs are skipped.
Writes ``meta.json`` (machine, versions, date, commit) and ``comparison.md`` (ours vs Table 1,
with the delta) from whatever records exist, so partial results are labelled as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from dcbench import runinfo
from dcbench.cli import parse_seeds
from dcbench.fileio import atomic_write_text
from dcbench.reports.tables import comparison_markdown, write_tables
from dcbench.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
PAPER_GROUPS = "kmeans,cae-kmeans,dec-conv,dcec;sae-kmeans,dec,idec"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="folder under bench/results/")
    p.add_argument(
        "--groups", default=PAPER_GROUPS, help="';'-separated groups of comma-separated methods"
    )
    p.add_argument("--datasets", default="usps")
    p.add_argument("--seeds", default="5")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument(
        "--report-only", action="store_true", help="only rebuild meta.json and comparison.md"
    )
    args = p.parse_args()

    out = REPO / "bench" / "results" / args.name
    (out / "logs").mkdir(parents=True, exist_ok=True)
    seeds = parse_seeds(args.seeds)
    groups = [g.strip() for g in args.groups.split(";") if g.strip()]
    if not args.report_only:
        units = [(group, seed) for group in groups for seed in seeds]
        with ThreadPoolExecutor(args.workers) as pool:
            codes = list(pool.map(lambda unit: run_unit(*unit, args, out), units))
        print(f"units exited with {codes}")
    write_report(out, args, groups, seeds)
    return 0


def run_unit(methods: str, seed: int, args, out: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "run_all.py"), "--methods", methods, "--datasets", args.datasets,
           "--seeds", f"{seed},", "--out", str(out), "--data-dir", args.data_dir, "--device", "cpu", "--no-progress"]  # fmt: skip
    for o in args.overrides:
        cmd += ["--set", o]
    with open(out / "logs" / f"{methods.split(',')[-1]}-seed{seed}.log", "a") as log:
        return subprocess.run(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        ).returncode


def write_report(out: Path, args, groups: list[str], seeds: list[int]) -> None:
    store = ResultsStore(out)
    frame = store.dataframe()
    expected = sum(len(g.split(",")) for g in groups) * len(args.datasets.split(",")) * len(seeds)
    done = int((frame["status"] == "ok").sum())
    meta = {
        "command": " ".join(sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        "cpus": os.cpu_count(),
        "node": platform.node(),
        "versions": runinfo.versions(),
        "runs_expected": expected,
        "runs_ok": done,
        "runs_failed": int((frame["status"] == "failed").sum()),
        "complete": done == expected,
        "total_seconds_ok_runs": float(frame.loc[frame["status"] == "ok", "seconds"].sum()),
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1))
    write_tables(out)
    status = "complete" if meta["complete"] else f"PARTIAL: {done} of {expected} runs finished"
    text = f"# {args.name}: ours vs the paper's Table 1 ({status})\n\n" + comparison_markdown(frame)
    atomic_write_text(out / "comparison.md", text)
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
