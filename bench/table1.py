"""The Table 1 campaign: every cell of the DCEC paper's Table 1 into one results folder.

    python bench/table1.py                  # run what is missing, stage after stage, then report
    python bench/table1.py --report-only    # rebuild comparison.md from the records alone
    python bench/table1.py --device cuda    # the same table on a GPU, into table1-cuda/
    python bench/table1.py --report-only --readme README.md   # and quote the table there
    python bench/table1.py --status         # what is in flight: each checkpoint's progress

Stages run in order into ``bench/results/table1/`` (``table1-cuda/`` with ``--device cuda``:
devices round differently, so they never share a folder; ``--out`` for another; one
``run_all`` at a time: the folder's lock), all in one suite run, so that a worker done with
one stage starts the next one's units while the other finishes its long one. Each stage is
ordered ``--order seed`` (one seed of everything before a second seed of anything), with
``--jobs 2`` and one thread per run. Everything resumes: finished runs are skipped, and an
interrupted pretraining or clustering phase resumes from its checkpoint in ``pretrained/``.
``comparison.md`` shows the table as the paper lays it out (methods x datasets), each cell
with its n seeds out of the target, the paper beside it, and the campaign's status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "table1"
OUT_BY_DEVICE = {"cpu": OUT, "cuda": OUT.with_name("table1-cuda")}

PAPER_METHODS = ["kmeans", "sec", "sae-kmeans", "dec", "idec", "cae-kmeans", "dec-conv", "dcec"]
DEEP = ["cae-kmeans", "dec-conv", "dcec", "sae-kmeans", "dec", "idec"]
FIVE = [0, 1, 2, 3, 4]
# (datasets, methods, seeds), in the order they run: the cheap and the CPU-sized columns first
STAGES = [
    (["usps", "mnist-test"], ["kmeans", "sec", *DEEP], FIVE),
    (["mnist-full"], ["kmeans", "sec"], FIVE),
    (["mnist-full"], ["sec-best-of-9"], [0]),
    (["mnist-full"], DEEP, [0]),
    (["mnist-full"], DEEP, [1, 2, 3, 4]),  # the spread: after one seed of every cell
]
DATASETS = ["mnist-full", "mnist-test", "usps"]  # the paper's column order
README_BLOCK = ("<!-- table1-cells -->", "<!-- /table1-cells -->")  # where --readme quotes it


def targets() -> dict[tuple[str, str], int]:
    """(method, dataset) -> the number of seeds the campaign runs for that cell."""
    wanted: dict[tuple[str, str], int] = {}
    for datasets, methods, seeds in STAGES:
        for d in datasets:
            for m in methods:
                wanted[(m, d)] = wanted.get((m, d), 0) + len(seeds)
    return wanted


def main(argv=None) -> int:
    from dcbench.core.errors import UsageError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report-only", action="store_true", help="only rebuild the report")
    p.add_argument("--status", action="store_true", help="only show each checkpoint's progress")
    p.add_argument("--workers", type=int, default=2, help="worker processes, one thread each")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--stages", default=None, help="comma list of stage numbers (default: all)")
    p.add_argument("--out", default=None, help="results folder (default: by device, see above)")
    p.add_argument("--readme", default=None, type=Path, metavar="FILE",
                   help=f"also quote the cell table in FILE, between {' and '.join(README_BLOCK)}")  # fmt: skip
    args = p.parse_args(argv)
    if args.readme is not None and readme_parts(args.readme) is None:  # before any run
        p.error(no_block(args.readme))
    args.out = Path(args.out) if args.out else OUT_BY_DEVICE[args.device]
    if args.status:
        print(in_flight(args.out))
        return 0
    if not args.report_only:
        chosen = list(range(len(STAGES))) if args.stages is None else parse_stages(args.stages)
        if chosen is None:
            p.error(f"--stages {args.stages!r}: a comma list of stage numbers 0-{len(STAGES) - 1}")
        if args.workers < 1:
            p.error(f"--workers {args.workers}: must be at least 1")
        try:
            code = run_stages(chosen, args)
        except UsageError as exc:  # e.g. a changed config refused: one line, nothing run
            p.error(str(exc))
        print(f"stages {chosen} exited with {code}", flush=True)
    try:
        print(write_report(args.out, readme=args.readme))
    except UsageError as exc:
        p.error(str(exc))
    return 0


def parse_stages(text: str) -> list[int] | None:
    """``"3,4"`` -> ``[3, 4]``; None unless every item is a stage number."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdecimal() and item.isascii() and int(item) < len(STAGES) for item in items):
        return None
    return list(dict.fromkeys(int(item) for item in items))


def in_flight(out: Path) -> str:
    """Each checkpoint in ``out/pretrained``, one line each: a pretraining's epochs (of the
    total its checkpoint names, or protocol ``paper``'s in one written before checkpoints named
    it; with the median seconds per epoch and what the rest would take at that rate), a
    clustering phase's iteration (with its rate and the most the rest can take), a finished
    run waiting for its unit."""
    lines = []
    for path in sorted((out / "pretrained").glob("*.ckpt")):
        try:
            lines.append(_checkpoint_progress(path))
        except Exception:  # a stray file: say so and go on with the others
            lines.append(f"{path.name}: not a checkpoint this script can read")
    return "\n".join(lines) or f"nothing in flight in {out / 'pretrained'}"


