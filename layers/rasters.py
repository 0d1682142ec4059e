"""Rasters as data: GeoTIFFs checked, stored as Cloud-Optimized GeoTIFFs, registered in PostGIS.

A raster is a row of ``rasters`` (what it measures, when, where its COG is, its grid and its
footprint in lon/lat) and one COG file under ``settings.rasters_uri``. :func:`add_raster`
refuses a hostile file before anything is stored (see :mod:`gis.raster`), writes the COG under
a temporary name, inserts the row and renames the file in one go: a failure at any step leaves
neither a row nor a file. ``Raster.uri`` is what ``rasterio.open`` (and rio-tiler) take.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPolygon

from gis import raster as graster
from gis.errors import InputError
from layers import audit
from layers.audit import Who
from layers.errors import BadRequestError, LandecoError, NotFoundError
from layers.importer import BANNER_BOX, MARGIN_DEG
from layers.settings import Settings
from layers.store.schema import RASTER_KINDS
from layers.values import check_text, iso_date

__all__ = [
    "KINDS",
    "RASTER_ERRORS",
    "Raster",
    "RasterNotFoundError",
    "RasterParameterError",
    "RasterRefusedError",
    "add_raster",
    "add_received",
    "check_incoming",
    "check_kind",
    "check_options",
    "delete_raster",
    "display_name",
    "get_raster",
    "incoming_path",
    "list_rasters",
    "precheck",
    "raster_error",
    "receive_raster",
    "township_box",
]

#: Kinds of raster and their labels (zh, en).
KINDS: dict[str, tuple[str, str]] = {
    "ndvi": ("归一化植被指数 (NDVI)", "Vegetation index (NDVI)"),
    "fvc": ("植被覆盖度", "Fractional vegetation cover"),
    "dem": ("数字高程模型", "Digital elevation model"),
    "other": ("其他", "Other"),
}
assert tuple(KINDS) == RASTER_KINDS
#: Longest free text kept in ``source``, ``band_meaning`` and ``name``.
MAX_TEXT = 500
_CHUNK = 1 << 20
_COLUMNS = ("id, kind, acquired, source, band_meaning, name, uri, crs, width, height, band_count, dtype, "
            "nodata, res_x, res_y, ST_AsBinary(footprint) AS footprint, bytes, sha256, created_at, "
            "created_by")


# -- errors -----------------------------------------------------------------------------------


class RasterNotFoundError(NotFoundError):
    """No raster of that id is registered."""

    code = "raster_not_found"
    title = "Raster not found"


class RasterParameterError(BadRequestError):
    """A raster's kind, date or text is wrong."""

    code = "invalid_raster_parameter"
    title = "Invalid raster parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter

    def extra(self) -> dict[str, object]:
        """Which parameter."""
        return {"parameter": self.parameter}


class RasterRefusedError(LandecoError):
    """A raster file landeco will not store; each subclass is one reason."""

    code = "raster_refused"
    status = 422
    title = "Raster refused"

    def __init__(self, detail: str, *, hint: str | None = None, **members: object) -> None:
        super().__init__(detail)
        self.hint = hint
        self.members = members

    def extra(self) -> dict[str, object]:
        """The hint and the numbers behind the refusal."""
        return {**({"hint": self.hint} if self.hint else {}), **self.members}


class RasterNotTiffError(RasterRefusedError):
    """The file is not a TIFF."""

    code, status, title = "raster_not_tiff", 415, "Not a GeoTIFF"


class RasterCorruptError(RasterRefusedError):
    """GDAL cannot read the file's header or pixels (truncated, damaged)."""

    code, title = "raster_corrupt", "Raster damaged or truncated"


class RasterTooLargeError(RasterRefusedError):
    """The file has more bytes than ``raster_max_bytes``."""

    code, status, title = "raster_too_large", 413, "Raster file too large"


class RasterDimensionsError(RasterRefusedError):
    """The header claims more pixel bytes than ``raster_max_pixel_bytes``."""

    code, status, title = "raster_dimensions_too_large", 413, "Raster has too many pixels"


