"""Command line: ``python run_all.py`` (the suite) and ``python -m reports OUT`` (tables only)."""

from __future__ import annotations

import argparse
import ast
import errno
import os
import sys
from pathlib import Path
from typing import Any

from dcbench.core.errors import DataError, UsageError

PAPER_DATASETS = ["mnist-full", "mnist-test", "usps"]
MAX_SEEDS = 1000


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
        return run_suite(args)
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


def disk_full(out: str) -> str:
    """One line for a full disk: where, and what is safe (every record was written whole)."""
    records = Path(out) / "records"
    kept = len(list(records.glob("*.json"))) if records.is_dir() else 0
    return (
        f"no space left on the device of '{out}'; the {kept} finished runs stored there are "
        "intact: free some space and run the same command again to resume"
    )


def run_suite(args: argparse.Namespace) -> int:
    from dcbench.core import runinfo
    from dcbench.datasets import DATASETS, load_dataset
    from dcbench.methods import METHODS
    from dcbench.methods.protocols import PROTOCOLS
    from dcbench.runner.backends import EXECUTORS
    from dcbench.runner.executor import pending_runs
    from dcbench.runner.plan import ORDERS, make_plan
    from dcbench.runner.store import ResultsStore

    PROTOCOLS.get(args.protocol)  # an unknown name: one line, before anything else
    parse_choice(args.order, "--order", list(ORDERS))
    register_combinations(args.methods)
    methods = parse_names(args.methods, METHODS, "method", method_aliases())
    datasets = parse_names(args.datasets, DATASETS, "dataset", {"paper": PAPER_DATASETS})
    seeds = parse_seeds(args.seeds)
    nmi = parse_choice(args.nmi, "--nmi", ["geometric", "arithmetic"])
    device = runinfo.resolve_device(args.device)
    data_dir = check_readable_dir(args.data_dir) if args.data_dir else None
    overrides = parse_overrides(args.overrides, methods)
    tsne = parse_tsne(args.tsne) if args.tsne else None
    if not 10 <= args.tsne_samples <= 100_000:
        raise UsageError(f"--tsne-samples {args.tsne_samples}: must be between 10 and 100000")

    executor = parse_choice(args.executor, "--executor", list(EXECUTORS))
    if not 1 <= args.jobs <= 256:
        raise UsageError(f"--jobs {args.jobs}: must be between 1 and 256")
    if not 1 <= args.threads <= 256:
        raise UsageError(f"--threads {args.threads}: must be between 1 and 256")
    if args.jobs > 1 and executor == "ray":
        raise UsageError("--jobs is for --executor local; Ray sizes itself from the cluster")
    if (args.ray_address or args.ray_shared_dir) and executor != "ray":
        raise UsageError("--ray-address and --ray-shared-dir need --executor ray")

    out = check_writable_dir(args.out)  # created last: a bad flag leaves nothing behind
    store = ResultsStore(out)
    with store.exclusive():  # a second run_all on the same --out stops with a clear error
        data = {name: load_dataset(name, data_dir) for name in datasets}
        classes = {n: d.n_classes for n, d in data.items()}
        plan = make_plan(
            methods, datasets, seeds, overrides, classes, args.protocol, args.order, device
        )
        todo = pending_runs(plan, store, force=args.force, device=device)
        where = runinfo.device_name(device) + {"ray": " (Ray)", "local": ""}[executor]
        if args.jobs > 1:
            where += f" ({args.jobs} worker processes)"
        where += f", {args.threads} thread{'s' * (args.threads > 1)} per run"
        print(
            f"{len(plan)} runs planned ({len(methods)} methods x {len(datasets)} datasets x "
            f"{len(seeds)} seeds, protocol {args.protocol}), {len(plan) - len(todo)} already done, "
            f"{len(todo)} to run on {where}",
            file=sys.stderr,
        )
        return finish_suite(args, store, data, todo, executor, device, nmi, tsne, data_dir)


def method_aliases() -> dict[str, list[str]]:
    """``paper``: the rows of the DCEC paper's Table 1 (a method with its own paper's
    reference numbers is not one); ``all``: every registered method."""
    from dcbench.methods import METHODS

    registered = [m for m in METHODS if ":" not in m]
    table1 = [m for m in registered if METHODS.get(m).paper_name and not METHODS.get(m).reference]
    return {"all": registered, "paper": table1}


