"""Command line: ``python run_all.py`` (the suite) and ``python -m reports OUT`` (tables only)."""

from __future__ import annotations

import argparse
import errno
import sys

from dcbench.core.errors import DataError, UsageError
from dcbench.suite import (  # noqa: F401  (PAPER_DATASETS, parse_seeds: for bench scripts)
    PAPER_DATASETS,
    SuiteConfig,
    check_readable_dir,
    parse_choice,
    parse_seeds,
    parse_tsne,
    run_suite,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the whole usage first)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="run_all.py",
        description="Run clustering methods over datasets and seeds; write records, results.csv and tables.",
    )
    p.add_argument(
        "--methods",
        default="paper",
        help="comma list of method names; 'paper' = the eight methods of the DCEC paper's "
        "Table 1 (default); 'all' = every registered method (adds DCN, DCN-conv, DEPICT, "
        "spectral clustering)",
    )
    p.add_argument(
        "--datasets",
        default="digits",
        help="comma list of dataset names; 'paper' = mnist-full,mnist-test,usps (default: digits)",
    )
    p.add_argument(
        "--seeds",
        default="3",
        help="N for seeds 0..N-1 (default 3), or an explicit comma list such as 3,5,8 (a single seed: '7,')",
    )
    p.add_argument(
        "--protocol",
        default="paper",
        help="protocol variant laid over the methods' settings (default: paper, the settings "
        "behind Table 1); --list shows each variant and what it changes",
    )
    p.add_argument(
        "--order",
        default="dataset",
        help="run order: dataset (default: a dataset's seeds together) or seed (every method "
        "and dataset of one seed before the next seed: complete rows early in long campaigns)",
    )
    p.add_argument("--out", default="results", help="output directory (default: ./results)")
    p.add_argument(
        "--data-dir",
        help="folder with the dataset files (default: $DCBENCH_DATA_DIR or the user cache)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument(
        "--executor",
        default="local",
        help="where runs execute: local (default: this machine) or ray (a Ray cluster; "
        "pip install 'dcbench[ray]')",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once on this machine, each in its own worker process (default 1: "
        "in-process); with --threads 1, use as many jobs as cores",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per run (default 1). Part of the numerics: a run gives bitwise the "
        "same result for the same seed and thread count, whatever --executor and --jobs",
    )
    p.add_argument(
        "--ray-address",
        help="join this Ray cluster (e.g. ray://head:10001 or auto); default: start a local one",
    )
    p.add_argument(
        "--ray-shared-dir",
        help="a folder every Ray worker can write, for pretraining checkpoints (optional)",
    )
    p.add_argument(
        "--gpus-per-run",
        type=float,
        default=1.0,
        help="with --executor ray and --device cuda: the GPU share each run asks for (e.g. "
        "0.25: four runs share a GPU; these networks use a fraction of one); default 1",
    )
    p.add_argument(
        "--stack-seeds",
        default="auto",
        help="train the seeds of one method together as one stacked model: on, off, or auto "
        "(on a GPU, where a step of these small networks is launch-bound); default auto",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[METHOD.]KEY=VALUE",
        help="override a hyperparameter for every method that has it, or for one method "
        "(e.g. --set n_init=10 --set dcec.gamma=0.2); repeatable",
    )
    p.add_argument("--force", action="store_true", help="redo runs that are already in the store")
    p.add_argument(
        "--nmi",
        default="geometric",
        help="NMI normalization in tables: geometric (default) or arithmetic",
    )
    p.add_argument(
        "--tsne",
        metavar="M1,M2",
        help="methods whose embeddings the t-SNE figure shows (default: cae-kmeans,dec-conv,dcec as in Fig. 3, "
        "else every deep method run)",
    )
    p.add_argument(
        "--tsne-samples",
        type=int,
        default=1000,
        help="random samples in the t-SNE figure (default 1000)",
    )
    p.add_argument("--no-figures", action="store_true", help="write tables only, no figures")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: one line per finished run instead (for log files)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="list every method, backbone, loss and dataset, then exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            print(listing())
            return 0
        return run_from_flags(args)
    except (UsageError, DataError) as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: every finished run is kept in {args.out}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"run_all.py: error: {disk_full(args.out)}", file=sys.stderr)
        return 1


