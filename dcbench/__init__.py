"""dcbench: a reference benchmark suite for deep clustering of images.

The repository's top-level folders ``datasets/``, ``methods/`` and ``reports/`` are
installed as ``dcbench.datasets``, ``dcbench.methods`` and ``dcbench.reports``.
"""

# torch before scikit-learn and scipy, in every process (driver, workers, tests): the OpenMP
# runtime loaded first is the one the others then use, and it changes float rounding, hence a
# run's labels (measured: DCEC on digits, seed 0, 62.44 vs 61.99 ACC in-process when
# scikit-learn came first). All records so far were made with torch first.
import torch  # noqa: F401, E402  (import order is the point)

__version__ = "0.1.0"
