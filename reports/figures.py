"""Figures from the results store: t-SNE of embeddings (Fig. 3), training curves, ACC spread.

Nothing here trains a model: embeddings come from the fitted weights that the executor saved
beside each record.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dcbench.core.fileio import load_torch  # noqa: E402
from dcbench.core.metrics import cluster_to_class_map  # noqa: E402
from dcbench.datasets import DATASETS  # noqa: E402
from dcbench.methods import METHODS  # noqa: E402
from dcbench.reports.paper import paper_name  # noqa: E402
from dcbench.reports.tables import ordered  # noqa: E402

CLASS_COLORS = plt.get_cmap("tab10").colors  # class k is always this color, in every panel
FIG3_METHODS = ("cae-kmeans", "dec-conv", "dcec")
PANEL_TITLES = {"cae-kmeans": "CAE (pretrained)", "sae-kmeans": "SAE (pretrained)"}
NOT_LOSS_TERMS = {"iteration", "epoch", "stage", "delta_label", "acc", "nmi"}


# No creation date in a PDF: a figure rebuilt from the same records is the same file
METADATA = {".png": None, ".pdf": {"CreationDate": None}}


def save(fig, path_without_suffix: Path) -> list[Path]:
    path_without_suffix.parent.mkdir(parents=True, exist_ok=True)
    paths = [path_without_suffix.with_suffix(s) for s in METADATA]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight", metadata=METADATA[p.suffix])
    plt.close(fig)
    return paths


@contextlib.contextmanager
def _global_numpy_seed(seed: int):
    """NumPy's global RNG seeded inside the block (the same picture on every build), and
    given back its state after it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def panel_title(method: str) -> str:
    if method in PANEL_TITLES:
        return PANEL_TITLES[method]
    return paper_name(method) or method


def fitted_embedding(record: dict, fitted: dict, x: np.ndarray) -> np.ndarray:
    """The embedding of ``x`` by the deep model ``fitted`` (a record's model file)."""
    from dcbench.methods.deep import DeepClusterer

    est = DeepClusterer(**{**record["config"], "device": "cpu"})
    return est.restore(fitted, x.shape[1:]).transform(x)  # with the run's input scale


def tsne_sample(data, n_samples: int, seed: int = 0) -> np.ndarray:
    """The figure's samples: ``n_samples`` random indices (sorted), the same for every panel."""
    n = min(n_samples, data.n_samples)
    return np.sort(np.random.default_rng(seed).choice(data.n_samples, n, replace=False))


def tsne_figure(
    records: list[dict], data, out_prefix: Path, n_samples: int = 1000, seed: int = 0
) -> list[Path]:
    """Fig. 3: t-SNE of the same ``n_samples`` random samples for each record's model, colored by
    true label (top row) and by predicted cluster mapped to its best-matching class (bottom row)."""
    from openTSNE import TSNE

    idx = tsne_sample(data, n_samples, seed)
    panels = []
    for record in records:
        fitted = load_torch(record["model_file"]) if record.get("model_file") else None
        if fitted is None or "model" not in fitted:  # no model, or a shallow method
            continue
        z = fitted_embedding(record, fitted, data.x[idx])
        labels = fitted["labels"]
        mapping = cluster_to_class_map(data.y, labels)
        predicted = np.array([mapping[int(c)] for c in labels[idx]])
        xy = np.asarray(TSNE(random_state=seed, n_jobs=1, verbose=False).fit(z.astype(np.float64)))
        panels.append((panel_title(record["method"]), xy, predicted))
    if not panels:
        return []
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 8.4), squeeze=False)
    for col, (title, xy, predicted) in enumerate(panels):
        for row, colors in enumerate((data.y[idx], predicted)):
            ax = axes[row, col]
            c = [CLASS_COLORS[k % 10] if k >= 0 else (0.6, 0.6, 0.6) for k in colors]
            ax.scatter(xy[:, 0], xy[:, 1], c=c, s=4, linewidths=0)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(
                f"{title}\n{'true labels' if row == 0 else 'predicted clusters (mapped)'}",
                fontsize=10,
            )
            if col == 0:
                ax.set_ylabel("t-SNE 2")
            if row == 1:
                ax.set_xlabel("t-SNE 1")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=CLASS_COLORS[k], label=str(k))
        for k in range(min(10, data.n_classes))
    ]
    fig.legend(handles=handles, title="class", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        f"t-SNE of {len(idx)} {data.name} samples (seed {records[0]['seed']}; same samples in every panel)"
    )
    fig.tight_layout()
    return save(fig, out_prefix)


