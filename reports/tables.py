"""ACC / NMI tables (mean ± std over seeds) from the results store, in Markdown and LaTeX booktabs."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from dcbench.core.fileio import atomic_write_text
from dcbench.datasets import DATASETS
from dcbench.methods import METHODS
from dcbench.reports.paper import paper_source, paper_value
from dcbench.runner.store import ResultsStore

NMI_COLUMN = {"geometric": "nmi_geometric", "arithmetic": "nmi_arithmetic"}


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (method, dataset, protocol): n successful seeds and mean/std (sample std, ddof=1) of
    each metric, in %. Runs of two protocols never share a cell: where a store holds more than
    one, a row's ``method`` names its protocol too (``dec [paper-text]``)."""
    if "protocol" not in results:  # a frame from elsewhere: one unnamed protocol
        results = results.assign(protocol="")
    ok = results[results["status"] == "ok"]
    metrics = ["acc", "nmi_geometric", "nmi_arithmetic", "ari"]
    grouped = ok.groupby(["method", "dataset", "protocol"], sort=False)[metrics]
    summary = grouped.agg(["mean", "std"]) * 100
    summary.columns = [f"{m}_{s}" for m, s in summary.columns]
    summary["n"] = grouped.size()
    summary = summary.reset_index()
    if summary["protocol"].nunique() > 1:
        summary["method"] = summary["method"] + " [" + summary["protocol"] + "]"
    return summary


def base_method(row_name: str) -> str:
    """The method of a table row (``dec [paper-text]`` -> ``dec``)."""
    return row_name.split(" [")[0]


def protocols_line(summary: pd.DataFrame) -> str:
    """The caption's sentence naming the protocol(s) the table's runs followed."""
    from dcbench.methods.protocols import PROTOCOLS

    names = [n for n in dict.fromkeys(summary["protocol"]) if n] if "protocol" in summary else []
    if not names:
        return ""
    described = [
        f"'{n}' ({PROTOCOLS.description(n)})" if n in PROTOCOLS else f"'{n}'" for n in names
    ]
    return f" Protocol{'s' * (len(names) > 1)}: {'; '.join(described)}."


def ordered(names, registry) -> list[str]:
    """Registry order (the paper's order; a row ``dec [protocol]`` sits with ``dec``), unknown
    names last."""
    known = list(registry)

    def key(n: str) -> tuple[int, str]:
        base = base_method(n)
        return (known.index(base) if base in known else len(known), n)

    return sorted(dict.fromkeys(names), key=key)


