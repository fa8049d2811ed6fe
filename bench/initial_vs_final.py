"""Where each run of a results folder started and where it ended: the ACC of the initial
clustering (the history's iteration 0), the best ACC logged while training (evaluation only:
nothing selects by it) and the final ACC / NMI, per method and seed, with mean ± std.

    python bench/initial_vs_final.py --name mnist-test-beyond

Writes bench/results/<name>/initial_vs_final.md from the folder's records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dcbench.core.fileio import atomic_write_text
from dcbench.reports.tables import spread
from dcbench.runner.store import ResultsStore

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("ACC initial", "ACC best while training", "ACC final", "NMI final")


def rows(store: ResultsStore) -> dict[str, list[tuple[int, tuple[float, ...]]]]:
    by_method: dict[str, list[tuple[int, tuple[float, ...]]]] = {}
    for r in store.records():
        history = (r.get("history") or {}).get("clustering")
        if r.get("status") != "ok" or not history:
            continue
        values = (history[0]["acc"], max(e.get("acc", 0.0) for e in history),
                  r["metrics"]["acc"], r["metrics"]["nmi_geometric"])  # fmt: skip
        by_method.setdefault(f"{r['method']} / {r['dataset']}", []).append((r["seed"], values))
    return by_method


def markdown(name: str, by_method) -> str:
    lines = [f"# {name}: initial clustering vs the end of training (`bench/initial_vs_final.py`)",
             "", "ACC and NMI (geometric) in %.", "",
             "| method / dataset | seed | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for method, runs in sorted(by_method.items()):
        for seed, values in sorted(runs):
            lines.append(
                f"| {method} | {seed} | " + " | ".join(f"{100 * v:.2f}" for v in values) + " |"
            )
        if len(runs) > 1:
            cols = zip(*(v for _, v in runs), strict=True)
            cells = [spread([100 * v for v in c]) for c in cols]
            lines.append(f"| {method} | mean ± std ({len(runs)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="folder under bench/results/")
    args = p.parse_args()
    folder = RESULTS / args.name
    text = markdown(args.name, rows(ResultsStore(folder)))
    atomic_write_text(folder / "initial_vs_final.md", text)
    print(text)


if __name__ == "__main__":
    main()