def finish_suite(args, store, data, todo, executor, device, nmi, tsne, data_dir) -> int:
    """Run what is left, then write the report."""
    from dcbench.reports import build_report
    from dcbench.runner.backends import make_backend
    from dcbench.runner.executor import execute

    out = store.out_dir
    backend = None
    if todo:
        backend = make_backend(
            executor, data, device, args.jobs, args.threads, args.ray_address,
            args.ray_shared_dir,
        )  # fmt: skip
    records = execute(
        todo, data, store, device=device, progress=not args.no_progress, backend=backend
    )
    failed = [r for r in records if r["status"] != "ok"]

    report = out / "report.md"
    if records or not report.exists():  # nothing new: the report on disk is current
        report = build_report(
            out,
            nmi=nmi,
            tsne_methods=tsne,
            data_dir=data_dir,
            figures=not args.no_figures,
            tsne_samples=args.tsne_samples,
        )
    print((out / "tables" / "table.md").read_text())
    print(f"records: {store.records_dir}\nresults: {store.csv_path}\nreport:  {report}")
    if failed:
        print(f"{len(failed)} run(s) failed; see their records for the error", file=sys.stderr)
        return 1
    return 0


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

        out = check_readable_dir(args.out)
        if not (out / "records").is_dir():
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
    print((out / "tables" / "table.md").read_text())
    print(f"report: {report}")
    return 0


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
        lines += [f"  {n:<{width}}  {registry.description(n)}" for n in registry]
    lines.append("protocols (--protocol NAME; default paper):")
    width = max(len(n) for n in PROTOCOLS)
    for n in PROTOCOLS:
        lines += [
            f"  {n:<{width}}  {PROTOCOLS.description(n)}",
            f"  {'':<{width}}  sets: {describe(n)}",
        ]
    return "\n".join(lines)


def parse_names(text: str, registry, kind: str, aliases: dict[str, list[str]]) -> list[str]:
    names: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        for name in aliases.get(item, [item]):
            if name not in registry:
                allowed = ", ".join([*aliases, *registry.names()])
                raise UsageError(f"unknown {kind} '{name}'; choose from: {allowed}")
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError(
            f"no {kind} given; choose from: {', '.join([*aliases, *registry.names()])}"
        )
    return names


def parse_seeds(text: str) -> list[int]:
    text = text.strip()
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else None
        count = None if seeds is not None else int(text)
    except ValueError:
        raise UsageError(
            f"--seeds '{text}': give a count N (1..{MAX_SEEDS}) or a comma list of seeds like 0,3,7"
        ) from None
    if count is not None:
        if not 1 <= count <= MAX_SEEDS:
            raise UsageError(
                f"--seeds {text}: the number of seeds must be between 1 and {MAX_SEEDS}"
            )
        seeds = list(range(count))
    if not seeds or any(s < 0 or s >= 2**32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds '{text}': seeds must be distinct integers in 0..2**32-1")
    return seeds


def parse_choice(value: str, flag: str, allowed: list[str]) -> str:
    if value not in allowed:
        raise UsageError(f"{flag} '{value}' is not allowed; choose from: {', '.join(allowed)}")
    return value


def parse_overrides(items: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """``KEY=VALUE`` applies to every chosen method with that parameter, ``METHOD.KEY=VALUE`` to one."""
    from dcbench.methods import METHODS

    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set '{item}': expected KEY=VALUE or METHOD.KEY=VALUE")
        method, _, param = key.strip().rpartition(".")
        value = parse_value(raw)
        if method:
            if method not in methods:
                raise UsageError(
                    f"--set '{item}': method '{method}' is not among the chosen methods ({', '.join(methods)})"
                )
            check_override(item, method, param, value)
            overrides.setdefault(method, {})[param] = value
        else:
            having = [m for m in methods if param in METHODS.get(m).allowed_params()]
            if not having:
                allowed = sorted({p for m in methods for p in METHODS.get(m).allowed_params()})
                raise UsageError(
                    f"--set '{item}': no chosen method has a parameter '{param}'; parameters: {', '.join(allowed)}"
                )
            for m in having:
                check_override(item, m, param, value)
                overrides.setdefault(m, {})[param] = value
    return overrides


def check_override(item: str, method: str, param: str, value: Any) -> None:
    """The name, type and range of one ``--set`` value, by the method's own parameter checks,
    so that ``--set lr=-1`` stops here rather than after loading data or training."""
    from dcbench.methods import METHODS

    try:
        METHODS.get(method).resolve("", {param: value})
    except UsageError as exc:
        raise UsageError(f"--set '{item}': {exc}") from None


def register_combinations(text: str) -> None:
    """Register each BACKBONE:LOSS item of a comma list as an ad-hoc method."""
    from dcbench.methods import combination

    for item in text.split(","):
        if ":" in item:
            combination(item.strip())


def parse_tsne(text: str) -> list[str]:
    """``--tsne`` names: deep methods only (the others have no embedding to show)."""
    from dcbench.methods import METHODS

    register_combinations(text)
    names = parse_names(text, METHODS, "method", {})
    deep = [m for m in METHODS if "backbone" in METHODS.get(m).allowed_params()]
    shallow = [m for m in names if m not in deep]
    if shallow:
        raise UsageError(
            f"--tsne {','.join(shallow)}: no embedding to show; choose deep methods: {', '.join(deep)}"
        )
    return names


def parse_value(raw: str) -> Any:
    """Python literals (numbers, True/False/None, quoted strings, lists); anything else is a string."""
    try:
        return ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        return raw.strip()


def check_readable_dir(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir() or not os.access(p, os.R_OK | os.X_OK):
        raise UsageError(f"'{path}' is not a readable directory")
    return p


def check_writable_dir(path: str) -> Path:
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out '{path}' cannot be created ({exc.strerror})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"--out '{path}' is not writable")
    return p
