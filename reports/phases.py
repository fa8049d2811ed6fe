"""Where each deep run started and where it ended: the measurement behind a gap to the paper.

Per run: the reconstruction loss its pretraining ended at, the ACC of its initial clustering
(the history's iteration 0: k-means on the pretrained embedding by default, i.e. X+k-means of
the same seed; AC-PIC where ``init`` says so, as for DEPICT on USPS and MNIST-test), the best
ACC logged while training, at a target update or, for DCN and DEPICT, an epoch (evaluation
only: nothing selects by it), the final ACC / NMI, and the iterations its clustering phase ran (to ``maxiter`` when its stop
rule was never met). A cell below the paper then reads as a poor pretraining, a poor start,
or a phase that did not gain.
"""

from __future__ import annotations

import math

from dcbench.reports.tables import spread

COLUMNS = ("pretraining rec (last epoch)", "ACC initial", "ACC best while training",
           "ACC final", "NMI final", "iterations")  # fmt: skip
PERCENT = {"ACC initial", "ACC best while training", "ACC final", "NMI final"}

Run = tuple[int, tuple[float, ...], bool]  # seed, the columns' values, ran to maxiter


def phase_rows(records: list[dict]) -> dict[str, list[Run]]:
    """The finished runs that logged a clustering history, by ``method / dataset``; a value a
    record does not hold (no pretraining logged, a history older than its iteration-0 entry)
    is NaN."""
    by_cell: dict[str, list[Run]] = {}
    nan = float("nan")
    for r in records:
        history = (r.get("history") or {}).get("clustering")
        if r.get("status") != "ok" or not history:
            continue
        pretrain = r["history"].get("pretrain") or [{"rec": nan}]
        initial = history[0]["acc"] if history[0]["iteration"] == 0 else nan
        ran, to_maxiter = iterations(history, r["config"])
        values = (pretrain[-1]["rec"], initial, max(e.get("acc", 0.0) for e in history),
                  r["metrics"]["acc"], r["metrics"]["nmi_geometric"], ran)  # fmt: skip
        by_cell.setdefault(f"{r['method']} / {r['dataset']}", []).append(
            (r["seed"], values, to_maxiter)
        )
    return by_cell


def iterations(history: list[dict], config: dict) -> tuple[int, bool]:
    """The clustering phase's iterations and whether it ran to ``maxiter``. DEC, IDEC, DCEC
    (``tol`` in their config) stop at a target update after iteration 0 whose label change
    falls below ``tol``: one whose last logged change is not below it ran to ``maxiter``
    (its last update may lie up to an interval before it). DCN and DEPICT log at ``maxiter``
    when they reach it (DEPICT stops sooner when its targets settle). X+k-means (no
    ``maxiter``: the initial clustering only) ran none."""
    if "maxiter" not in config:
        return 0, False
    last, maxiter = history[-1], int(config["maxiter"])
    if "tol" in config:
        stopped = last["iteration"] > 0 and last.get("delta_label", 1.0) < config["tol"]
    else:
        stopped = last["iteration"] < maxiter
    return (last["iteration"], False) if stopped else (maxiter, True)


def _cells(values: list[tuple[float, ...]], to_maxiter: list[bool]) -> str:
    cells = []
    for column, column_values in zip(COLUMNS, zip(*values, strict=True), strict=True):
        if any(math.isnan(v) for v in column_values):  # not in every record: not averaged
            cells.append("–")
        elif column in PERCENT:
            cells.append(spread([100 * v for v in column_values]))
        elif column == "iterations":  # and how many ran to maxiter
            hit, n = sum(to_maxiter), len(to_maxiter)
            note = "" if not hit else " (maxiter)" if n == 1 else f" ({hit} of {n} to maxiter)"
            cells.append(spread(list(column_values), digits=0) + note)
        else:
            cells.append(spread(list(column_values), digits=4))
    return " | ".join(cells)


def phase_markdown(records: list[dict], per_seed: bool = True) -> str:
    """The table (one row per run if ``per_seed``, and mean ± std per cell); '' if no run
    logged a clustering history."""
    by_cell = phase_rows(records)
    if not by_cell:
        return ""
    lines = ["ACC and NMI (geometric) in %; the reconstruction loss (MSE) of the pretraining's "
             "last epoch; the best ACC logged while training (at a target update, or an epoch "
             "for DCN and DEPICT; evaluation only: nothing selects by it, and the final labels "
             "may come after the last log); the clustering phase's iterations, and how many ran "
             "to maxiter (their stop rule never met); – where a record does not hold the value.",
             "", "| method / dataset | seed | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for cell, runs in sorted(by_cell.items()):
        if per_seed or len(runs) == 1:
            for seed, values, to_maxiter in sorted(runs):
                lines.append(f"| {cell} | {seed} | {_cells([values], [to_maxiter])} |")
        if len(runs) > 1:
            cells = _cells([v for _, v, _ in runs], [m for _, _, m in runs])
            lines.append(f"| {cell} | mean ± std ({len(runs)}) | {cells} |")
    return "\n".join(lines) + "\n"
