"""Time loading each paper dataset twice (decode, then from the array cache) into a fresh cache.

    python bench/data_load.py [--data-dir ../shared/data]

Writes bench/results/data_load.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text
from dcbench.datasets import load_dataset

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in ("digits", "usps", "mnist-test", "mnist-full"):
            times = []
            for _ in range(3):  # 1st decodes and verifies checksums; later ones read the cache
                start = time.perf_counter()
                load_dataset(name, args.data_dir, cache_dir=cache)
                times.append(time.perf_counter() - start)
            rows.append({"dataset": name, "first_s": times[0], "cached_s": min(times[1:])})
            print(f"{name:12s} first {times[0]:.3f} s, cached {min(times[1:]):.3f} s")
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        "versions": runinfo.versions(),
        "note": "measured while other benchmarks kept the CPU busy",
        "rows": rows,
    }
    atomic_write_text(REPO / "bench" / "results" / "data_load.json", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
