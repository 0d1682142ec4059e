"""The one hierarchy of landeco's domain errors.

Each error class carries its stable problem ``code``, its HTTP ``status`` and a short
``title``; the API answers any of them as RFC 9457 problem+json from these attributes,
so adding an error never means editing a handler.
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "ClusterError",
    "DatabaseUnavailableError",
    "LandecoError",
    "NotFoundError",
    "QueryTimeoutError",
    "UnknownLayerError",
    "UnknownVillageError",
]


class LandecoError(Exception):
    """Base of every error landeco raises on purpose."""

    code = "landeco_error"
    #: Former codes of the same fault, sent along in the problem's ``aliases`` member.
    aliases: tuple[str, ...] = ()
    status = 400
    title = "Bad request"

    def extra(self) -> dict[str, object]:
        """Further members of the problem document (e.g. a position, a list of problems)."""
        return {}


class BadRequestError(LandecoError):
    """The request is understood but its values are wrong."""

    code = "bad_request"


class NotFoundError(LandecoError):
    """The thing asked for does not exist."""

    code = "not_found"
    status = 404
    title = "Not found"


class UnknownLayerError(NotFoundError):
    """No layer of that id is registered."""

    code = "unknown_layer"
    title = "Unknown layer"

    def __init__(self, layer_id: str) -> None:
        super().__init__(f"no layer called {layer_id!r}")
        self.layer_id = layer_id


class UnknownVillageError(NotFoundError):
    """No village has that code."""

    code = "unknown_village"
    title = "Unknown village"

    def __init__(self, village: str) -> None:
        super().__init__(f"no village with code {village!r}")
        self.village = village

    def extra(self) -> dict[str, object]:
        """The code asked for."""
        return {"village": self.village}


class ClusterError(LandecoError):
    """The local PostgreSQL cluster could not be created, started or stopped."""

    code = "cluster_error"
    status = 503
    title = "Local database cluster error"


class DatabaseUnavailableError(LandecoError):
    """The database cannot be reached."""

    code = "database_unavailable"
    status = 503
    title = "Database unavailable"


class QueryTimeoutError(LandecoError):
    """A statement ran past its time limit: the request asked for more than the server computes."""

    code = "query_timeout"
    status = 503
    title = "Query took too long"