def _finished_run_stored(path: Path, kept: dict) -> str:
    """Whether a kept finished run's record is in its results folder yet (the driver stores
    it as the run ends in-process, within a minute with two workers, or with its unit)."""
    from dcbench.runner.store import ResultsStore

    record = kept.get("record", {})
    which = (record.get("method"), record.get("dataset"), record.get("seed"))
    if None not in which and ResultsStore(path.parent.parent).get(*which) is not None:
        return "its record is stored (this file stays until its unit ends)"
    return "waiting for the rest of its unit"


def _checkpoint_progress(path: Path) -> str:
    from dcbench.core.fileio import load_torch
    from dcbench.methods import METHODS
    from dcbench.runner.plan import resolve
    from dcbench.runner.pretrain_cache import describe_checkpoint

    kind, name = describe_checkpoint(path)  # name: method or backbone, dataset, seed
    state = load_torch(path)
    if state is None:
        return f"{name}: unreadable (it will be recomputed)"
    if kind == "finished run":
        return f"{name}: finished, {_finished_run_stored(path, state)}"
    history = state["history"]
    if kind == "clustering phase":
        return _phase_progress(name, state)
    backbone, dataset = name.split("__")[:2]
    done = len(history)
    total = state.get("epochs")  # saved since this script showed progress; before, protocol paper's
    if total is None and f"{backbone}-kmeans" in METHODS:
        total = resolve(f"{backbone}-kmeans", dataset, "paper", {})["pretrain_epochs"]
    if total is None:  # not a backbone of the table (DEPICT's, say)
        return f"{name}: pretraining epoch {done}"
    if done >= total:
        return f"{name}: pretrained ({done} epochs); its unit's runs are under way"
    per_epoch = statistics.median(h["seconds"] for h in history) if history else 0.0
    return (f"{name}: pretraining epoch {done} of {total}, {per_epoch:.0f} s per epoch "
            f"(median), about {(total - done) * per_epoch / 3600:.1f} h left")  # fmt: skip


def _phase_progress(name: str, state: dict) -> str:
    """A clustering phase's last logged iteration; with the ``maxiter`` and the time split its
    checkpoint holds (saved since this script showed progress), the seconds per iteration so
    far and the most the rest can take (it stops sooner once its labels settle)."""
    history = state["history"]
    # the iteration it saved at (the steps since the last logged update are in its seconds)
    done = state.get("iteration", history[-1]["iteration"] if history else 0)
    line = f"{name}: clustering phase at iteration {done}"
    seconds = state.get("seconds") or {}
    if "maxiter" not in state or done == 0:
        return line
    # every part of the phase that repeats (steps, target updates, scoring, saves), not the
    # one-off initial clustering
    per_iteration = sum(v for k, v in seconds.items() if k not in ("kmeans_init", "pretrain"))
    per_iteration /= done
    left = (state["maxiter"] - done) * per_iteration / 3600
    return (f"{line} of at most {state['maxiter']}, {per_iteration:.2f} s per iteration, at "
            f"most about {left:.1f} h left")  # fmt: skip


def stage_times(out: Path) -> list[dict]:
    """Every stage run's wall time so far (``logs/stage_times.jsonl``), oldest first."""
    path = out / "logs" / "stage_times.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def run_stages(chosen: list[int], args) -> int:
    """The chosen stages as one suite run in this process, their grids planned in stage order
    (a worker done with one stage starts the next one's units at once, rather than waiting for
    the stage's last long unit); its output goes to ``logs/table1.log``. Every stage's
    datasets load first, and a refusal anywhere (a changed config) stops it before any run."""
    from dcbench.core.errors import UsageError
    from dcbench.suite import SuiteConfig, run_suite

    grids = [(methods, datasets, seeds) for datasets, methods, seeds in (STAGES[i] for i in chosen)]
    config = SuiteConfig(
        grids=grids, out=args.out, data_dir=args.data_dir,
        device=args.device, jobs=args.workers, threads=1, order="seed", progress=False,
    )  # fmt: skip
    new_folder = not args.out.exists()
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    with open(args.out / "logs" / "table1.log", "a") as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            for i in chosen:
                datasets, methods, seeds = STAGES[i]
                print(f"== stage {i} at {stamp}: {datasets} x {methods} x seeds {seeds}")
            started = time.perf_counter()
            try:
                result = run_suite(config)
            except UsageError:  # refused before any run: a folder made for it holds only the log
                if new_folder and not any((args.out / "records").glob("*.json")):
                    shutil.rmtree(args.out, ignore_errors=True)
                raise
    # the stages' wall time (with their device and runs done), for meta.json: what a whole
    # table costs on a GPU is measured here, not projected
    entry = {"stages": chosen, "started": stamp, "device": args.device, "workers": args.workers,
             "runs_done": len(result.records), "wall_seconds": round(time.perf_counter() - started)}  # fmt: skip
    with open(args.out / "logs" / "stage_times.jsonl", "a") as times:
        times.write(json.dumps(entry) + "\n")
    return 1 if result.failed else 0


