"""Methods by name: ``METHODS.get("kmeans").build(config)``; ``METHODS.names()`` lists them."""

from dcbench.methods import kmeans as _kmeans  # noqa: F401  (registers the entry)
from dcbench.methods.kmeans import PixelKMeans
from dcbench.methods.registry import METHODS, MethodSpec, register_method

__all__ = ["METHODS", "MethodSpec", "PixelKMeans", "register_method"]
