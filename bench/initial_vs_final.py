"""Where each run of a results folder started and where it ended (``reports/phases.py``: the
pretraining's last loss, the initial clustering's ACC, the best and the final ACC, the
clustering phase's iterations), per method and seed, with mean ± std.

    python bench/initial_vs_final.py --name mnist-test-beyond

Writes bench/results/<name>/initial_vs_final.md from the folder's records (the folder's
report.md has the same table, one row per cell).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.core.fileio import atomic_write_text
from dcbench.reports.phases import phase_markdown
from dcbench.runner.store import ResultsStore

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="folder under bench/results/")
    args = p.parse_args()
    folder = RESULTS / args.name
    if not (folder / "records").is_dir():
        p.error(f"--name {args.name!r}: no records in {folder} (the folders with records: "
                f"{', '.join(sorted(d.parent.name for d in RESULTS.glob('*/records')))})")  # fmt: skip
    title = (
        f"# {args.name}: initial clustering vs the end of training (`bench/initial_vs_final.py`)"
    )
    text = f"{title}\n\n{phase_markdown(ResultsStore(folder).records())}"
    atomic_write_text(folder / "initial_vs_final.md", text)
    print(text)


if __name__ == "__main__":
    main()
