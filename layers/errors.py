"""The one hierarchy of landeco's domain errors; the API maps each to a problem code."""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "DatabaseUnavailableError",
    "LandecoError",
    "UnknownLayerError",
]


class LandecoError(Exception):
    """Base of every error landeco raises on purpose."""

    code = "landeco_error"


class UnknownLayerError(LandecoError):
    """No layer of that id is registered."""

    code = "unknown_layer"

    def __init__(self, layer_id: str) -> None:
        super().__init__(f"no layer called {layer_id!r}")
        self.layer_id = layer_id


class ClusterError(LandecoError):
    """The local PostgreSQL cluster could not be created, started or stopped."""

    code = "cluster_error"


class DatabaseUnavailableError(LandecoError):
    """The database cannot be reached."""

    code = "database_unavailable"