def run_from_flags(args: argparse.Namespace) -> int:
    """The flags as a ``SuiteConfig``; run it; print the table and where everything is."""
    result = run_suite(
        SuiteConfig(
            methods=args.methods,
            datasets=args.datasets,
            seeds=args.seeds,
            out=args.out,
            data_dir=args.data_dir,
            device=args.device,
            executor=args.executor,
            jobs=args.jobs,
            threads=args.threads,
            ray_address=args.ray_address,
            ray_shared_dir=args.ray_shared_dir,
            gpus_per_run=args.gpus_per_run,
            stack_seeds=args.stack_seeds,
            overrides=args.overrides,
            protocol=args.protocol,
            order=args.order,
            force=args.force,
            nmi=args.nmi,
            tsne=args.tsne,
            tsne_samples=args.tsne_samples,
            figures=not args.no_figures,
            progress=not args.no_progress,
        )  # fmt: skip
    )
    store = result.store
    print(store.table_path.read_text())
    print(f"records: {store.records_dir}\nresults: {store.csv_path}\nreport:  {result.report}")
    if result.failed:
        print(
            f"{len(result.failed)} run(s) failed; see their records for the error", file=sys.stderr
        )
        return 1
    return 0


def disk_full(out: str) -> str:
    """One line for a full disk: where, and what is safe (every record was written whole)."""
    from dcbench.runner.store import ResultsStore

    records = ResultsStore(out).records_dir
    kept = len(list(records.glob("*.json"))) if records.is_dir() else 0
    return (
        f"no space left on the device of '{out}'; the {kept} finished runs stored there are "
        "intact: free some space and run the same command again to resume"
    )


def reports_main(argv: list[str] | None = None) -> int:
    p = _Parser(
        prog="python -m reports",
        description="Rebuild the report (tables, figures) from a results store.",
    )
    p.add_argument("out", help="the output directory of run_all.py")
    p.add_argument("--nmi", default="geometric", help="geometric (default) or arithmetic")
    p.add_argument("--data-dir", help="where the datasets are (for the t-SNE figure)")
    p.add_argument(
        "--tsne", metavar="M1,M2", help="methods for the t-SNE figure (default: as in Fig. 3)"
    )
    p.add_argument("--no-figures", action="store_true", help="tables only")
    args = p.parse_args(argv)
    try:
        from dcbench.reports import build_report
        from dcbench.runner.store import ResultsStore

        out = check_readable_dir(args.out)
        if not ResultsStore(out).records_dir.is_dir():
            raise UsageError(
                f"{out} holds no records/ folder; pass the --out directory of run_all.py"
            )
        nmi = parse_choice(args.nmi, "--nmi", ["geometric", "arithmetic"])
        tsne = parse_tsne(args.tsne) if args.tsne else None
        data_dir = check_readable_dir(args.data_dir) if args.data_dir else None
        report = build_report(
            out, nmi=nmi, tsne_methods=tsne, data_dir=data_dir, figures=not args.no_figures
        )
    except (UsageError, DataError) as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"{p.prog}: error: {disk_full(args.out)}", file=sys.stderr)
        return 1
    print(ResultsStore(out).table_path.read_text())
    print(f"report: {report}")
    return 0


def loss_parameters(phase) -> list[str]:
    """What ``--list`` says of a loss: the shared parameters it reads, then its own."""
    lines = [f"reads: {', '.join(phase.params) or '-'}"]
    lines += [f"own: {k}={hp.default!r}: {hp.doc}" for k, hp in phase.hyperparameters.items()]
    return lines


def listing() -> str:
    from dcbench.datasets import DATASETS
    from dcbench.methods import BACKBONES, LOSSES, METHODS
    from dcbench.methods.protocols import PROTOCOLS, describe

    sections = [
        ("methods", METHODS),
        ("backbones", BACKBONES),
        ("losses", LOSSES),
        ("datasets", DATASETS),
    ]
    lines = []
    for title, registry in sections:
        lines.append(f"{title}:")
        width = max(len(n) for n in registry)
        for n in registry:
            lines.append(f"  {n:<{width}}  {registry.description(n)}")
            if registry is LOSSES:
                lines += [f"  {'':<{width}}  {line}" for line in loss_parameters(LOSSES.get(n))]
    lines.append("protocols (--protocol NAME; default paper):")
    width = max(len(n) for n in PROTOCOLS)
    for n in PROTOCOLS:
        lines += [
            f"  {n:<{width}}  {PROTOCOLS.description(n)}",
            f"  {'':<{width}}  sets: {describe(n)}",
        ]
    return "\n".join(lines)
