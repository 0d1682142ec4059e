"""Settings from ``LANDECO_*`` environment variables, built once and passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """What an operator can set; everything has a working default."""

    model_config = SettingsConfigDict(env_prefix="LANDECO_", extra="ignore")

    #: A PostgreSQL + PostGIS server to use instead of the private local cluster.
    database_url: str | None = None
    #: Where the private cluster, its password and uploads live.
    home: Path = Path(".landeco")
    #: Folder of PostgreSQL's initdb/pg_ctl; found automatically when unset.
    pg_bindir: Path | None = None
    #: Address and port ``landeco serve`` listens on.
    host: str = "127.0.0.1"
    port: int = 8000
    #: Largest file an upload may send, in bytes (zip bombs are checked apart, on unpacking).
    upload_max_bytes: int = 1024**3
    #: One JSON line per request on stderr (logger ``landeco.access``); set false to silence it.
    access_log: bool = True
