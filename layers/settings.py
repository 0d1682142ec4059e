"""Settings from ``LANDECO_*`` environment variables, built once and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    #: Host names the server answers to (the request's Host, port ignored; ``*`` for any): a
    #: request naming another host is refused, so that no link or redirect carries it.
    #: Comma-separated in LANDECO_ALLOWED_HOSTS.
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "::1"]
    #: The address people reach landeco at (e.g. ``https://landeco.example.gov.cn``); when set,
    #: every link and redirect is built from it rather than from the request.
    public_url: str | None = None

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        """``a,b,c`` from the environment as a list."""
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """An absolute http(s) URL, without a trailing slash."""
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or value[-3:] == "://":
            raise ValueError("public_url must be an absolute http:// or https:// URL")
        return value
