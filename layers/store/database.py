"""Which database landeco uses, and the engine to it.

``LANDECO_DATABASE_URL`` wins; without it landeco starts its private cluster (see
:mod:`layers.store.cluster`) and uses the ``landeco`` database there, with PostGIS enabled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from sqlalchemy.engine import URL, Engine, make_url

from layers.errors import DatabaseUnavailableError, QueryTimeoutError
from layers.settings import Settings
from layers.store.cluster import DATABASE, Cluster

__all__ = [
    "create_database",
    "database_url",
    "drop_database",
    "engine_for",
    "fetch_pipelined",
    "make_engine",
    "ping",
]


def _normalise(url: str | URL) -> URL:
    """Use the psycopg 3 driver whatever scheme the operator wrote."""
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def database_url(settings: Settings, *, start: bool = True) -> URL:
    """The URL of landeco's database: the configured one, or the private cluster's."""
    if settings.database_url:
        return _normalise(settings.database_url)
    cluster = Cluster(settings.home, settings.pg_bindir)
    info = cluster.start() if start else cluster.info
    url = _normalise(info.url(DATABASE))
    create_database(url, exists_ok=True)
    return url


@cache
def engine_for(url: str) -> Engine:
    """One pooled engine per URL for the whole process (the command line and tests)."""
    return sa.create_engine(url, pool_pre_ping=True)


def make_engine(url: str | URL, *, statement_timeout_ms: int, autocommit: bool = False) -> Engine:
    """A pooled engine whose every statement stops after ``statement_timeout_ms``.

    The server applies the limit (``-c statement_timeout``) to every session, so no route can
    forget it; the hot paths and the importer set their own with ``SET LOCAL``. Connections
    are checked before use, so that the pool recovers by itself when the database comes back.
    ``autocommit``: a small pool for one-statement look-ups on every request (who asks): no
    transaction and no ping around them; a connection found dead is dropped by the pool and
    the caller tries once more.
    """
    if autocommit:
        return sa.create_engine(_normalise(url), isolation_level="AUTOCOMMIT", pool_size=5, max_overflow=10,
                                pool_timeout=10,
                                connect_args={"options": f"-c statement_timeout={int(statement_timeout_ms)}",
                                              "connect_timeout": 5})
    return sa.create_engine(_normalise(url), pool_pre_ping=True, pool_size=10, max_overflow=20,
                            pool_timeout=10,
                            connect_args={"options": f"-c statement_timeout={int(statement_timeout_ms)}",
                                          "connect_timeout": 5})


def _admin_engine(url: URL) -> Engine:
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                            poolclass=sa.pool.NullPool)


def create_database(url: str | URL, *, exists_ok: bool = False) -> None:
    """Create the database of ``url`` (on its server) and enable PostGIS in it."""
    url = _normalise(url)
    admin = _admin_engine(url)
    with admin.connect() as conn:
        found = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                            {"d": url.database})
        if found and not exists_ok:
            raise ValueError(f"database {url.database} exists")
        if not found:
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}" ENCODING \'UTF8\' '
                                 "TEMPLATE template0"))
    admin.dispose()
    db = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with db.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    db.dispose()


def drop_database(url: str | URL) -> None:
    """Drop the database of ``url``, closing other sessions to it first."""
    url = _normalise(url)
    admin = _admin_engine(url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def ping(url: str | URL) -> dict[str, str]:
    """Versions of PostgreSQL and PostGIS and the database name, or an error if unreachable."""
    engine = engine_for(_normalise(url).render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            pg = conn.scalar(sa.text("SHOW server_version"))
            postgis = conn.scalar(sa.text("SELECT extversion FROM pg_extension "
                                          "WHERE extname = 'postgis'"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailableError("the database cannot be reached") from exc
    return {"postgresql": str(pg), "postgis": str(postgis), "name": str(_normalise(url).database)}


class _TextAsBytes(Loader):
    """Text columns as the bytes PostgreSQL sent: GeoJSON goes out without decoding."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def fetch_pipelined(engine: Engine, settings: Sequence[str], sql: str,
                    params: Mapping[str, Any] | None = None, *, timeout_message: str,
                    text_as_bytes: bool = False) -> list[tuple]:
    """The rows of ``sql`` run after ``settings`` (``SET LOCAL …``) in one round trip.

    The hot paths of serving (items, tiles) use this: no ORM, one pooled connection, rows as
    psycopg returns them (text as bytes on request). A statement past its timeout is
    :class:`QueryTimeoutError` with ``timeout_message``; a dead server is
    :class:`DatabaseUnavailableError`. The connection goes back rolled back, so the
    settings end with it.
    """
    try:
        raw = engine.raw_connection()
    except (sa.exc.OperationalError, psycopg.OperationalError):
        raise DatabaseUnavailableError("the database does not answer") from None
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            if text_as_bytes:
                cur.adapters.register_loader("text", _TextAsBytes)
            with conn.pipeline():
                for setting in settings:
                    cur.execute(setting)
                cur.execute(sql, params)
            return cur.fetchall()
    except psycopg.errors.QueryCanceled:
        raise QueryTimeoutError(timeout_message) from None
    except psycopg.OperationalError:
        raise DatabaseUnavailableError("the database connection failed") from None
    finally:
        raw.close()