class RasterBandsError(RasterRefusedError):
    """More bands than ``raster_max_bands``."""

    code, title = "raster_too_many_bands", "Raster has too many bands"


class RasterDtypeError(RasterRefusedError):
    """Complex or bit samples."""

    code, title = "raster_dtype_unsupported", "Raster sample type not accepted"


class RasterNoCrsError(RasterRefusedError):
    """No (usable) coordinate system."""

    code, title = "raster_no_crs", "Raster has no coordinate system"


class RasterNotGeoreferencedError(RasterRefusedError):
    """No geotransform."""

    code, title = "raster_not_georeferenced", "Raster not georeferenced"


class RasterRotatedError(RasterRefusedError):
    """A rotated or sheared grid."""

    code, title = "raster_rotated", "Raster grid rotated"


class RasterOutsideTownshipError(RasterRefusedError):
    """The footprint misses the township and its margin."""

    code, title = "raster_outside_township", "Raster far from the township"


class RasterStorageError(LandecoError):
    """The COG could not be written to the raster storage (the server's fault, not the file's)."""

    code, status, title = "raster_storage_failed", 507, "Raster storage failed"


#: The error class of each refusal code of :mod:`gis.raster`.
RASTER_ERRORS: dict[str, type[RasterRefusedError]] = {
    cls.code: cls for cls in (RasterNotTiffError, RasterCorruptError, RasterTooLargeError,
                              RasterDimensionsError, RasterBandsError, RasterDtypeError, RasterNoCrsError,
                              RasterNotGeoreferencedError, RasterRotatedError, RasterOutsideTownshipError)
}


def raster_error(err: InputError) -> RasterRefusedError:
    """The landeco error of a reading problem of :mod:`gis.raster`."""
    cls = RASTER_ERRORS.get(err.code, RasterCorruptError)
    return cls(err.detail, hint=err.hint, **err.extra)


# -- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Raster:
    """One registered raster; ``uri`` is what ``rasterio.open`` takes."""

    id: int
    kind: str
    acquired: date
    source: str | None
    band_meaning: str | None
    name: str | None
    uri: str
    crs: str
    width: int
    height: int
    band_count: int
    dtype: str
    nodata: float | None
    res_x: float
    res_y: float
    footprint: MultiPolygon
    bytes: int | None
    sha256: str | None
    created_at: datetime | None
    created_by: str | None

    @property
    def bounds_4326(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the footprint in lon/lat."""
        return tuple(float(v) for v in self.footprint.bounds)  # type: ignore[return-value]

    def label(self, lang: str = "zh") -> str:
        """The kind's label in ``lang``."""
        zh, en = KINDS[self.kind]
        return en if lang == "en" else zh

    def as_json(self) -> dict[str, Any]:
        """Metadata as JSON (the footprint as a GeoJSON geometry, dates as ISO text); no uri."""
        return {
            "id": self.id, "kind": self.kind, "acquired": self.acquired.isoformat(), "source": self.source,
            "band_meaning": self.band_meaning, "name": self.name, "crs": self.crs, "width": self.width,
            "height": self.height, "band_count": self.band_count, "dtype": self.dtype,
            "nodata": self.nodata if self.nodata is None or math.isfinite(self.nodata) else str(self.nodata),
            "res_x": self.res_x, "res_y": self.res_y, "bounds_4326": list(self.bounds_4326),
            "footprint": shapely.geometry.mapping(self.footprint), "bytes": self.bytes, "sha256": self.sha256,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


def _raster(row: sa.Row) -> Raster:
    values = dict(row._mapping)
    values["footprint"] = shapely.from_wkb(bytes(values["footprint"]))
    return Raster(**values)


def _raster_id(raster_id: object) -> int:
    try:
        if isinstance(raster_id, (bool, float)):
            raise ValueError
        number = int(str(raster_id).strip(), 10) if isinstance(raster_id, str) else int(raster_id)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise RasterNotFoundError(f"no raster {str(raster_id)[:40]!r}") from None
    if not 0 < number < 2**63:
        raise RasterNotFoundError(f"no raster {number}")
    return number


def get_raster(conn: sa.Connection, raster_id: object) -> Raster:
    """The raster of that id; :class:`RasterNotFoundError` for an unknown or non-integer id."""
    number = _raster_id(raster_id)
    row = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM rasters WHERE id = :id"), {"id": number}).first()
    if row is None:
        raise RasterNotFoundError(f"no raster {number}")
    return _raster(row)


def list_rasters(conn: sa.Connection, *, kind: str | None = None) -> list[Raster]:
    """Every raster (of ``kind``), ordered by kind, acquisition date and id."""
    if kind is not None:
        check_kind(kind)
    rows = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM rasters "
                                "WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) "
                                "ORDER BY kind, acquired, id"), {"kind": kind}).all()
    return [_raster(r) for r in rows]


