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
    #: Where the private cluster and its password live (kept 0700: readable by the service only).
    home: Path = Path(".landeco")
    #: Where uploaded files are kept between check and commit (``<storage>/uploads/<id>/``);
    #: workers on several machines share uploads by sharing this folder and the database.
    #: Default ``<home>/storage``.
    storage_dir: Path | None = None
    #: Folder of PostgreSQL's initdb/pg_ctl; found automatically when unset.
    pg_bindir: Path | None = None
    #: Address and port ``landeco serve`` listens on.
    host: str = "127.0.0.1"
    port: int = 8000
    #: Largest file an upload may send, in bytes (zip bombs are checked apart, on unpacking).
    upload_max_bytes: int = 1024**3
    #: Uploads older than this many days are removed by ``landeco uploads prune`` (and when
    #: the quota is reached).
    upload_retention_days: int = 30
    #: Total bytes the stored uploads may take; a new upload beyond it is refused (507).
    upload_quota_bytes: int = 20 * 1024**3

    @property
    def storage(self) -> Path:
        """The storage folder: ``storage_dir``, or ``<home>/storage``."""
        return self.storage_dir if self.storage_dir is not None else self.home / "storage"