def spread(values: list[float], digits: int = 2) -> str:
    """'mean ± sample std' of ``values``; the value alone if there is one, '–' if none."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def cell(mean: float, std: float, n: int) -> str:
    """A table cell: 'mean ± std' in % (the mean alone for one seed)."""
    spread = "" if n < 2 else f" ± {std:.2f}"
    return f"{mean:.2f}{spread}"


def _paper(method: str, dataset: str, metric: str) -> str:
    value = paper_value(base_method(method), dataset, metric)
    return "–" if value is None else f"{value:.2f}"


def table_rows(
    summary: pd.DataFrame, nmi: str = "geometric"
) -> tuple[list[str], list[list[str]], set[tuple[int, int]]]:
    """Header, rows (one per method; per dataset ACC, paper, NMI, paper, n) and the cells to
    print in bold: the best mean of ours in each ACC and NMI column."""
    nmi_col = NMI_COLUMN[nmi]
    datasets, methods = ordered(summary["dataset"], DATASETS), ordered(summary["method"], METHODS)
    header = ["method"]
    for d in datasets:
        header += [f"{d} ACC", "paper", f"{d} NMI", "paper", "n"]
    rows = [[m] for m in methods]
    bold = set()
    for j, d in enumerate(datasets):
        mine = summary[summary["dataset"] == d].set_index("method")
        for col, metric, offset in (("acc", "acc", 1), (nmi_col, "nmi", 3)):
            best = mine[f"{col}_mean"].max() if len(mine) else None
            for i, m in enumerate(methods):
                if m in mine.index:
                    s = mine.loc[m]
                    rows[i].append(cell(s[f"{col}_mean"], s[f"{col}_std"], s["n"]))
                    if s[f"{col}_mean"] == best:
                        bold.add((i, 1 + 5 * j + offset - 1))
                else:
                    rows[i].append("")
                rows[i].append(_paper(m, d, metric))
        for i, m in enumerate(methods):
            rows[i].append(str(int(mine.loc[m, "n"])) if m in mine.index else "0")
    return header, rows, bold


def caption(nmi: str, bold: bool = True, methods=(), protocols: str = "") -> str:
    others = {m: paper_source(base_method(m)) for m in methods if paper_source(base_method(m))}
    return (
        f"Clustering ACC and NMI ({nmi} normalization) in %, mean ± sample std over n seeds"
        + (" (best mean of ours in bold)" if bold else "")
        + "; 'paper' is Table 1 of Guo et al. (2017)"
        + "".join(f", for {m} {src}" for m, src in others.items())
        + ("; all of them used" if others else ", whose NMI used")
        + " the geometric normalization."
        + protocols
    )


def markdown_table(summary: pd.DataFrame, nmi: str = "geometric") -> str:
    header, rows, bold = table_rows(summary, nmi)
    methods = [row[0] for row in rows]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for i, row in enumerate(rows):
        cells = [f"**{c}**" if (i, j) in bold else c for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + f"\n\n{caption(nmi, methods=methods, protocols=protocols_line(summary))}\n"
    )


def latex_table(summary: pd.DataFrame, nmi: str = "geometric") -> str:
    """A booktabs table that compiles as is (needs \\usepackage{booktabs})."""
    header, rows, bold = table_rows(summary, nmi)
    datasets = ordered(summary["dataset"], DATASETS)

    def tex(s: str) -> str:
        return s.replace("±", r"$\pm$").replace("–", "--").replace("_", r"\_").replace("%", r"\%")

    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{"
        + tex(
            caption(nmi, methods=[r[0] for r in rows], protocols=protocols_line(summary))
        ).replace("'paper'", "`paper'")
        + "}",
        r"\begin{tabular}{l" + "rrrrr" * len(datasets) + "}",
        r"\toprule",
        " & ".join([""] + [rf"\multicolumn{{5}}{{c}}{{{tex(d)}}}" for d in datasets]) + r" \\",
        "".join(rf"\cmidrule(lr){{{2 + 5 * i}-{6 + 5 * i}}}" for i in range(len(datasets))),
        " & ".join(["Method"] + ["ACC", "paper", "NMI", "paper", "$n$"] * len(datasets)) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(rows):
        cells = [rf"\textbf{{{tex(c)}}}" if (i, j) in bold else tex(c) for j, c in enumerate(row)]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def write_tables(out_dir: str | Path, nmi: str = "geometric") -> tuple[str, list[Path]]:
    """Rebuild the tables from the store alone; returns the Markdown and the files written."""
    store = ResultsStore(out_dir)
    summary = summarize(store.dataframe())
    md, tex = markdown_table(summary, nmi), latex_table(summary, nmi)
    paths = [store.table_path, store.tables_dir / "table.tex"]
    atomic_write_text(paths[0], md)
    atomic_write_text(paths[1], tex)
    return md, paths


def comparison_markdown(results: pd.DataFrame, nmi: str = "geometric") -> str:
    """One row per (method, dataset): ours (mean ± std, n) vs the paper, with the delta in points."""
    summary = summarize(results)
    nmi_col = NMI_COLUMN[nmi]
    lines = [
        "| method | dataset | n | ACC ours | ACC paper | Δ ACC | NMI ours | NMI paper | Δ NMI | seconds/run | pretraining s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ok = results[results["status"] == "ok"]
    for d in ordered(summary["dataset"], DATASETS):
        for m in ordered(summary[summary["dataset"] == d]["method"], METHODS):
            s = summary[(summary["method"] == m) & (summary["dataset"] == d)].iloc[0]
            cells = [m, d, str(int(s["n"]))]
            for metric, col in (("acc", "acc"), ("nmi", nmi_col)):
                paper = paper_value(base_method(m), d, metric)
                delta = "–" if paper is None else f"{s[f'{col}_mean'] - paper:+.2f}"
                cells += [
                    cell(s[f"{col}_mean"], s[f"{col}_std"], s["n"]),
                    _paper(m, d, metric),
                    delta,
                ]
            mine = (ok["method"] == base_method(m)) & (ok["dataset"] == d)
            if "protocol" in ok:
                mine &= ok["protocol"] == s["protocol"]
            seconds = ok[mine]["seconds"].mean()
            # the pretraining a row's models start from (shared by its backbone's methods)
            pretrain = ok[mine]["pretrain_seconds"].mean() if "pretrain_seconds" in ok else None
            cells += [f"{seconds:.0f}", "–" if pd.isna(pretrain) else f"{pretrain:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    shown = ordered(summary["method"], METHODS)
    return (
        "\n".join(lines)
        + f"\n\n{caption(nmi, bold=False, methods=shown, protocols=protocols_line(summary))}"
        " Δ = ours − paper, in points. *seconds/run*: the method's own fit; *pretraining s*: the"
        " pretraining its models start from, one per seed shared by the methods on a backbone.\n"
    )