def check_kind(kind: object) -> str:
    """``kind`` if it is one of :data:`KINDS`."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise RasterParameterError("kind", f"{str(kind)[:40]!r} is not one of {', '.join(KINDS)}")
    return kind


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RasterParameterError(name, "must be text")
    try:
        value = check_text(value, name).strip()
    except LandecoError as err:
        raise RasterParameterError(name, str(err)) from None
    if any(ord(c) < 32 for c in value):
        raise RasterParameterError(name, "control characters are not accepted")
    if len(value) > MAX_TEXT:
        raise RasterParameterError(name, f"at most {MAX_TEXT} characters")
    return value or None


def display_name(name: str | None) -> str | None:
    """A client's file name fit to show again (folders, control characters and excess dropped)."""
    if not name:
        return None
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if ord(c) >= 32)[:MAX_TEXT] or None


def check_options(*, kind: object, acquired: object, source: str | None = None,
                  band_meaning: str | None = None, name: str | None = None) -> dict[str, Any]:
    """What a raster is, checked before its file is read: kind, acquisition date, texts."""
    kind = check_kind(kind)
    if not isinstance(acquired, date | str):
        raise RasterParameterError("acquired", "a date (YYYY-MM-DD)")
    try:
        day = iso_date(acquired, "acquired")
    except LandecoError as err:
        raise RasterParameterError("acquired", str(err)) from None
    if not 1900 <= day.year <= 2100:
        raise RasterParameterError("acquired", f"{day.isoformat()} is not a plausible acquisition date")
    return {"kind": kind, "acquired": day, "source": _text(source, "source"),
            "band_meaning": _text(band_meaning, "band_meaning"), "name": display_name(name)}


def township_box(conn: sa.Connection) -> tuple[float, float, float, float]:
    """Where rasters must lie (lon/lat): the villages' extent, else the banner (as for uploads)."""
    box = conn.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                               "FROM (SELECT ST_Extent(geom) AS e FROM villages) s")).one()
    if box[0] is not None:
        return tuple(float(v) for v in box)  # type: ignore[return-value]
    return BANNER_BOX


def _check_place(info: graster.RasterInfo, box: tuple[float, float, float, float]) -> None:
    west, south, east, north = box
    region = shapely.box(west - MARGIN_DEG, south - MARGIN_DEG, east + MARGIN_DEG, north + MARGIN_DEG)
    if not info.footprint.intersects(region):
        fb = ", ".join(f"{v:.3f}" for v in info.footprint.bounds)
        raise RasterOutsideTownshipError(
            f"the raster lies far from the township (lon/lat {fb})",
            hint="check the raster's coordinate system and that it covers the township",
            bounds_4326=[round(v, 6) for v in info.footprint.bounds])


