"""What routes share: the settings, the engine and a connection to it, as FastAPI dependencies.

The engine is built once in the application's lifespan (:func:`api.app.create_app`) and
disposed at shutdown; every route reaches the database through :data:`EngineDep` or
:data:`ConnDep`, so that every statement runs under the statement timeout of the settings
and every database fault is answered by the one handler in :mod:`api.problems`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from layers.settings import Settings

__all__ = ["ConnDep", "EngineDep", "SettingsDep", "get_conn", "get_engine", "get_settings"]


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
