"""Table 1 of Guo et al. (ICONIP 2017), ACC / NMI in percent (PROTOCOL.md, lines 217-229 of the paper).

Keyed by our method and dataset names. NMI in the paper's era is the geometric normalization.
"""

TABLE1: dict[str, dict[str, tuple[float, float | None]]] = {
    "kmeans": {"mnist-full": (54.24, 48.52), "mnist-test": (54.63, 50.18), "usps": (66.82, 62.66)},
    "sec": {"mnist-full": (80.37, None)},
    "sae-kmeans": {
        "mnist-full": (78.17, 71.46),
        "mnist-test": (66.81, 59.59),
        "usps": (61.65, 57.27),
    },
    "dec": {"mnist-full": (84.08, 81.28), "mnist-test": (69.94, 67.69), "usps": (69.28, 70.18)},
    "idec": {"mnist-full": (84.21, 83.81), "mnist-test": (71.45, 69.40), "usps": (72.10, 73.23)},
    "cae-kmeans": {
        "mnist-full": (84.90, 79.27),
        "mnist-test": (79.00, 72.55),
        "usps": (74.15, 73.30),
    },
    "dec-conv": {
        "mnist-full": (88.63, 87.59),
        "mnist-test": (84.83, 82.62),
        "usps": (77.90, 81.08),
    },
    "dcec": {"mnist-full": (88.97, 88.49), "mnist-test": (85.29, 83.61), "usps": (79.00, 82.57)},
}


def paper_value(method: str, dataset: str, metric: str) -> float | None:
    """The paper's ACC or NMI (percent) for our method/dataset names, or None if not reported.

    A method outside Table 1 (DCN, DEPICT) is compared with its own paper's numbers, which
    live in its registry entry (``MethodSpec.reference``); ``paper_source`` names the paper.
    """
    acc_nmi = TABLE1.get(method, {}).get(dataset)
    if acc_nmi is None and method not in TABLE1:
        acc_nmi = _spec(method).reference.get(dataset) if _spec(method) else None
    if acc_nmi is None:
        return None
    return acc_nmi[0] if metric == "acc" else acc_nmi[1]


def paper_source(method: str) -> str | None:
    """Where a method's reference numbers come from, when that is not the DCEC paper's Table 1."""
    spec = _spec(method)
    return None if method in TABLE1 or spec is None else spec.reference_source


def paper_name(method: str) -> str | None:
    """The method's row name in the paper's Table 1 (its registry entry's), if it has one."""
    spec = _spec(method)
    return spec.paper_name if spec else None


def _spec(method: str):
    from dcbench.methods import METHODS

    return METHODS.get(method) if method in METHODS else None
