"""What every command shares: the configured database's engine, and a domain error as an exit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from layers.errors import LandecoError

__all__ = ["db_engine", "fail"]


def db_engine() -> Engine:
    """The engine of the database the settings name (the local cluster, started if need be)."""
    from layers.settings import Settings
    from layers.store.database import database_url, engine_for

    return engine_for(database_url(Settings()).render_as_string(hide_password=False))


def fail(exc: LandecoError) -> typer.Exit:
    """Say ``error [code]: message`` on stderr; the exit (status 1) to raise."""
    typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
    return typer.Exit(1)
