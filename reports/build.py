"""One report from the results store: tables, significance, figures, and an index linking them."""

from __future__ import annotations

from pathlib import Path

from dcbench.core.fileio import atomic_write_text
from dcbench.reports.figures import FIG3_METHODS, curves_figure, spread_figure, tsne_figure
from dcbench.reports.phases import phase_markdown
from dcbench.reports.separation import separation_markdown
from dcbench.reports.significance import significance_markdown
from dcbench.reports.tables import write_tables
from dcbench.runner.store import ResultsStore, safe_name


def build_report(
    out_dir: str | Path,
    *,
    nmi: str = "geometric",
    tsne_methods: list[str] | None = None,
    data_dir: str | Path | None = None,
    figures: bool = True,
    tsne_samples: int = 1000,
) -> Path:
    """Write ``report.md`` under ``out_dir`` (and everything it links); returns its path."""
    out = Path(out_dir)
    store = ResultsStore(out)
    results = store.dataframe()
    table_md, table_paths = write_tables(out, nmi)
    sig = significance_markdown(results)
    atomic_write_text(store.tables_dir / "significance.md", sig)

    sections = [
        "# Clustering report\n",
        f"Built from `{out}` ({len(results)} runs, {int((results['status'] == 'ok').sum())} ok).\n",
        "## ACC / NMI\n",
        table_md,
        f"Files: [table.md]({_rel(table_paths[0], out)}), [table.tex]({_rel(table_paths[1], out)}), "
        f"[results.csv](results.csv).\n",
        "## Paired comparisons (ACC)\n",
        sig,
    ]
    records = [r for r in store.records() if r.get("status") == "ok"]
    if phases := phase_markdown(records, per_seed=False):
        sections += ["## From pretraining to the end of clustering\n", phases]
    if figures:
        figs = store.figures_dir
        sections.append("## Per-seed spread\n")
        sections += _images(spread_figure(results, figs / "acc_spread"), out)
        sections.append("## t-SNE of the embeddings (Fig. 3)\n")
        for dataset in dict.fromkeys(r["dataset"] for r in records):
            chosen = _tsne_records(records, dataset, tsne_methods)
            if chosen:
                from dcbench.datasets import load_dataset

                data = load_dataset(dataset, data_dir)
                sections += _images(
                    tsne_figure(chosen, data, figs / f"tsne_{dataset}", n_samples=tsne_samples), out
                )
                if table := separation_markdown(chosen, data, n_samples=tsne_samples):
                    sections.append(table)
        sections.append("## Training curves (clustering phase)\n")
        for method, dataset in dict.fromkeys((r["method"], r["dataset"]) for r in records):
            mine = [r for r in records if r["method"] == method and r["dataset"] == dataset]
            sections += _images(
                curves_figure(mine, figs / f"curves_{safe_name(method)}_{dataset}"), out
            )
    path = store.report_path
    atomic_write_text(path, "\n".join(sections))
    return path


def _tsne_records(records: list[dict], dataset: str, methods: list[str] | None) -> list[dict]:
    """Records of the wanted methods for one seed (the first seed that has them all)."""
    mine = [r for r in records if r["dataset"] == dataset and r.get("model_file")]
    deep = [m for m in dict.fromkeys(r["method"] for r in mine) if r_is_deep(mine, m)]
    wanted = methods or [m for m in FIG3_METHODS if m in deep] or deep
    wanted = [m for m in wanted if m in deep]
    for seed in sorted({r["seed"] for r in mine}):
        chosen = [
            next((r for r in mine if r["method"] == m and r["seed"] == seed), None) for m in wanted
        ]
        if wanted and all(chosen):
            return chosen
    return []


def r_is_deep(records: list[dict], method: str) -> bool:
    return any(r["method"] == method and "backbone" in r.get("config", {}) for r in records)


def _images(paths: list[Path], out: Path) -> list[str]:
    png = [p for p in paths if p.suffix == ".png"]
    return [
        f"![{p.stem}]({_rel(p, out)}) ([pdf]({_rel(p.with_suffix('.pdf'), out)}))\n" for p in png
    ]


def _rel(path: Path, out: Path) -> str:
    return str(Path(path).relative_to(out))
