"""Where DEPICT's USPS gap comes from: its initial clustering and its target, side by side.

    python bench/depict_ablation.py            # after the runs below

Reads the DEPICT records of these ``bench/paper_table.py`` folders (all on the same pretrained
``depict-cae`` weights, seeds 0-4 of ``usps-beyond``):

    usps-beyond               --groups depict                      (k-means, paper target)
    depict-acpic              --groups depict                      (AC-PIC, paper target)
    depict-acpic-dectarget    --groups depict --set depict.target=dec
    depict-kmeans-dectarget   --groups depict --set depict.target=dec --set depict.init=kmeans

(the three ablation folders were run with usps-beyond's ``pretrained/`` files copied into
theirs, so no pretraining was repeated; those copies are not committed) and writes
``bench/results/depict-ablation.md``: per configuration, the ACC of the initial
clusters, the best ACC the clean predictions reached while training, where the init stage
ended, and the final ACC / NMI (mean ± sample std over the seeds present). Labels only serve
the evaluation; nothing here selects a model by them.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text, load_torch
from dcbench.core.metrics import acc
from dcbench.datasets import load_dataset
from dcbench.methods import DeepClusterer
from dcbench.reports.tables import spread
from dcbench.runner.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CONFIGS = {  # folder: (initial clustering, target)
    "usps-beyond": ("k-means", "paper q/sqrt(f)"),
    "depict-kmeans-dectarget": ("k-means", "code q^2/f"),
    "depict-acpic": ("AC-PIC", "paper q/sqrt(f)"),
    "depict-acpic-dectarget": ("AC-PIC", "code q^2/f"),
}
PAPER = (96.4, 92.7)  # Ghasedi Dizaji et al. (2017), USPS ACC / NMI


def initial_acc(record: dict, folder: Path, data) -> float:
    """ACC (%) of a run's initial clusters. Records older than the iteration-0 history entry
    lack it: redo that step (the run's config with loss ``none`` on its pretrained weights
    clusters the same embedding with the same init, n_init and seed)."""
    first = record["history"]["clustering"][0]
    if first["iteration"] == 0:
        return 100 * first["acc"]
    state = load_torch(folder / "pretrained" / Path(record["pretrain_file"]).name)
    est = DeepClusterer(**{**record["config"], "loss": "none", "device": "cpu"})
    return 100 * acc(data.y, est.fit(data.x, pretrained=state).labels_)


def summarize(record: dict, folder: Path, data) -> dict[str, float]:
    """ACC (%) of the initial clusters, best and final, and where the init stage ended."""
    history = record["history"]["clustering"]
    init_stage = [e for e in history if "ce" in e]
    return {
        "initial": initial_acc(record, folder, data),
        "best": 100 * max(e["acc"] for e in history),
        "init_stage_end": init_stage[-1]["iteration"] if init_stage else 0,
        "iterations": history[-1]["iteration"],
        "acc": 100 * record["metrics"]["acc"],
        "nmi": 100 * record["metrics"]["nmi_geometric"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    data = load_dataset("usps", data_dir=p.parse_args().data_dir)
    lines = [
        "# DEPICT on USPS: initial clustering x target",
        "",
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, commit "
        f"{runinfo.git_commit()}; `python bench/depict_ablation.py` over the records of the "
        "folders named below (each record holds its own commit, machine and config). Same "
        "pretrained depict-cae per seed in every row; ACC / NMI in %, mean ± sample std over "
        f"the seeds present. Paper: ACC {PAPER[0]}, NMI {PAPER[1]}.",
        "",
        "| folder | initial clusters | target | seeds | ACC initial | ACC best while training "
        "| init stage ends at (iteration) | iterations | ACC final | NMI final |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for folder, (init, target) in CONFIGS.items():
        records = [
            r
            for r in ResultsStore(RESULTS / folder).records()
            if r["method"] == "depict" and r["status"] == "ok"
        ]
        rows = [
            summarize(r, RESULTS / folder, data) for r in sorted(records, key=lambda r: r["seed"])
        ]
        col = {k: [row[k] for row in rows] for k in rows[0]} if rows else {}
        cells = [spread(col.get(k, [])) for k in ("initial", "best")]
        cells += [spread(col.get(k, []), digits=0) for k in ("init_stage_end", "iterations")]
        cells += [spread(col.get(k, [])) for k in ("acc", "nmi")]
        seeds = ",".join(str(r["seed"]) for r in sorted(records, key=lambda r: r["seed"]))
        lines.append(
            f"| {folder} | {init} | {target} | {seeds or '–'} | " + " | ".join(cells) + " |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "depict-ablation.md", text)
    print(text)


if __name__ == "__main__":
    main()