def _is_local(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("/vsi")


def _join(base: str, name: str) -> str:
    return str(Path(base) / name) if _is_local(base) else f"{base}/{name}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _resampling(kind: str) -> str:
    return "nearest" if kind == "other" else "average"


def precheck(engine: sa.Engine, settings: Settings, path: Path) -> graster.RasterInfo:
    """The checks of a file's size and headers and of its place (fast: no pixel is read)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise RasterCorruptError(f"the file cannot be read: {err.strerror}") from None
    if size > settings.raster_max_bytes:
        raise RasterTooLargeError(f"the file has {size:,} bytes; at most {settings.raster_max_bytes:,} "
                                  "are accepted", size_bytes=size, max_bytes=settings.raster_max_bytes)
    limits = graster.RasterLimits(max_pixel_bytes=settings.raster_max_pixel_bytes,
                                  max_bands=settings.raster_max_bands)
    try:
        info = graster.inspect(path, limits)
    except InputError as err:
        raise raster_error(err) from None
    with engine.connect() as conn:
        _check_place(info, township_box(conn))
    return info


def add_raster(engine: sa.Engine, settings: Settings, path: Path | str, *, kind: str, acquired: date | str,
               source: str | None = None, band_meaning: str | None = None, name: str | None = None,
               who: Who | str | None = None,
               on_progress: Callable[[float, str], None] | None = None) -> Raster:
    """Check the GeoTIFF at ``path``, store it as a COG and register it; nothing is kept on a refusal.

    ``on_progress(fraction, stage)`` hears ``checking``, ``converting`` (the pixels read, to 50 %),
    ``overviews`` (overviews and the COG's layout written), ``storing`` and ``stored``. Raises a
    :class:`RasterRefusedError` subclass (4xx) for a file landeco will not
    store and :class:`RasterParameterError` for a wrong kind, date or text.
    """
    path = Path(path)
    options = check_options(kind=kind, acquired=acquired, source=source, band_meaning=band_meaning,
                            name=name if name is not None else path.name)
    kind, acquired, source, band_meaning, name = (options[k] for k in (
        "kind", "acquired", "source", "band_meaning", "name"))
    if isinstance(who, str):
        who = Who(actor=who)

    def progress(fraction: float, stage: str) -> None:
        if on_progress is not None:
            on_progress(max(0.0, min(1.0, fraction)), stage)

    progress(0.0, "checking")
    info = precheck(engine, settings, path)

    base = settings.rasters_uri
    if _is_local(base):
        folder = Path(base)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = folder
    else:
        work = settings.storage / "rasters-work"
        work.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = uuid.uuid4().hex
    tmp = work / f".{stem}.part.tif"
    final = _join(base, f"{stem}.tif")
    placed = False
    try:
        progress(0.05, "converting")
        try:
            graster.to_cog(path, tmp, resampling=_resampling(kind),
                           on_progress=lambda f: progress(0.05 + 0.45 * f,
                                                          "converting" if f < 1 else "overviews"))
        except InputError as err:
            raise raster_error(err) from None
        progress(0.9, "storing")  # the pixels are read (to 50 %); overviews and layout were written since
        stored_bytes, digest = tmp.stat().st_size, _sha256(tmp)
        with engine.begin() as conn:
            row = conn.execute(sa.text(
                "INSERT INTO rasters (kind, acquired, source, band_meaning, name, uri, crs, width, height, "
                "band_count, dtype, nodata, res_x, res_y, footprint, bytes, sha256, created_by) VALUES "
                "(:kind, :acquired, :source, :band_meaning, :name, :uri, :crs, :width, :height, :band_count, "
                ":dtype, :nodata, :res_x, :res_y, ST_GeomFromWKB(:footprint, 4326), :bytes, :sha256, :who) "
                f"RETURNING {_COLUMNS}"),
                {"kind": kind, "acquired": acquired, "source": source, "band_meaning": band_meaning,
                 "name": name, "uri": final, "crs": info.crs, "width": info.width, "height": info.height,
                 "band_count": info.band_count, "dtype": info.dtype, "nodata": info.nodata,
                 "res_x": info.res_x, "res_y": info.res_y, "footprint": shapely.to_wkb(info.footprint),
                 "bytes": stored_bytes, "sha256": digest, "who": who.actor if who else None}).one()
            raster = _raster(row)
            audit.record_as(conn, who, "raster.add",
                            detail={"raster_id": raster.id, "kind": kind, "acquired": acquired.isoformat(),
                                    "name": name, "bytes": stored_bytes})
            _place(tmp, final)
            placed = True
        progress(1.0, "stored")
        return raster
    except BaseException:
        if placed:
            _remove(final)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _place(tmp: Path, final: str) -> None:
    """Move the finished COG to its name: a rename on a local folder, a copy to a URI."""
    try:
        if _is_local(final):
            os.replace(tmp, final)
            os.chmod(final, 0o600)
        else:  # pragma: no cover - needs an object store
            import rasterio.shutil

            rasterio.shutil.copyfiles(str(tmp), final)
    except Exception as err:
        raise RasterStorageError(f"the raster could not be stored at {final}: {err}") from None


def _remove(uri: str) -> None:
    try:
        if _is_local(uri):
            Path(uri).unlink(missing_ok=True)
        else:  # pragma: no cover - needs an object store
            import rasterio.shutil

            rasterio.shutil.delete(uri)
    except Exception:  # nothing more to do: the row is gone
        pass


def delete_raster(engine: sa.Engine, raster_id: object, *, who: Who | str | None = None) -> Raster:
    """Remove a raster's row and its file (rows of other tables that refer to it decide by their keys)."""
    if isinstance(who, str):
        who = Who(actor=who)
    with engine.begin() as conn:
        raster = get_raster(conn, raster_id)
        conn.execute(sa.text("DELETE FROM rasters WHERE id = :id"), {"id": raster.id})
        audit.record_as(conn, who, "raster.delete", detail={"raster_id": raster.id, "kind": raster.kind,
                                                            "acquired": raster.acquired.isoformat()})
    _remove(raster.uri)
    return raster


# -- files received over HTTP, before they are checked (here or by a job) -----------------------

_INCOMING_ID = re.compile(r"^[0-9a-f]{32}$")


def check_incoming(incoming: object) -> str:
    """A received file's id: 32 hex digits, nothing that could name another path."""
    if not isinstance(incoming, str) or not _INCOMING_ID.match(incoming):
        raise RasterParameterError("incoming", "not a received file's id")
    return incoming


def incoming_path(settings: Settings, incoming: str) -> Path:
    """Where a received file waits: ``<storage>/rasters-incoming/<32 hex>.tif``."""
    return settings.storage / "rasters-incoming" / f"{check_incoming(incoming)}.tif"


def _sweep_incoming(settings: Settings, folder: Path) -> None:
    """Remove received files older than ``job_retention_days`` (their job was cancelled or lost)."""
    cutoff = time.time() - settings.job_retention_days * 86400
    for old in folder.glob("*.tif"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        except OSError:
            pass


def receive_raster(settings: Settings, file: BinaryIO, declared_size: int | None = None) -> str:
    """Copy an uploaded file to the shared storage (so that a worker anywhere reads it); its id.

    At most ``raster_max_bytes`` are copied: a larger file (declared or not) is refused
    (``raster_too_large``) and nothing is left behind.
    """
    limit = settings.raster_max_bytes
    if declared_size is not None and declared_size > limit:
        raise RasterTooLargeError(f"the file has {declared_size:,} bytes; at most {limit:,} are accepted",
                                  size_bytes=declared_size, max_bytes=limit)
    folder = settings.storage / "rasters-incoming"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _sweep_incoming(settings, folder)
    incoming = uuid.uuid4().hex
    target = incoming_path(settings, incoming)
    size = 0
    try:
        with open(target, "xb") as out:
            os.chmod(target, 0o600)
            while chunk := file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise RasterTooLargeError(f"the file has more than {limit:,} bytes", size_bytes=size,
                                              max_bytes=limit)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return incoming


def add_received(engine: sa.Engine, settings: Settings, incoming: str, **options: Any) -> Raster:
    """:func:`add_raster` of a received file, which is removed afterwards whatever happens."""
    path = incoming_path(settings, incoming)
    try:
        if not path.exists():
            raise RasterCorruptError("the received file is gone (the job ran twice, or storage was cleaned)")
        return add_raster(engine, settings, path, **options)
    finally:
        path.unlink(missing_ok=True)
