"""Settings from ``LANDECO_*`` environment variables, built once and passed in.

Nothing else in landeco reads the environment: the application, the command line and the
benchmarks take a :class:`Settings` and hand the values on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "default_home"]


def _checkout() -> Path | None:
    """The source checkout landeco runs from, if any (the packages' parent holds its pyproject)."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        if 'name = "landeco"' in pyproject.read_text(encoding="utf-8"):
            return root
    except OSError:
        pass
    return None


def default_home() -> Path:
    """Where the private cluster lives unless ``LANDECO_HOME`` says otherwise.

    Never the current folder, so that a command run elsewhere finds the same cluster instead
    of quietly creating an empty second one: ``<checkout>/.landeco`` when landeco runs from
    its source checkout (``make run``); otherwise ``/var/lib/landeco`` for root (the
    ``postgres`` user running the server must reach it, and root's home is closed) and
    ``$XDG_DATA_HOME/landeco`` (``~/.local/share/landeco``) for anyone else.
    """
    checkout = _checkout()
    if checkout is not None:
        return checkout / ".landeco"
    if os.geteuid() == 0:
        return Path("/var/lib/landeco")
    data = os.environ.get("XDG_DATA_HOME") or ""
    base = Path(data) if Path(data).is_absolute() else Path.home() / ".local" / "share"
    return base / "landeco"


class Settings(BaseSettings):
    """What an operator can set; everything has a working default."""

    model_config = SettingsConfigDict(env_prefix="LANDECO_", extra="ignore")

    #: A PostgreSQL + PostGIS server to use instead of the private local cluster.
    database_url: str | None = None
    #: Where the private cluster and its password live (kept 0700: readable by the service only).
    #: Default: ``<checkout>/.landeco`` in a source checkout, else a per-user data folder
    #: (see :func:`default_home`) - never the current folder.
    home: Path = Field(default_factory=default_home)
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
    #: Uploads of at least this many bytes are checked and committed by a job (202 and a
    #: progress bar) instead of inside the request.
    upload_job_bytes: int = 20 * 1024**2

    # -- jobs (procrastinate queue in PostgreSQL) ----------------------------------------------
    #: Run a job worker inside the web process too: ``landeco serve`` sets it (one command for
    #: one desk) unless ``--no-worker``, when ``landeco worker`` runs elsewhere.
    inprocess_worker: bool = False
    #: Jobs one worker runs at once.
    worker_concurrency: int = 2
    #: Seconds between a worker's heartbeats; a worker silent for ``job_stalled_after_s`` is
    #: taken for dead and its running jobs are retried (or failed after ``job_max_attempts``).
    job_heartbeat_s: float = 10.0
    job_stalled_after_s: float = 30.0
    job_max_attempts: int = 3
    #: Finished jobs and their files are removed after this many days.
    job_retention_days: int = 7

    @property
    def storage(self) -> Path:
        """The storage folder: ``storage_dir``, or ``<home>/storage``."""
        return self.storage_dir if self.storage_dir is not None else self.home / "storage"

    # -- rasters (layers/rasters.py) ---------------------------------------------------------
    #: Where rasters are stored as Cloud-Optimized GeoTIFFs: a folder path, or a URI GDAL
    #: writes and rasterio opens (``/vsis3/bucket/rasters``) so that workers on other machines
    #: read the same files. Default ``<storage>/rasters``.
    raster_storage: str | None = None
    #: Largest raster file one may add, in bytes.
    raster_max_bytes: int = 2 * 1024**3
    #: Largest raster by its header: width × height × bands × bytes per sample, checked before
    #: any pixel is read (a 10 000 × 10 000 float32 band is 400 MB).
    raster_max_pixel_bytes: int = 8 * 1024**3
    #: Most bands one raster may have.
    raster_max_bands: int = 16
    #: Rasters of at least this many bytes are checked and stored by a job (202 and a progress
    #: bar) instead of inside the request.
    raster_job_bytes: int = 20 * 1024**2

    @property
    def rasters_uri(self) -> str:
        """Where rasters are stored: ``raster_storage``, or ``<storage>/rasters``."""
        if self.raster_storage is not None and self.raster_storage.strip():
            return self.raster_storage.strip().rstrip("/")
        return str(self.storage / "rasters")

    # -- time limits -------------------------------------------------------------------------
    #: Longest one statement of a web request may run (ms): items, queries, maps, statistics,
    #: conflicts, exports. Past it the request answers 503 ``query_timeout``.
    query_timeout_ms: int = 30_000
    #: Longest one vector tile may take to build (ms).
    tile_timeout_ms: int = 20_000
    #: Longest one statement of an import's commit may run (ms); 0 is no limit.
    import_timeout_ms: int = 0
    #: Seconds a client is told to wait (``Retry-After``) when the database is away.
    retry_after_s: int = 5

    # -- request limits ----------------------------------------------------------------------
    #: Largest JSON or form body (bytes) of the routes that are not uploads (``POST /query`` …).
    body_max_bytes: int = 1024**2
    #: Most features one export (layer or query) writes.
    export_max_features: int = 2_000_000
    #: Requests a client may make per minute to expensive routes (queries, exports, uploads,
    #: tiles below zoom 10); 0 turns the limit off.
    rate_limit_per_minute: int = 120
    #: The same for vector tiles below zoom 10 (a map asks for a dozen at a time).
    tile_rate_limit_per_minute: int = 1200
    #: Where the rate-limit counters live (``memory://`` per process; ``redis://host`` or
    #: ``memcached://host`` shared by every process), as the ``limits`` library names them.
    rate_limit_storage: str = "memory://"

    # -- maps --------------------------------------------------------------------------------
    #: Tianditu (天地图) browser key: offers Tianditu vector and imagery basemaps.
    tianditu_key: str = ""
    #: Features per layer drawn inline on a map page; beyond, the layer comes as vector tiles.
    map_inline_limit: int = 2000
    #: The township's name on map titles and printed maps (Chinese, English).
    township: str = "鄂托克前旗某镇"
    township_en: str = "Township of Otog Front Banner"
    #: One JSON line per request on stderr (logger ``landeco.access``); set false to silence it.
    access_log: bool = True
    #: The township's time zone (IANA name): pages show times in it and read dates in it
    #: (the audit trail's date filters).
    timezone: str = "Asia/Shanghai"

    #: Host names the server answers to (the request's Host, port ignored; ``*`` for any): a
    #: request naming another host is refused, so that no link or redirect carries it.
    #: Comma-separated in LANDECO_ALLOWED_HOSTS.
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "::1"]
    #: The address people reach landeco at (e.g. ``https://landeco.example.gov.cn``); when set,
    #: every link and redirect is built from it rather than from the request.
    public_url: str | None = None

    # -- who may do what (layers/accounts.py, api/permissions.py) ----------------------------
    #: Reading the layers (home, collections, items, tiles, maps) needs no sign-in; false: any
    #: account (``viewer`` or more) must sign in first.
    public_read: bool = True
    #: Exports, statistics, conflicts and queries need the ``planner`` role; false: they are
    #: read like the layers (``public_read``).
    planner_only_exports: bool = False
    #: ``/metrics`` answers anyone (a scraper on a private network); false: ``admin`` only
    #: (a Prometheus scraper then sends an admin's bearer token).
    public_metrics: bool = False
    #: A signed-in page session ends after this many seconds without a request …
    session_idle_seconds: float = 4 * 3600
    #: … and this many seconds after sign-in, whatever happens.
    session_max_seconds: float = 12 * 3600
    #: Remember checked bearer tokens in each process (forgotten within milliseconds of any change
    #: through PostgreSQL LISTEN/NOTIFY); false: one query per request (e.g. behind a pooler in
    #: transaction mode, where LISTEN does not work).
    token_cache: bool = True
    #: Longest wait (seconds) imposed after repeated failed sign-ins of an account or an address.
    login_delay_cap_seconds: int = 900

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
