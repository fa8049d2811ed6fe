"""dcbench: a reference benchmark suite for deep clustering of images.

The repository's top-level folders ``datasets/``, ``methods/`` and ``reports/`` are
installed as ``dcbench.datasets``, ``dcbench.methods`` and ``dcbench.reports``.
"""

__version__ = "0.1.0"
