"""The registry of layers: every module in ``layers/defs/`` that declares a ``LAYER``.

Modules are found, not listed: adding a layer is adding its module. Frames (the villages,
which the others refer to by code) come first, then layers in drawing order.
"""

from __future__ import annotations

import importlib
import pkgutil

from layers import defs
from layers.errors import UnknownLayerError
from layers.model import Layer

__all__ = ["LAYERS", "discover", "get_layer"]


def discover(package=defs) -> dict[str, Layer]:
    """The layers declared by the modules of ``package``, frames first, then by drawing order."""
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        layer = getattr(module, "LAYER", None)
        if isinstance(layer, Layer):
            found.append(layer)
    found.sort(key=lambda la: (la.role != "frame", la.order, la.id))
    return {layer.id: layer for layer in found}


#: Every layer by id, villages first: the others refer to villages by code.
LAYERS: dict[str, Layer] = discover()


def get_layer(layer_id: str) -> Layer:
    """The layer called ``layer_id``, or :class:`UnknownLayerError`."""
    try:
        return LAYERS[layer_id]
    except KeyError:
        raise UnknownLayerError(layer_id) from None
