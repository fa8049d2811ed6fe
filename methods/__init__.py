"""Methods, backbones and losses by name.

``METHODS.get("dcec").build(config)`` builds an estimator; ``METHODS.names()``,
``BACKBONES.names()`` and ``LOSSES.names()`` list what is registered.
"""

from dcbench.methods import kmeans as _kmeans  # noqa: F401  (registers the entries, in table order)
from dcbench.methods import sec as _sec  # noqa: F401
from dcbench.methods import sec_grid as _sec_grid  # noqa: F401
from dcbench.methods import table1 as _table1  # noqa: F401

# isort: split
from dcbench.methods import dcn as _dcn  # noqa: F401  (beyond the paper)
from dcbench.methods import depict as _depict  # noqa: F401
from dcbench.methods.backbones import BACKBONES, BackboneSpec, register_backbone
from dcbench.methods.deep import DeepClusterer
from dcbench.methods.kmeans import PixelKMeans
from dcbench.methods.losses import LOSSES, register_loss
from dcbench.methods.registry import METHODS, MethodSpec, register_method
from dcbench.methods.table1 import combination, deep_method

__all__ = [
    "BACKBONES", "LOSSES", "METHODS",
    "BackboneSpec", "DeepClusterer", "MethodSpec", "PixelKMeans",
    "combination", "deep_method", "register_backbone", "register_loss", "register_method",
]  # fmt: skip