def loss_terms(records: list[dict]) -> list[str]:
    """The loss terms to plot: those the records' loss declares (``terms`` of its phase), else
    (a loss no longer registered) every logged key that is not bookkeeping."""
    from dcbench.methods.losses import LOSSES

    loss = records[0].get("config", {}).get("loss")
    if loss in LOSSES:
        return list(LOSSES.get(loss).terms)
    logged = dict.fromkeys(k for r in records for e in r["history"]["clustering"] for k in e)
    return [t for t in logged if t not in NOT_LOSS_TERMS]


def curves_figure(records: list[dict], out_prefix: Path) -> list[Path]:
    """Clustering-phase curves of one method on one dataset, one line per seed."""
    records = [r for r in records if r.get("history", {}).get("clustering")]
    if not records or len(records[0]["history"]["clustering"]) < 2:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    terms = loss_terms(records)
    for i, r in enumerate(sorted(records, key=lambda r: r["seed"])):
        h = pd.DataFrame(r["history"]["clustering"])
        color = plt.get_cmap("tab10")(
            i % 10
        )  # one color per seed in every panel; line style = term
        for term, style in zip(terms, ["-", "--", ":", "-."] * len(terms), strict=False):
            if term in h and pd.api.types.is_numeric_dtype(h[term]):
                axes[0].plot(
                    h["iteration"],
                    h[term],
                    style,
                    color=color,
                    marker=".",
                    label=f"{term}, seed {r['seed']}",
                )
        axes[1].plot(
            h["iteration"][1:],
            h["delta_label"][1:].clip(lower=1e-5),
            color=color,
            marker=".",
            label=f"seed {r['seed']}",
        )
        if "acc" in h:
            axes[2].plot(
                h["iteration"], h["acc"] * 100, color=color, marker=".", label=f"seed {r['seed']}"
            )
    tol = records[0]["config"].get("tol")
    if tol:
        axes[1].axhline(tol, color="k", lw=0.8, ls=":", label="tol")
    axes[1].set_yscale("log")
    for ax, ylabel in zip(
        axes, ("loss (mean over interval)", "fraction of labels changed", "ACC (%)"), strict=True
    ):
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{panel_title(records[0]['method'])} on {records[0]['dataset']}: clustering phase"
    )
    fig.tight_layout()
    return save(fig, out_prefix)


def spread_figure(results: pd.DataFrame, out_prefix: Path) -> list[Path]:
    """ACC per seed (points) with a box per method, one panel per dataset."""
    ok = results[results["status"] == "ok"].assign(ACC=lambda f: f["acc"] * 100)
    if ok.empty:
        return []
    datasets = ordered(ok["dataset"], DATASETS)
    methods = ordered(ok["method"], METHODS)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(1.1 * len(methods) * len(datasets) + 1.5, 4), squeeze=False
    )
    for ax, d in zip(axes[0], datasets, strict=True):
        sub = ok[ok["dataset"] == d]
        order = [m for m in methods if m in set(sub["method"])]
        sns.boxplot(
            data=sub, x="method", y="ACC", order=order, ax=ax, color="0.9", showfliers=False
        )
        with _global_numpy_seed(0):  # seaborn jitters from NumPy's global RNG
            sns.stripplot(
                data=sub,
                x="method",
                y="ACC",
                order=order,
                ax=ax,
                hue="method",
                palette="deep",
                legend=False,
                size=5,
            )
        ax.set_title(d)
        ax.set_xlabel("method")
        ax.set_ylabel("ACC (%) per seed")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return save(fig, out_prefix)