def cell_table(frame, wanted: dict[tuple[str, str], int]) -> tuple[str, int, int]:
    """The paper's layout: one row per method, per dataset 'ACC / NMI (n/target)' and the
    paper's ACC / NMI. Returns the Markdown, the runs done and the runs wanted."""
    from dcbench.reports.paper import paper_name, paper_value
    from dcbench.reports.tables import cell, summarize

    ok = frame[frame["status"] == "ok"]
    # the report's own summary and cell format, so both show the same digits
    summary = summarize(frame).set_index(["method", "dataset"]) if len(ok) else None
    header = "| method | " + " | ".join(f"{d} ACC | {d} NMI | n | paper" for d in DATASETS) + " |"
    lines = [header, "|---|" + "---:|---:|---:|---:|" * len(DATASETS)]
    done = 0
    # the paper's rows, then every other targeted or finished method (sec-best-of-9 before it lands)
    others = dict.fromkeys([m for m, _ in wanted] + list(ok["method"]))
    methods = PAPER_METHODS + [m for m in others if m not in PAPER_METHODS]
    for m in methods:
        name = paper_name(m)
        cells = [f"{name} (`{m}`)" if name else f"`{m}`"]  # as the paper names it, as typed
        for d in DATASETS:
            mine = ok[(ok["method"] == m) & (ok["dataset"] == d)]
            target = wanted.get((m, d), 0)
            if len(mine):
                s = summary.loc[(m, d)]
                acc = cell(s["acc_mean"], s["acc_std"], s["n"])
                nmi = cell(s["nmi_geometric_mean"], s["nmi_geometric_std"], s["n"])
            else:
                acc = nmi = "–"
            pa, pn = paper_value(m, d, "acc"), paper_value(m, d, "nmi")
            paper = "–" if pa is None else f"{pa:.2f} / {'–' if pn is None else f'{pn:.2f}'}"
            cells += [acc, nmi, f"{len(mine)}/{target}" if target else str(len(mine)), paper]
        lines.append("| " + " | ".join(cells) + " |")
    for (m, d), target in wanted.items():
        done += min(int(((ok["method"] == m) & (ok["dataset"] == d)).sum()), target)
    return "\n".join(lines), done, sum(wanted.values())


def readme_parts(readme: Path) -> tuple[str, str] | None:
    """The text before and after ``README_BLOCK`` in ``readme``; None without exactly one block."""
    start, end = README_BLOCK
    text = readme.read_text() if readme.is_file() else ""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        return None
    head, rest = text.split(start)
    return head, rest.split(end)[1]


def no_block(readme: Path) -> str:
    return f"--readme {readme}: needs one {' ... '.join(README_BLOCK)} block to quote in"


def quote_in_readme(readme: Path, status: str, table: str) -> None:
    """Put the report's own cell table (and its status) between ``README_BLOCK``'s markers, so
    that the README never quotes a number the records do not hold."""
    from dcbench.core.errors import UsageError
    from dcbench.core.fileio import atomic_write_text

    start, end = README_BLOCK
    if (parts := readme_parts(readme)) is None:  # edited since the run started
        raise UsageError(no_block(readme))
    head, tail = parts
    atomic_write_text(readme, f"{head}{start}\n{status}\n\n{table}\n{end}{tail}")


def write_report(out: Path, readme: Path | None = None) -> str:
    from dcbench.core import runinfo
    from dcbench.core.fileio import atomic_write_text
    from dcbench.reports.tables import comparison_markdown, protocols_line, summarize
    from dcbench.runner.store import ResultsStore

    frame = ResultsStore(out).dataframe()
    table, done, wanted = cell_table(frame, targets())
    status = "complete" if done == wanted else f"PARTIAL: {done} of {wanted} runs finished"
    text = (
        f"# Table 1 of Guo et al. (2017): ours vs the paper ({status})\n\n"
        "ACC and NMI (geometric) in %, mean ± sample std over the n seeds finished, of the "
        "target; 'paper' is ACC / NMI from the paper's Table 1 (SEC: ACC only).\n"
        f"{protocols_line(summarize(frame)).strip()}\n\n{table}\n\n"
        "## Per method and dataset, with the difference to the paper\n\n"
        f"{comparison_markdown(frame)}"
    )
    atomic_write_text(out / "comparison.md", text)
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        **runinfo.cpu_features(),
        "versions": runinfo.versions(),
        "runs_wanted": wanted,
        "runs_ok_counted": done,
        "complete": done == wanted,
        "stages": [{"datasets": d, "methods": m, "seeds": s} for d, m, s in STAGES],
        "stage_runs": stage_times(out),
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1))
    if readme is not None:  # last: the folder's own files are written whatever the README is
        quote_in_readme(readme, f"Status: {status}.", table)
    return text


if __name__ == "__main__":
    sys.exit(main())
