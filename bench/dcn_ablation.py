"""Why DCN ends below its start on the paper protocol's SAE: its k-means weight and step size.

    python bench/dcn_ablation.py                 # USPS, seed 0, every variant
    python bench/dcn_ablation.py --seeds 0,1 --variants gamma0.01

DCN's settings (gamma = 1, SGD lr 1e-4; ``methods/dcn.py``) come from the authors' code for
its own SAE on MNIST x5.1. Each variant here changes one of them and runs DCN from the same
pretrained SAEs: a variant's folder reuses the pretrained weights found in ``--pretrained``
(default: the Table 1 campaign's), so only DCN's clustering phase runs. ``code`` is the
registry entry itself, in ``bench/results/usps-dcn/`` (the 5-seed benchmark; another
dataset's ``<dataset>-dcn/``). Writes
``bench/results/dcn-ablation/ablation.md`` and ``.json``: per variant and seed the ACC of the
initial k-means, ACC and mean loss terms over the first epoch, and the final ACC / NMI.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
OUT = RESULTS / "dcn-ablation"

# variant -> DCN overrides, one setting changed at a time; "code" is the registry entry
VARIANTS = {
    "code": {},
    "gamma0.1": {"gamma": 0.1},
    "gamma0.01": {"gamma": 0.01},
    "lr4e-05": {"lr": 4e-05},
    "lr1e-05": {"lr": 1e-05},
}


def variant_folder(name: str, dataset: str, out: Path) -> Path:
    """``code``: the dataset's DCN benchmark folder (``bench/results/usps-dcn``); the others
    under ``out`` (USPS's by the variant's name, another dataset's prefixed with it)."""
    if name == "code":
        return RESULTS / f"{dataset}-dcn"
    return Path(out) / (name if dataset == "usps" else f"{dataset}-{name}")


def main(argv=None) -> dict:
    from dcbench.core import runinfo
    from dcbench.core.fileio import write_result
    from dcbench.runner.pretrain_cache import adopt_finished
    from dcbench.runner.store import ResultsStore
    from dcbench.suite import SuiteConfig, parse_seeds, run_suite

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS)
    )
    p.add_argument("--dataset", default="usps")
    p.add_argument("--seeds", default="0,")
    p.add_argument("--pretrained", default=str(RESULTS / "table1" / "pretrained"))
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="for every variant")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in chosen if v not in VARIANTS]:
        raise SystemExit(
            f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
        )
    seeds, rows = parse_seeds(args.seeds), []
    for name in chosen:
        folder, changes = variant_folder(name, args.dataset, args.out), VARIANTS[name]
        # the SAEs finished elsewhere (never a checkpoint): only DCN's phase runs
        adopt_finished(args.pretrained, folder / "pretrained", f"sae__{args.dataset}__seed*.pt")
        sets = args.overrides + [f"dcn.{k}={v}" for k, v in changes.items()]
        run_suite(SuiteConfig(methods="dcn", datasets=args.dataset, seeds=args.seeds, out=folder,
                              data_dir=args.data_dir, overrides=sets, figures=False,
                              progress=False))  # fmt: skip
        store = ResultsStore(folder)
        for seed in seeds:
            record = store.get("dcn", args.dataset, seed)
            if record is not None and record.get("status") == "ok":
                rows.append({"variant": name, "changes": changes, **first_epoch(record)})
    result = {
        "dataset": args.dataset, "rows": rows, "machine": runinfo.machine(),
        **runinfo.cpu_features(), "versions": runinfo.versions(),
        "git_commit": runinfo.git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    text = markdown(result)
    write_result(Path(args.out), "ablation", result, text)
    print(text)
    return result


def first_epoch(record: dict) -> dict:
    """ACC of the initial k-means; ACC, label change and mean loss terms of the first epoch;
    the final scores; the commit that ran it."""
    history = record["history"]["clustering"]
    start, first = history[0], history[1] if len(history) > 1 else history[0]
    return {"seed": record["seed"], "acc_initial": start["acc"], "acc_epoch1": first["acc"],
            "changed_epoch1": first.get("delta_label"), "rec_epoch1": first.get("rec"),
            "kmeans_epoch1": first.get("kmeans"), "kmeans_last": history[-1].get("kmeans"),
            "acc_final": record["metrics"]["acc"], "nmi_final": record["metrics"]["nmi_geometric"],
            "pretrain_reused": record.get("pretrain_reused"),
            "git_commit": record.get("git_commit")}  # fmt: skip


def markdown(result: dict) -> str:
    pct = lambda v: "–" if v is None else f"{100 * v:.2f}"  # noqa: E731
    num = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [f"# DCN on the paper protocol's SAE, {result['dataset']}: one setting changed at a time",
             "", f"Written {result['date']} on {result['machine']} ({result['cpu_capability']}), "
             f"commit {result['git_commit']}, from the variants' records (each says the commit "
             "that ran it). Every variant starts from the same pretrained SAE of its seed. ACC "
             "and NMI in %; 'epoch 1' is the first pass over the data: its ACC and share of "
             "labels changed, and its mean summed reconstruction and k-means terms.", "",
             "| variant | change | seed | ACC initial | ACC epoch 1 | changed epoch 1 "
             "| rec epoch 1 | k-means epoch 1 | k-means last | ACC final | NMI final |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in result["rows"]:
        change = ", ".join(f"{k} {v}" for k, v in r["changes"].items()) or "none (gamma 1, lr 1e-4)"
        lines.append(f"| {r['variant']} | {change} | {r['seed']} | {pct(r['acc_initial'])} "
                     f"| {pct(r['acc_epoch1'])} | {pct(r['changed_epoch1'])} "
                     f"| {num(r['rec_epoch1'])} | {num(r['kmeans_epoch1'])} "
                     f"| {num(r['kmeans_last'])} | {pct(r['acc_final'])} "
                     f"| {pct(r['nmi_final'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main() and 0)
