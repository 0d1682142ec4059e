"""Registered rasters as map overlays: PNG tiles, legends, and the overlays a map page offers.

The tiles themselves are drawn by :mod:`gis.raster_tiles` from the stored COG
(:attr:`layers.rasters.Raster.uri`); this module picks the ramp's range for kinds that
need it, names a tile's version (a stored raster never changes, so a tile's ETag is
known without drawing it) and groups the rasters of one kind into one overlay with a
date slider.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from gis.maps import RasterDate, RasterOverlay
from gis.raster_tiles import EMPTY_PNG, KINDS, legend, render_tile, value_range
from layers.errors import LandecoError, NotFoundError
from layers.rasters import KINDS as KIND_LABELS
from layers.rasters import Raster, list_rasters
from layers.tiles import TileAddress

__all__ = [
    "MAX_RASTER_ZOOM",
    "MIN_RASTER_ZOOM",
    "RAMP_VERSION",
    "RasterUnreadableError",
    "RasterZoomOutOfRangeError",
    "check_zoom",
    "raster_legend",
    "raster_overlays",
    "raster_tile",
    "tile_etag",
]

log = logging.getLogger(__name__)

#: Raster tiles are drawn from zoom 5 (a tile ~1 000 km wide, the township a few pixels)
#: to 22 (pixels far below any raster's; the map scales zoom-22 tiles beyond).
MIN_RASTER_ZOOM, MAX_RASTER_ZOOM = 5, 22
#: Changed whenever a ramp or the drawing changes, so that cached tiles are not reused.
RAMP_VERSION = "1"


class RasterZoomOutOfRangeError(NotFoundError):
    """Raster tiles exist from zoom 5 to 22 only."""

    code = "raster_zoom_out_of_range"
    title = "Raster zoom out of range"

    def __init__(self, z: int) -> None:
        super().__init__(f"raster tiles exist at zoom {MIN_RASTER_ZOOM} … {MAX_RASTER_ZOOM}, not {z}")
        self.z = z

    def extra(self) -> dict[str, object]:
        """The zoom asked for and the range served."""
        return {"z": self.z, "min_zoom": MIN_RASTER_ZOOM, "max_zoom": MAX_RASTER_ZOOM}


class RasterUnreadableError(LandecoError):
    """The stored raster cannot be read (storage unreachable, file gone): the server's fault."""

    code = "raster_unreadable"
    title = "Raster unreadable"
    status = 503

    def __init__(self, raster_id: int) -> None:
        super().__init__(f"raster {raster_id} cannot be read from its storage just now")
        self.raster_id = raster_id


def check_zoom(t: TileAddress) -> TileAddress:
    """``t`` when raster tiles are drawn at its zoom, else :class:`RasterZoomOutOfRangeError`."""
    if not MIN_RASTER_ZOOM <= t.z <= MAX_RASTER_ZOOM:
        raise RasterZoomOutOfRangeError(t.z)
    return t


def _stretch(raster: Raster) -> tuple[float, float] | None:
    """The value range a DEM's or other raster's ramp spans (its own, from its statistics)."""
    if raster.kind in ("ndvi", "fvc"):
        return None
    try:
        return value_range(raster.uri)
    except Exception as exc:  # rasterio's errors are many; the cause goes to the log
        log.warning("raster %s (%s) unreadable: %s", raster.id, raster.uri, exc)
        raise RasterUnreadableError(raster.id) from None


def _kind(raster: Raster) -> str:
    return raster.kind if raster.kind in KINDS else "other"


def raster_legend(raster: Raster, lang: str = "zh") -> dict[str, Any]:
    """The legend of ``raster`` (:func:`gis.raster_tiles.legend`) with its id and date."""
    body = legend(_kind(raster), lang, _stretch(raster))
    return {"raster": raster.id, "acquired": raster.acquired.isoformat(), **body}


def tile_etag(raster: Raster, t: TileAddress) -> str:
    """The tile's strong ETag, from what decides its bytes: the raster's content, the address, the ramp."""
    key = f"{raster.sha256 or raster.uri}|{raster.kind}|{t}|{RAMP_VERSION}"
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


def raster_tile(raster: Raster, t: TileAddress) -> bytes:
    """Tile ``t`` of ``raster`` as PNG bytes; the transparent tile where the raster is not."""
    stretch = _stretch(raster)
    try:
        png = render_tile(raster.uri, _kind(raster), t.z, t.x, t.y, stretch=stretch)
    except Exception as exc:
        log.warning("raster %s (%s) tile %s: %s", raster.id, raster.uri, t, exc)
        raise RasterUnreadableError(raster.id) from None
    return png if png is not None else EMPTY_PNG


def _version(raster: Raster) -> str:
    return (raster.sha256 or str(raster.id))[:12] + RAMP_VERSION


def _overlaps(raster: Raster, bounds: tuple[tuple[float, float], tuple[float, float]] | None) -> bool:
    if bounds is None:
        return True
    (s, w), (n, e) = bounds
    minx, miny, maxx, maxy = raster.bounds_4326
    return minx <= e and maxx >= w and miny <= n and maxy >= s


def raster_overlays(conn: sa.Connection, *, tiles_url: str, lang: str = "zh", on: date | None = None,
                    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
                    show: Sequence[int] = ()) -> list[RasterOverlay]:
    """One overlay per raster kind over ``bounds``, its rasters by date for the slider.

    Each overlay first shows the newest raster acquired on or before ``on`` (the map date;
    the oldest when all are later). Overlays are off unless one of their rasters is in
    ``show`` (then that one is shown first). ``tiles_url`` has ``{id}`` and the tile's
    ``{z}``/``{x}``/``{y}``. A DEM whose file cannot be read is left out, not the page.
    """
    by_kind: dict[str, list[Raster]] = {}
    for r in list_rasters(conn):
        if _overlaps(r, bounds) or r.id in show:
            by_kind.setdefault(_kind(r), []).append(r)
    overlays = []
    for kind in KINDS:
        rasters = sorted(by_kind.get(kind, []), key=lambda r: (r.acquired, r.id))
        dates = []
        for r in rasters:
            try:
                lg = raster_legend(r, lang)
            except RasterUnreadableError:
                continue
            minx, miny, maxx, maxy = r.bounds_4326
            url = tiles_url.replace("{id}", str(r.id)) + f"?v={_version(r)}"
            dates.append((r, RasterDate(id=r.id, acquired=r.acquired.isoformat(), tiles_url=url,
                                        bounds=((miny, minx), (maxy, maxx)), legend=lg,
                                        label=r.name or "")))
        if not dates:
            continue
        chosen = [i for i, (r, _) in enumerate(dates) if r.id in show]
        if chosen:
            current = chosen[-1]
        else:
            before = [i for i, (r, _) in enumerate(dates) if on is None or r.acquired <= on]
            current = before[-1] if before else 0
        title = KIND_LABELS[kind][1 if lang == "en" else 0]
        overlays.append(RasterOverlay(key=f"raster_{kind}", title=title, dates=tuple(d for _, d in dates),
                                      current=current, show=bool(chosen), min_zoom=MIN_RASTER_ZOOM,
                                      max_native_zoom=MAX_RASTER_ZOOM))
    return overlays
