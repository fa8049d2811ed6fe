"""Paired tests over seeds for the comparisons the paper argues about."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

# (a, b, what the comparison isolates)
PAIRS = [
    ("dcec", "dec-conv", "reconstruction loss, CAE"),
    ("idec", "dec", "reconstruction loss, SAE"),
    ("cae-kmeans", "sae-kmeans", "CAE vs SAE backbone, k-means"),
    ("dec-conv", "dec", "CAE vs SAE backbone, KL"),
    ("dcec", "idec", "CAE vs SAE backbone, KL + reconstruction"),
]


def paired_tests(results: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """For each pair and dataset, over the seeds both have: mean difference (points), a paired
    t-test and a Wilcoxon signed-rank test (two-sided). p is NaN where n < 2 (t) or all
    differences are zero (Wilcoxon)."""
    ok = results[results["status"] == "ok"]
    rows = []
    for a, b, what in PAIRS:
        for dataset in ok["dataset"].unique():
            va = ok[(ok["method"] == a) & (ok["dataset"] == dataset)].set_index("seed")[metric]
            vb = ok[(ok["method"] == b) & (ok["dataset"] == dataset)].set_index("seed")[metric]
            seeds = sorted(set(va.index) & set(vb.index))
            if not seeds:
                continue
            diff = (va.loc[seeds] - vb.loc[seeds]).to_numpy() * 100
            t_p = stats.ttest_rel(va.loc[seeds], vb.loc[seeds]).pvalue if len(seeds) > 1 else np.nan
            w_p = stats.wilcoxon(diff).pvalue if len(seeds) > 1 and np.any(diff != 0) else np.nan
            rows.append(
                {"a": a, "b": b, "isolates": what, "dataset": dataset, "n": len(seeds),
                 "mean_diff": diff.mean(), "a_wins": int((diff > 0).sum()), "t_p": t_p, "wilcoxon_p": w_p}
            )  # fmt: skip
    return pd.DataFrame(rows)


def significance_markdown(results: pd.DataFrame, metric: str = "acc") -> str:
    table = paired_tests(results, metric)
    lines = [
        f"| A | B | isolates | dataset | n | mean {metric.upper()} A − B (points) | A wins | paired t p | Wilcoxon p |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.a} | {r.b} | {r.isolates} | {r.dataset} | {r.n} | {r.mean_diff:+.2f} | {r.a_wins}/{r.n} | {_p(r.t_p)} | {_p(r.wilcoxon_p)} |"
        )
    note = (
        "\nPaired over the seeds both methods ran (methods on the same backbone share the "
        "pretrained autoencoder of a seed). Two-sided tests; with n seeds the smallest possible "
        "Wilcoxon p is 2/2^n, so few seeds cannot show significance by that test.\n"
    )
    return (
        "\n".join(lines) + "\n" + note
        if len(table)
        else "No method pair of the comparison list was run.\n"
    )


def _p(p: float) -> str:
    return "–" if np.isnan(p) else f"{p:.3g}"
