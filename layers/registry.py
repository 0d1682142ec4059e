"""The registry of layers: every module in ``layers/`` that declares a ``LAYER``."""

from __future__ import annotations

from layers import caragana_plots, grazing_bans, land_leases, subsidence_zones, villages
from layers.errors import UnknownLayerError
from layers.model import Layer

__all__ = ["LAYERS", "get_layer"]

#: Every layer by id, villages first: the others refer to villages by code.
LAYERS: dict[str, Layer] = {
    m.LAYER.id: m.LAYER
    for m in (villages, subsidence_zones, grazing_bans, caragana_plots, land_leases)
}


def get_layer(layer_id: str) -> Layer:
    """The layer called ``layer_id``, or :class:`UnknownLayerError`."""
    try:
        return LAYERS[layer_id]
    except KeyError:
        raise UnknownLayerError(layer_id) from None
