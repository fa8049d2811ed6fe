"""The suite as a Python call: ``run_suite(SuiteConfig(...))`` plans, runs and reports.

    >>> from dcbench.suite import SuiteConfig, run_suite
    >>> result = run_suite(SuiteConfig(methods="dcec,idec", datasets="usps", seeds=5,
    ...                                out="results-usps", data_dir="../shared/data"))
    >>> result.report, len(result.failed)

``run_all.py`` (``dcbench.cli``) parses its flags into a ``SuiteConfig`` and calls this; the
bench drivers and the tests call it directly. Every value is checked before anything is
loaded or created: a bad one raises ``UsageError`` with one line naming it and what is allowed.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcbench.core.errors import UsageError

PAPER_DATASETS = ["mnist-full", "mnist-test", "usps"]
MAX_SEEDS = 1000


@dataclass(frozen=True)
class SuiteConfig:
    """One suite run; the fields are ``run_all.py``'s flags (``--help`` explains each).

    ``methods``, ``datasets`` and ``tsne`` take a comma string or a list of names; ``seeds`` a
    count, a comma string (``"0,3,7"``) or a list; ``overrides`` ``--set`` items
    (``"dcec.gamma=0.2"``) or a mapping ``{method or "*": {parameter: value}}``; ``grids``
    (methods, datasets, seeds) triples in those forms, which replace ``methods``, ``datasets``
    and ``seeds`` when given.
    """

    methods: str | Sequence[str] = "paper"
    datasets: str | Sequence[str] = "digits"
    seeds: int | str | Sequence[int] = 3
    out: str | os.PathLike = "results"
    data_dir: str | os.PathLike | None = None
    device: str = "auto"
    executor: str = "local"
    jobs: int = 1
    threads: int = 1
    ray_address: str | None = None
    ray_shared_dir: str | None = None
    gpus_per_run: float = 1.0
    stack_seeds: str = "auto"
    overrides: Sequence[str] | Mapping[str, Mapping[str, Any]] = ()
    protocol: str = "paper"
    order: str = "dataset"
    force: bool = False
    nmi: str = "geometric"
    tsne: str | Sequence[str] | None = None
    tsne_samples: int = 1000
    figures: bool = True
    progress: bool = True
    # instead of methods x datasets x seeds: several such (methods, datasets, seeds) grids,
    # planned one after another into one run (a campaign's stages: no worker waits for the
    # last long unit of one stage before the next stage's units start)
    grids: Sequence[tuple[Any, Any, Any]] = ()


@dataclass
class SuiteResult:
    store: Any  # the ResultsStore of ``out``: every record, new and earlier
    records: list[dict[str, Any]] = field(default_factory=list)  # the runs done by this call
    report: Path | None = None
    planned: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def run_suite(config: SuiteConfig) -> SuiteResult:
    """Plan every (method, dataset, seed), run what the results folder does not hold yet,
    store each record as its unit finishes, then (re)write the report."""
    from dcbench.core import runinfo
    from dcbench.datasets import DATASETS, load_dataset
    from dcbench.methods import METHODS
    from dcbench.methods.protocols import PROTOCOLS
    from dcbench.reports import build_report
    from dcbench.runner.backends import EXECUTORS, make_backend
    from dcbench.runner.executor import execute, pending_runs
    from dcbench.runner.plan import ORDERS, make_plan
    from dcbench.runner.stacking import use_stacking
    from dcbench.runner.store import ResultsStore

    PROTOCOLS.get(config.protocol)  # an unknown name: one line, before anything else
    parse_choice(config.order, "--order", list(ORDERS))
    grids = []
    for grid_methods, grid_datasets, grid_seeds in config.grids or [
        (config.methods, config.datasets, config.seeds)
    ]:
        method_text = _names(grid_methods)
        register_combinations(method_text)
        grids.append((
            parse_names(method_text, METHODS, "method", method_aliases()),
            parse_names(_names(grid_datasets), DATASETS, "dataset", {"paper": PAPER_DATASETS}),
            parse_seeds(_seeds(grid_seeds)),
        ))  # fmt: skip
    methods = list(dict.fromkeys(m for grid in grids for m in grid[0]))
    datasets = list(dict.fromkeys(d for grid in grids for d in grid[1]))
    nmi = parse_choice(config.nmi, "--nmi", ["geometric", "arithmetic"])
    device = runinfo.resolve_device(config.device)
    data_dir = check_readable_dir(str(config.data_dir)) if config.data_dir else None
    overrides = parse_overrides(_override_items(config.overrides), methods)
    tsne = parse_tsne(_names(config.tsne)) if config.tsne else None
    if not 10 <= config.tsne_samples <= 100_000:
        raise UsageError(f"--tsne-samples {config.tsne_samples}: must be between 10 and 100000")
    executor = parse_choice(config.executor, "--executor", list(EXECUTORS))
    if not 1 <= config.jobs <= 256:
        raise UsageError(f"--jobs {config.jobs}: must be between 1 and 256")
    if not 1 <= config.threads <= 256:
        raise UsageError(f"--threads {config.threads}: must be between 1 and 256")
    if config.jobs > 1 and executor == "ray":
        raise UsageError("--jobs is for --executor local; Ray sizes itself from the cluster")
    stack = use_stacking(config.stack_seeds, device)
    if (config.ray_address or config.ray_shared_dir) and executor != "ray":
        raise UsageError("--ray-address and --ray-shared-dir need --executor ray")

    store = ResultsStore(
        check_writable_dir(str(config.out))
    )  # created last: a bad value leaves nothing
    with store.exclusive():  # a second run on the same folder stops with a clear error
        data = {name: load_dataset(name, data_dir) for name in datasets}
        classes = {n: d.n_classes for n, d in data.items()}
        runs: dict[tuple[str, str, int], Any] = {}  # a run in two grids is planned once
        for grid_methods, grid_datasets, grid_seeds in grids:
            for run in make_plan(grid_methods, grid_datasets, grid_seeds, overrides, classes,
                                 config.protocol, config.order, device):  # fmt: skip
                runs.setdefault((run.method, run.dataset, run.seed), run)
        plan = list(runs.values())
        todo = pending_runs(plan, store, force=config.force, device=device)
        where = runinfo.device_name(device) + {"ray": " (Ray)", "local": ""}[executor]
        if config.jobs > 1:
            where += f" ({config.jobs} worker processes)"
        where += f", {config.threads} thread{'s' * (config.threads > 1)} per run"
        where += ", seeds stacked" if stack else ""
        shape = " + ".join(
            f"{len(m)} methods x {len(d)} datasets x {len(s)} seeds" for m, d, s in grids
        )
        repeated = sum(len(m) * len(d) * len(s) for m, d, s in grids) - len(plan)
        shape += f", {repeated} in more than one grid planned once" if repeated else ""
        print(
            f"{len(plan)} runs planned ({shape}, protocol {config.protocol}), "
            f"{len(plan) - len(todo)} already "
            f"done, {len(todo)} to run on {where}",
            file=sys.stderr,
        )
        backend = None
        if todo:
            backend = make_backend(
                executor, data, device, config.jobs, config.threads, config.ray_address,
                config.ray_shared_dir, config.gpus_per_run,
            )  # fmt: skip
        records = execute(
            todo, data, store, device=device, progress=config.progress, backend=backend,
            stack=stack,
        )  # fmt: skip
        report = store.report_path
        if records or not report.exists():  # nothing new: the report on disk is current
            report = build_report(
                store.out_dir, nmi=nmi, tsne_methods=tsne, data_dir=data_dir,
                figures=config.figures, tsne_samples=config.tsne_samples,
            )  # fmt: skip
    return SuiteResult(store=store, records=records, report=report, planned=len(plan))


def _names(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _seeds(value: int | str | Sequence[int]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ",".join(map(str, value)) + ","


def _override_items(value: Sequence[str] | Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``--set`` items from either form (a mapping's ``"*"`` means every chosen method)."""
    if isinstance(value, Mapping):
        return [
            f"{'' if method == '*' else method + '.'}{key}={val!r}"
            for method, params in value.items()
            for key, val in params.items()
        ]
    return list(value)


def method_aliases() -> dict[str, list[str]]:
    """``paper``: the rows of the DCEC paper's Table 1 (a method with its own paper's
    reference numbers is not one); ``all``: every registered method."""
    from dcbench.methods import METHODS

    registered = [m for m in METHODS if ":" not in m]
    table1 = [m for m in registered if METHODS.get(m).paper_name and not METHODS.get(m).reference]
    return {"all": registered, "paper": table1}


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
