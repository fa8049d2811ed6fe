"""SEC and spectral baselines: every dataset x 5 seeds, a mu x gamma sweep on USPS, ablations.

    OMP_NUM_THREADS=1 python bench/sec.py                 # everything (about half an hour, 1 core)
    python bench/sec.py --datasets usps --no-sweep --no-ablations
    python bench/sec.py --report-only                     # rebuild results.md from results.json

Each (method, dataset, settings) runs in its own subprocess (``--worker``), single-threaded, so
its peak memory (``ru_maxrss``) is its own. A worker builds the embedding once (k-NN graph +
eigenvectors; it does not depend on the seed) and then runs k-means (n_init = 20) once per seed;
a run's wall time is reported as embedding time + that seed's k-means time, and the embedding
time is also reported on its own. Writes ``bench/results/sec/results.json`` and ``results.md``;
``notes.md`` there (hand-written analysis), if present, is appended to results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "sec"
DATASETS = ("digits", "usps", "mnist-test", "mnist-full")
METHODS = ("sec", "spectral")
SWEEP_MU = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
SWEEP_GAMMA = (1e-2, 1.0, 1e2, 1e4)
# settings that justify the defaults, mostly on the dataset of the paper's SEC number
ABLATIONS = (
    ("sec", "usps", {"pca_components": None}),
    ("sec", "mnist-test", {"pca_components": None}),
    ("sec", "mnist-full", {"pca_components": None}),
    ("sec", "mnist-full", {"eigen_solver": "arpack"}),
    ("sec", "mnist-full", {"normalize_rows": False}),
    ("sec", "mnist-full", {"n_neighbors": 5}),
    ("sec", "mnist-full", {"n_neighbors": 20}),
    ("sec", "mnist-full", {"mu": 0.003}),
    ("sec", "mnist-full", {"mu": 0.03}),
    ("sec", "mnist-full", {"affinity": "connectivity"}),
    ("spectral", "mnist-full", {"pca_components": None}),
)
PAPER_ACC = {("sec", "mnist-full"): 80.37}  # Table 1 of the DCEC paper (PROTOCOL.md)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ----------------------------------------------------------------------------- worker


def worker(method: str, dataset: str, overrides: dict, seeds: list[int], data_dir: str) -> dict:
    """One embedding + k-means per seed, in this process. Returns a JSON-able record."""
    from dcbench.core.metrics import acc, nmi_arithmetic, nmi_geometric
    from dcbench.datasets import load_dataset
    from dcbench.methods import METHODS as REGISTRY

    data = load_dataset(dataset, data_dir)
    rss_loaded = _maxrss_gib()
    n_clusters = int(np.unique(data.y).size)
    config = REGISTRY.get(method).resolve(dataset, {"n_clusters": n_clusters, **overrides})
    estimator = REGISTRY.get(method).build({**config, "random_state": seeds[0]})
    start = time.perf_counter()
    estimator.fit_embedding(data.x)
    embed_seconds = time.perf_counter() - start
    runs = []
    for seed in seeds:
        estimator.set_params(random_state=seed)
        start = time.perf_counter()
        estimator.cluster_embedding()
        kmeans_seconds = time.perf_counter() - start
        labels = estimator.labels_
        runs.append(
            {
                "seed": seed,
                "acc": acc(data.y, labels),
                "nmi_geometric": nmi_geometric(data.y, labels),
                "nmi_arithmetic": nmi_arithmetic(data.y, labels),
                "kmeans_seconds": kmeans_seconds,
                "wall_seconds": embed_seconds + kmeans_seconds,
            }
        )
    return {
        "method": method,
        "dataset": dataset,
        "overrides": overrides,
        "config": {k: v for k, v in config.items() if k != "random_state"},
        "n_samples": int(data.x.shape[0]),
        "n_features": int(np.prod(data.x.shape[1:])),
        "embedding_seconds": embed_seconds,
        "graph_seconds": estimator.timings_["graph"],
        "eigensolver_seconds": estimator.timings_["eigensolver"],
        "eigenvalues": [float(v) for v in estimator.eigenvalues_],
        "graph_nnz": int(estimator.graph_.nnz),
        "peak_rss_gib": _maxrss_gib(),
        "rss_after_loading_gib": rss_loaded,
        "runs": runs,
    }


def _maxrss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# ----------------------------------------------------------------------------- driver


def run_worker(method, dataset, overrides, seeds, data_dir, threads) -> dict:
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARS}}
    cmd = [sys.executable, __file__, "--worker", method, dataset, json.dumps(overrides),
           "--seeds", ",".join(map(str, seeds)), "--data-dir", data_dir]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {method} {dataset} {overrides} failed:\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["process_seconds"] = time.perf_counter() - start
    record["load_average_after"] = os.getloadavg()
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=3, metavar=("METHOD", "DATASET", "OVERRIDES_JSON"))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per worker")
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--report-only", action="store_true")
    p.add_argument(
        "--context", default="", help="what else ran on the machine, quoted in results.md"
    )
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]

    if args.worker:
        method, dataset, overrides = args.worker
        record = worker(method, dataset, json.loads(overrides), seeds, args.data_dir)
        print(json.dumps(record))
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads((out / "results.json").read_text())
    else:
        results = {"meta": _meta(args), "main": [], "sweep": [], "ablations": []}
        jobs = [
            ("main", m, d, {}) for d in args.datasets.split(",") for m in args.methods.split(",")
        ]
        if not args.no_sweep:
            jobs += [("sweep", "sec", "usps", {"mu": mu, "gamma": g})
                     for mu in SWEEP_MU for g in SWEEP_GAMMA]  # fmt: skip
        if not args.no_ablations:
            jobs += [("ablations", m, d, o) for m, d, o in ABLATIONS]
        for i, (section, method, dataset, overrides) in enumerate(jobs, 1):
            record = run_worker(method, dataset, overrides, seeds, args.data_dir, args.threads)
            results[section].append(record)
            accs = [r["acc"] for r in record["runs"]]
            print(f"[{i}/{len(jobs)}] {section} {method} {dataset} {overrides or ''} "
                  f"ACC {np.mean(accs):.4f} embed {record['embedding_seconds']:.1f}s "
                  f"peak {record['peak_rss_gib']:.2f} GiB", flush=True)  # fmt: skip
            results["meta"]["finished"] = _now()
            results["meta"]["load_average_end"] = os.getloadavg()
            (out / "results.json").write_text(json.dumps(results, indent=1))
    notes = out / "notes.md"
    md = report(results) + ("\n" + notes.read_text() if notes.exists() else "")
    (out / "results.md").write_text(md)
    print(f"wrote {out / 'results.md'}")
    return 0


def _meta(args) -> dict:
    from dcbench.core import runinfo

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "methods/sec.py", "methods/graph.py", "bench/sec.py"],
        cwd=REPO, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return {
        "command": " ".join(sys.argv),
        "started": _now(),
        "git_commit": commit,
        "sec_files_uncommitted": bool(dirty),
        "machine": runinfo.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "platform": platform.platform(),
        "versions": runinfo.versions(),
        "threads_per_worker": args.threads,
        "context": args.context,
        "seeds": args.seeds,
        "load_average_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- report


def _ms(values, scale=100.0) -> str:
    v = np.asarray(values) * scale
    return f"{v.mean():.2f} ± {v.std():.2f}"


def _summary_row(r: dict, label: str) -> str:
    runs = r["runs"]
    km = np.mean([x["kmeans_seconds"] for x in runs])
    wall = np.mean([x["wall_seconds"] for x in runs])
    paper = PAPER_ACC.get((r["method"], r["dataset"]))
    return (
        f"| {label} | {r['dataset']} | {r['n_samples']} | {_ms([x['acc'] for x in runs])} "
        f"| {_ms([x['nmi_geometric'] for x in runs])} | {_ms([x['nmi_arithmetic'] for x in runs])} "
        f"| {r['graph_seconds']:.1f} | {r['eigensolver_seconds']:.1f} | {km:.1f} | {wall:.1f} "
        f"| {r['peak_rss_gib']:.2f} ({r['rss_after_loading_gib']:.2f}) "
        f"| {'-' if paper is None else f'{paper:.2f}'} |"
    )


SUMMARY_HEAD = (
    "| method | dataset | n | ACC % | NMI geo % | NMI arith % | graph s | eigen s | k-means s/seed "
    "| wall s/run | peak RSS GiB (after data load) | paper ACC |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def report(results: dict) -> str:
    meta = results["meta"]
    v = meta["versions"]
    lines = [
        "# SEC and spectral clustering baselines",
        "",
        f"Generated by `bench/sec.py` (`{meta['command']}`), {meta['started']} to "
        f"{meta.get('finished', '?')}, at commit `{meta['git_commit']}`"
        + (" with the SEC files not yet committed" if meta.get("sec_files_uncommitted") else "")
        + ".",
        f"Machine: {meta['cpu']}, {meta['cpu_count']} cores, "
        f"{meta['memory_gib']:.1f} GiB RAM ({meta['platform']}). "
        f"Python {v.get('python')}, numpy {v.get('numpy')}, scipy {v.get('scipy')}, "
        f"scikit-learn {v.get('scikit-learn')}.",
        "",
        f"**Timing conditions.** Every worker ran with {meta['threads_per_worker']} "
        "BLAS/OpenMP thread(s), one worker at a time"
        + (f", {meta['context']}" if meta.get("context") else "")
        + f". 1-minute load average {meta['load_average_start'][0]:.1f} at the start, "
        f"{meta.get('load_average_end', [float('nan')])[0]:.1f} at the end (per worker: "
        "`load_average_after` in results.json). On a busy machine the times are slower than on "
        "an idle one and only roughly comparable between rows.",
        "",
        "Seeds "
        + meta["seeds"]
        + "; the seed only changes k-means (n_init = 20), so each row computes the embedding "
        "(k-NN graph + eigenvectors) once and runs k-means once per seed. *graph s* (PCA + k-NN "
        "search + weights) and *eigen s* (Cholesky + eigensolver) are paid once per embedding; "
        "*wall s/run* = graph + eigen + that seed's k-means, i.e. what one standalone run costs. "
        "ACC and NMI: mean ± std over the seeds, in %. Peak RSS: `ru_maxrss` of the worker "
        "process (its own subprocess per row), including Python, the imported libraries (torch "
        "is imported by `dcbench.methods`) and the dataset; the RSS right after loading the "
        "data is in brackets, so the method's own share is the difference.",
        "",
        "## Default settings, every dataset",
        "",
        SUMMARY_HEAD,
    ]
    lines += [_summary_row(r, r["method"]) for r in results["main"]]
    if results["main"]:
        lines += ["", "Settings: " + _config_text(results["main"])]
        lines += ["", "### Per run", "", "| method | dataset | seed | ACC % | NMI geo % | NMI arith % "
                  "| k-means s | wall s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in results["main"]:
            for x in r["runs"]:
                lines.append(
                    f"| {r['method']} | {r['dataset']} | {x['seed']} | {100 * x['acc']:.2f} "
                    f"| {100 * x['nmi_geometric']:.2f} | {100 * x['nmi_arithmetic']:.2f} "
                    f"| {x['kmeans_seconds']:.1f} | {x['wall_seconds']:.1f} |"
                )
        full = [r for r in results["main"] if r["method"] == "sec" and r["dataset"] == "mnist-full"]
        if full:
            r = full[0]
            wall = max(x["wall_seconds"] for x in r["runs"])
            ok = wall < 600 and r["peak_rss_gib"] < 8
            lines += [
                "",
                f"**MNIST-full SEC budget (< 10 min, < 8 GiB):** slowest run {wall:.0f} s "
                f"(embedding {r['embedding_seconds']:.0f} s + k-means), peak RSS "
                f"{r['peak_rss_gib']:.2f} GiB: {'met' if ok else 'NOT met'}. "
                f"ACC {_ms([x['acc'] for x in r['runs']])} % vs the paper's 80.37 %.",
            ]
    if results["sweep"]:
        lines += ["", "## mu x gamma sweep, SEC on USPS (every cell)", ""]
        lines += [_sweep_table(results["sweep"], "acc", "ACC %"), ""]
        lines += [_sweep_table(results["sweep"], "nmi_geometric", "NMI geometric %"), ""]
        lines += [_sweep_table(results["sweep"], "nmi_arithmetic", "NMI arithmetic %"), ""]
        emb = [r["embedding_seconds"] for r in results["sweep"]]
        lines += [f"Embedding time per cell: {min(emb):.1f} to {max(emb):.1f} s. Other settings "
                  "at their defaults (the graph is the same in every cell)."]  # fmt: skip
    if results["ablations"]:
        lines += ["", "## Ablations (one setting changed from the default)", ""]
        lines += [SUMMARY_HEAD]
        lines += [
            _summary_row(r, f"{r['method']} {_overrides_text(r['overrides'])}")
            for r in results["ablations"]
        ]
    return "\n".join(lines) + "\n"


def _sweep_table(records: list[dict], metric: str, title: str) -> str:
    mus = sorted({r["overrides"]["mu"] for r in records})
    gammas = sorted({r["overrides"]["gamma"] for r in records})
    cell = {(r["overrides"]["mu"], r["overrides"]["gamma"]): r for r in records}
    head = f"| {title}: mu \\ gamma | " + " | ".join(f"{g:g}" for g in gammas) + " |"
    rows = [head, "| --- |" + " --- |" * len(gammas)]
    for mu in mus:
        vals = []
        for g in gammas:
            r = cell.get((mu, g))
            vals.append(_ms([x[metric] for x in r["runs"]]) if r else "-")
        rows.append(f"| {mu:g} | " + " | ".join(vals) + " |")
    return "\n".join(rows)


def _overrides_text(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(defaults)"


def _config_text(records: list[dict]) -> str:
    seen = {}
    for r in records:
        seen.setdefault(r["method"], r["config"])
    return "; ".join(
        f"`{m}`: " + ", ".join(f"{k}={v}" for k, v in sorted(c.items())) for m, c in seen.items()
    )


if __name__ == "__main__":
    sys.exit(main())
