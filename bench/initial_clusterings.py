"""k-means vs AC-PIC as the initial clustering, on the very embeddings a benchmark's runs
started from: is a poor start the pretrained embedding's or the initial clustering's?

    python bench/initial_clusterings.py --name mnist-test-beyond --method depict

For every ok record of METHOD in bench/results/NAME whose pretrained autoencoder is still in
NAME/pretrained/ (those files are not committed: run it where the benchmark ran), fits the
record's config with loss ``none`` (no training after pretraining) twice on the same weights:
``init=kmeans`` (n_init from the config, the record's seed) and ``init=ac-pic``. Writes
NAME/initial_clusterings.md: ACC / NMI of each per seed, beside the run's final ACC.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text, load_torch
from dcbench.core.metrics import evaluate
from dcbench.datasets import load_dataset
from dcbench.methods import DeepClusterer
from dcbench.methods.phase import INITS
from dcbench.reports.tables import spread
from dcbench.runner.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HEADER = ("k-means ACC", "k-means NMI", "k-means classes",
          "AC-PIC ACC", "AC-PIC NMI", "AC-PIC classes", "run final ACC")  # fmt: skip


def fmt(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def classes_leading_a_cluster(y: np.ndarray, labels: np.ndarray) -> int:
    """How many true classes are the majority of at least one cluster: below the number of
    classes when some clusters hold two classes (and others split one)."""
    return len({int(np.bincount(y[labels == k]).argmax()) for k in np.unique(labels)})


def initial_scores(record: dict, folder: Path, data) -> dict[str, tuple[float, float, int]] | None:
    """(ACC, NMI) in % of each initial clustering on the record's pretrained embedding, and
    how many classes lead a cluster."""
    path = folder / "pretrained" / Path(record["pretrain_file"]).name
    state = load_torch(path)  # None if missing (not committed) or corrupt
    if state is None:
        return None
    scores = {}
    for init in INITS:
        config = {**record["config"], "loss": "none", "init": init, "device": "cpu"}
        labels = DeepClusterer(**config).fit(data.x, pretrained=state).labels_
        metrics = evaluate(data.y, labels)
        scores[init] = (
            100 * metrics["acc"],
            100 * metrics["nmi_geometric"],
            classes_leading_a_cluster(data.y, labels),
        )
    return scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="folder under bench/results/")
    p.add_argument("--method", required=True)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args()
    folder = RESULTS / args.name
    records = sorted(
        (r for r in ResultsStore(folder).records()
         if r["method"] == args.method and r["status"] == "ok"),
        key=lambda r: (r["dataset"], r["seed"]),
    )  # fmt: skip
    if not records:
        raise SystemExit(f"no ok records of method {args.method!r} in {folder}")
    started = time.perf_counter()
    rows, columns, datasets = [], {}, {}
    for r in records:
        if r["dataset"] not in datasets:
            datasets[r["dataset"]] = load_dataset(r["dataset"], data_dir=args.data_dir)
        scores = initial_scores(r, folder, datasets[r["dataset"]])
        if scores is None:
            print(f"{r['dataset']} seed {r['seed']}: no pretrained file, skipped")
            continue
        cells = [*scores["kmeans"], *scores["ac-pic"], 100 * r["metrics"]["acc"]]
        rows.append(f"| {r['dataset']} | {r['seed']} | " + " | ".join(map(fmt, cells)) + " |")
        print(rows[-1], flush=True)
        for i, c in enumerate(cells):
            columns.setdefault((r["dataset"], i), []).append(c)
    for dataset in sorted({d for d, _ in columns}):
        n = len(columns[(dataset, 0)])
        cells = [spread(columns[(dataset, i)]) for i in range(len(HEADER))]
        rows.append(f"| {dataset} | mean ± std ({n}) | " + " | ".join(cells) + " |")
    text = "\n".join([
        f"# {args.name}: k-means vs AC-PIC on the pretrained embeddings of `{args.method}`",
        "",
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, commit "
        f"{runinfo.git_commit()}, {runinfo.machine()}; `python bench/initial_clusterings.py "
        f"--name {args.name} --method {args.method}` ({time.perf_counter() - started:.0f} s). "
        "Each row: one seed's pretrained autoencoder, clustered with no further training "
        "(loss `none`) by k-means and by AC-PIC; 'classes' counts the true classes that are "
        "the majority of some cluster (fewer than the clusters: some cluster holds two "
        "classes); 'run final' is the ACC the run itself ended at. ACC / NMI (geometric) in "
        "%, mean ± sample std over seeds.",
        "",
        "| dataset | seed | " + " | ".join(HEADER) + " |",
        "|---|---|" + "---:|" * len(HEADER),
        *rows,
    ]) + "\n"  # fmt: skip
    atomic_write_text(folder / "initial_clusterings.md", text)
    print(text)


if __name__ == "__main__":
    main()
