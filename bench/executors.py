"""Wall time of one small digits suite under each executor, and whether the results agree.

    python bench/executors.py [--repeats 2] [--methods ...] [--seeds 4]

Runs the same ``run_all.py`` command in-process, with ``--jobs 2`` (local worker processes)
and with ``--executor ray`` (a local Ray cluster the driver starts), each into a fresh
folder, interleaved and repeated (this machine's second core is throttled at random, so only
times taken side by side compare). Wall time includes interpreter start and, for Ray, starting
the cluster. Writes bench/results/executors/executors.json and executors.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text
from dcbench.runner.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "executors"
LAYOUTS = {
    "in-process": ["--jobs", "1"],
    "local --jobs 2": ["--jobs", "2"],
    "ray": ["--executor", "ray"],  # as many tasks at once as the cluster has CPUs (2 here)
}


def outcome(out: Path) -> dict[str, tuple]:
    return {
        f"{r['method']}/{r['seed']}": (r["status"], tuple(sorted(r["metrics"].items())))
        for r in ResultsStore(out).records()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--methods", default="kmeans,sae-kmeans,dec,cae-kmeans,dcec")
    p.add_argument("--seeds", type=int, default=4)
    args = p.parse_args()
    base = [
        sys.executable, str(REPO / "run_all.py"), "--methods", args.methods,
        "--datasets", "digits", "--seeds", str(args.seeds), "--no-figures",
    ]  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="dcbench-executors-"))
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    outcomes = {}
    for repeat in range(args.repeats):
        for name, flags in LAYOUTS.items():
            out = tmp / f"{name.replace(' ', '_')}-{repeat}"
            start = time.perf_counter()
            subprocess.run([*base, *flags, "--out", str(out)], check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
            outcomes[name, repeat] = outcome(out)
            print(f"{name:16s} repeat {repeat}: {times[name][-1]:.1f} s", flush=True)
    reference = outcomes["in-process", 0]
    equal = all(o == reference for o in outcomes.values())
    rows = [
        {"executor": name, "seconds": [round(t, 1) for t in ts], "median_s": statistics.median(ts)}
        for name, ts in times.items()
    ]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        "versions": runinfo.versions(),
        "command": " ".join(["run_all.py", *base[2:]]),
        "records": len(reference),
        "results_equal_across_executors": equal,
        "rows": rows,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / "executors.json", json.dumps(result, indent=1))
    inproc = statistics.median(times["in-process"])
    lines = [
        "# Executors side by side (`python bench/executors.py`)",
        "",
        f"{result['date']}, commit {result['git_commit']}, {result['machine']}",
        "",
        f"Suite: `{result['command']}` ({len(reference)} records). Results identical across "
        f"executors and repeats: **{equal}**.",
        "",
        "| executor | wall s (each repeat) | median s | vs in-process |",
        "|---|---|---:|---:|",
        *(
            f"| {r['executor']} | {', '.join(map(str, r['seconds']))} | {r['median_s']:.1f} "
            f"| {inproc / r['median_s']:.2f}x |"
            for r in rows
        ),
        "",
    ]
    atomic_write_text(OUT / "executors.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
