"""Methods, backbones and losses by name.

``METHODS.get("dcec").build(config)`` builds an estimator; ``METHODS.names()``,
``BACKBONES.names()`` and ``LOSSES.names()`` list what is registered.

Every module of this package is imported here, so a new method, backbone or loss is one new
file whose entries register themselves: no import list to edit. Code outside the tree adds
its own the same way through the ``dcbench.plugins`` entry point group (a module to import).
"""

import importlib
import pkgutil
from importlib.metadata import entry_points

from dcbench.methods.backbones import BACKBONES, BackboneSpec, register_backbone
from dcbench.methods.deep import DeepClusterer
from dcbench.methods.kmeans import PixelKMeans
from dcbench.methods.losses import LOSSES, register_loss
from dcbench.methods.phase import ClusteringPhase, Hyperparameter
from dcbench.methods.registry import METHODS, MethodSpec, register_method
from dcbench.methods.table1 import combination, deep_method

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
for _plugin in entry_points(group="dcbench.plugins"):
    try:
        _plugin.load()
    except Exception as exc:  # one line naming the plugin, not a traceback from deep inside
        raise ImportError(f"dcbench plugin '{_plugin.name}' ({_plugin.value}): {exc}") from exc

__all__ = [
    "BACKBONES", "LOSSES", "METHODS",
    "BackboneSpec", "ClusteringPhase", "DeepClusterer", "Hyperparameter", "MethodSpec",
    "PixelKMeans", "combination", "deep_method", "register_backbone", "register_loss",
    "register_method",
]  # fmt: skip
