"""Schema changes through Alembic migrations, run from code (no alembic.ini)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy.engine import URL

from layers.store.database import engine_for

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_object",
    "upgrade",
]

#: Tables that belong to PostGIS, not to landeco.
POSTGIS_TABLES = {"spatial_ref_sys"}


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Compare only landeco's objects, and spatial indexes the way GeoAlchemy2 makes them."""
    if type_ == "table" and name in POSTGIS_TABLES:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def alembic_config(url: URL | str) -> Config:
    """An Alembic configuration for the database at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", "layers.store:migrations")
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    cfg.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return cfg


def upgrade(url: URL | str, revision: str = "head") -> str | None:
    """Migrate up to ``revision``; idempotent. Returns the revision reached."""
    command.upgrade(alembic_config(url), revision)
    return current_revision(url)


def downgrade(url: URL | str, revision: str = "base") -> str | None:
    """Migrate down to ``revision`` (``base`` removes every layer table)."""
    command.downgrade(alembic_config(url), revision)
    return current_revision(url)


def current_revision(url: URL | str) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    with engine_for(text).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision in the code."""
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
