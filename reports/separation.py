"""How well two classes come apart, per model: the number beside Fig. 3's picture.

The DCEC paper reads its Fig. 3 as "4 and 9 are separated by DCEC, not by DEC-conv". Here that
is measured two ways, for the same records the t-SNE figure shows:

- clusters: the share of a class's samples (all of them, from the run's labels) that land in a
  cluster mapped to the other class (the Hungarian map of ACC);
- embedding: over the figure's own random samples, the mean share of each sample's k nearest
  neighbours in the model's embedding (Euclidean, among the two classes' samples) that share
  its class: 100 % when the classes are apart, about 50 % when they are mixed. It reads the
  embedding itself, not its t-SNE picture (whose distances mean little).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from dcbench.core.fileio import load_torch
from dcbench.core.metrics import cluster_to_class_map
from dcbench.reports.figures import fitted_embedding, panel_title, tsne_sample

PAIR = (4, 9)  # the pair the paper names
NEIGHBOURS = 10


def pair_separation(
    record: dict, fitted: dict, data, idx: np.ndarray, pair=PAIR, k: int = NEIGHBOURS
) -> dict:
    """One record's confusion of ``pair`` (in %) and its embedding's k-NN purity on ``idx``
    (``fitted``: the record's model file)."""
    labels = np.asarray(fitted["labels"])
    mapping = cluster_to_class_map(data.y, labels)
    predicted = np.array([mapping[int(c)] for c in labels])
    a, b = pair
    row = {"method": record["method"], "seed": record["seed"],
           f"{a} as {b}": 100 * float(np.mean(predicted[data.y == a] == b)),
           f"{b} as {a}": 100 * float(np.mean(predicted[data.y == b] == a))}  # fmt: skip
    chosen = idx[np.isin(data.y[idx], pair)]
    if len(chosen) > k:
        z = fitted_embedding(record, fitted, data.x[chosen])
        _, near = NearestNeighbors(n_neighbors=k).fit(z).kneighbors()  # each point not its own
        same = data.y[chosen][near] == data.y[chosen][:, None]
        row["knn purity"] = 100 * float(same.mean())
    row["samples"] = int(len(chosen))
    return row


def separation_markdown(records: list[dict], data, n_samples: int, seed: int = 0, pair=PAIR) -> str:
    """A table of ``pair_separation`` for each deep record (the t-SNE figure's records)."""
    if not all((data.y == c).any() for c in pair):  # a dataset without one of the classes
        return ""
    idx = tsne_sample(data, n_samples, seed)
    rows = []
    for record in records:
        fitted = load_torch(record["model_file"]) if record.get("model_file") else None
        if fitted is not None and "model" in fitted:  # a deep model's weights
            rows.append(pair_separation(record, fitted, data, idx, pair))
    if not rows:
        return ""
    a, b = pair
    lines = [f"{a} and {b} apart ({data.name}, seed {rows[0]['seed']}): the share of each "
             f"class's samples in a cluster mapped to the other, and the {NEIGHBOURS}-NN "
             f"purity of the embedding over the figure's {a}s and {b}s (50 % = mixed, 100 % = "
             "apart).", "",
             f"| model | {a} as {b} (%) | {b} as {a} (%) | {NEIGHBOURS}-NN purity (%) | samples |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        purity = f"{r['knn purity']:.1f}" if "knn purity" in r else "–"
        lines.append(f"| {panel_title(r['method'])} | {r[f'{a} as {b}']:.1f} "
                     f"| {r[f'{b} as {a}']:.1f} | {purity} | {r['samples']} |")  # fmt: skip
    return "\n".join(lines) + "\n"
