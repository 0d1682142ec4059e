"""What routes share: the settings, the engine and a connection to it, as FastAPI dependencies.

The engine is built once in the application's lifespan (:func:`api.app.create_app`) and
disposed at shutdown; every route reaches the database through :data:`EngineDep` or
:data:`ConnDep`, so that every statement runs under the statement timeout of the settings
and every database fault is answered by the one handler in :mod:`api.problems`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import Depends, Path, Query, Request

from layers.model import Layer
from layers.registry import get_layer
from layers.settings import Settings

__all__ = ["CollectionDep", "ConnDep", "EngineDep", "FDep", "LayerDep", "LayerId", "SettingsDep", "get_conn",
           "get_engine", "get_settings", "wants_html"]


def get_settings(request: Request) -> Settings:
    """The settings the application was built with."""
    return request.app.state.settings


def get_engine(request: Request) -> sa.Engine:
    """The application's engine (made in the lifespan)."""
    return request.app.state.engine


def get_conn(request: Request) -> Iterator[sa.Connection]:
    """A pooled connection for the request, returned (rolled back) when the answer is made."""
    with get_engine(request).connect() as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[sa.Engine, Depends(get_engine)]
ConnDep = Annotated[sa.Connection, Depends(get_conn)]


# -- the layer a path names --------------------------------------------------------------------

LayerId = Annotated[str, Path(description="collection (layer) id, e.g. caragana_plots")]


def _collection(collection_id: LayerId) -> Layer:
    return get_layer(collection_id)


def _layer(layer_id: LayerId) -> Layer:
    return get_layer(layer_id)


#: The layer of an OGC path (``/collections/{collection_id}/…``), or 404 ``unknown_layer``.
CollectionDep = Annotated[Layer, Depends(_collection)]
#: The layer of a landeco path (``/maps/{layer_id}``, ``/export/{layer_id}`` …), or 404.
LayerDep = Annotated[Layer, Depends(_layer)]


# -- content negotiation -----------------------------------------------------------------------

Format = Literal["json", "geojson", "html"]
#: ``f``: the format asked for by name, which wins over the Accept header.
FDep = Annotated[Format | None, Query(description="json (default for API clients) or html "
                                      "(default for browsers)")]


def wants_html(request: Request, f: str | None) -> bool:
    """HTML when asked with ``f=html``, or when the Accept header prefers it to JSON (browsers).

    >>> from starlette.requests import Request
    >>> browser = Request({"type": "http", "headers": [(b"accept", b"text/html,*/*;q=0.8")]})
    >>> wants_html(browser, None), wants_html(browser, "json")
    (True, False)
    """
    if f is not None:
        return f == "html"
    html = json_q = 0.0
    for part in request.headers.get("accept", "").split(","):
        kind, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = kind.strip().lower()
        if kind == "text/html":
            html = max(html, q)
        elif kind.endswith("json"):
            json_q = max(json_q, q)
    return html > json_q
