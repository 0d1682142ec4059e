"""Web Mercator PNG tiles of a raster, coloured by a ramp per kind, and their legends.

A raster of any CRS is read through rio-tiler (:class:`rio_tiler.io.Reader`), which
reprojects the window of one WebMercatorQuad tile on the fly (reading a COG's overviews
when zoomed out). Band 1 is coloured by the ramp of the raster's kind — NDVI brown to
green over −0.2 … 0.9, vegetation cover yellow to green over 0 … 1, elevation a terrain
ramp over the raster's own range — and nodata, NaN and everything outside the raster
are transparent. A tile that does not touch the raster is not read at all: the caller
sends :data:`EMPTY_PNG`.

No database, no web: the caller gives the raster's path or URI and its kind.

Examples
--------
>>> ramp = ramp_for("ndvi")
>>> ramp.stops[0], ramp.stops[-1]
((-0.2, '#8c510a'), (0.9, '#00441b'))
>>> ramp.colour(0.9)
(0, 68, 27)
>>> legend("fvc", "en")["labels"][-1]
{'value': 1.0, 'tick': '100%', 'text': '100%'}
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EMPTY_PNG",
    "KINDS",
    "TILE_SIZE",
    "Ramp",
    "legend",
    "ramp_for",
    "render_tile",
    "tile_touches",
    "value_range",
]

#: Pixels a side of a tile (Leaflet's default).
TILE_SIZE = 256
#: The kinds a raster may be (the registry's check constraint).
KINDS = ("ndvi", "fvc", "dem", "other")


def _empty_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (TILE_SIZE, TILE_SIZE), (0, 0, 0, 0)).save(out, format="PNG", optimize=True)
    return out.getvalue()


#: A fully transparent 256 × 256 PNG: the answer for a tile that does not touch the raster.
EMPTY_PNG = _empty_png()


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@dataclass(frozen=True)
class Ramp:
    """A continuous colour ramp: (value, ``#rrggbb``) stops, ascending; clamped at both ends."""

    stops: tuple[tuple[float, str], ...]

    def colour(self, value: float) -> tuple[int, int, int]:
        """The RGB colour of one value."""
        rgb = self.colours(np.array([value], dtype="float64"))
        return int(rgb[0, 0]), int(rgb[1, 0]), int(rgb[2, 0])

    def colours(self, values: np.ndarray) -> np.ndarray:
        """RGB (3, …) uint8 of ``values``, linear between stops, clamped outside them."""
        xs = np.array([v for v, _ in self.stops], dtype="float64")
        rgb = np.array([_rgb(c) for _, c in self.stops], dtype="float64")
        flat = values.astype("float64", copy=False)
        out = np.stack([np.interp(flat, xs, rgb[:, i]) for i in range(3)])
        return np.rint(out).astype("uint8")

    @property
    def low(self) -> float:
        """The value of the first stop."""
        return self.stops[0][0]

    @property
    def high(self) -> float:
        """The value of the last stop."""
        return self.stops[-1][0]


# Brown (bare soil, water below 0) through pale to dark green (dense vegetation): ColorBrewer BrBG-like.
_NDVI = ((-0.2, "#8c510a"), (0.0, "#bf812d"), (0.15, "#dfc27d"), (0.3, "#f6e8c3"),
         (0.45, "#c7e9c0"), (0.6, "#74c476"), (0.75, "#238b45"), (0.9, "#00441b"))
# Yellow (no cover) to green (full cover): ColorBrewer YlGn.
_FVC = ((0.0, "#ffffcc"), (0.25, "#d9f0a3"), (0.5, "#addd8e"), (0.75, "#41ab5d"), (1.0, "#006837"))
# Terrain: low green, yellow, brown, high grey-white; as fractions of the raster's own range.
_TERRAIN = ((0.0, "#1a9641"), (0.25, "#a6d96a"), (0.5, "#ffffbf"), (0.75, "#a6611a"), (1.0, "#f0f0f0"))
_GREY = ((0.0, "#000000"), (1.0, "#ffffff"))

_TITLES = {"ndvi": ("归一化植被指数 (NDVI)", "Vegetation index (NDVI)"),
           "fvc": ("植被覆盖度", "Fractional vegetation cover"),
           "dem": ("数字高程模型", "Elevation (DEM)"),
           "other": ("其他", "Other")}
_UNITS = {"ndvi": ("", ""), "fvc": ("%", "%"), "dem": ("米", "m"), "other": ("", "")}


def _stretched(fractions: Sequence[tuple[float, str]], low: float,
               high: float) -> tuple[tuple[float, str], ...]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        # a flat raster (or no valid pixel): one colour, a ramp of nominal width
        low, high = (low if math.isfinite(low) else 0.0), (low if math.isfinite(low) else 0.0) + 1.0
    return tuple((low + f * (high - low), c) for f, c in fractions)


def ramp_for(kind: str, low: float | None = None, high: float | None = None) -> Ramp:
    """The colour ramp of ``kind``; DEM and other rasters need their value range (``low``, ``high``).

    >>> ramp_for("dem", 1000, 1400).stops[2]
    (1200.0, '#ffffbf')
    """
    if kind == "ndvi":
        return Ramp(_NDVI)
    if kind == "fvc":
        return Ramp(_FVC)
    if kind not in KINDS:
        raise ValueError(f"unknown raster kind {kind!r}: one of {', '.join(KINDS)}")
    if low is None or high is None:
        raise ValueError(f"a {kind} ramp needs the raster's value range")
    return Ramp(_stretched(_TERRAIN if kind == "dem" else _GREY, float(low), float(high)))


@functools.lru_cache(maxsize=256)
def value_range(uri: str) -> tuple[float, float]:
    """Minimum and maximum of band 1 (valid pixels), from a decimated read (≤ 1024 px a side).

    Kept per ``uri`` for the life of the process: a stored raster never changes.
    ``(nan, nan)`` when no pixel is valid.
    """
    from rio_tiler.io import Reader

    with Reader(uri) as src:
        stats = src.statistics(indexes=1, max_size=1024)
    band = next(iter(stats.values()))
    low, high = float(band.min), float(band.max)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else (math.nan, math.nan)


def tile_touches(uri: str, z: int, x: int, y: int) -> bool:
    """Whether tile z/x/y overlaps the raster's bounds (no pixel is read)."""
    from rio_tiler.io import Reader

    with Reader(uri) as src:
        return bool(src.tile_exists(x, y, z))


def render_tile(uri: str, kind: str, z: int, x: int, y: int, *,
                stretch: tuple[float, float] | None = None) -> bytes | None:
    """Tile z/x/y of band 1 of the raster at ``uri``, coloured for ``kind``, as RGBA PNG bytes.

    ``None`` when the tile does not touch the raster or holds no valid pixel (send
    :data:`EMPTY_PNG`). ``stretch`` (low, high) spreads the DEM and other ramps (default: the
    raster's own, :func:`value_range`). Pixels are picked by nearest neighbour, so that
    each keeps its colour.
    """
    from rio_tiler.io import Reader
    from rio_tiler.utils import render

    with Reader(uri) as src:
        if not src.tile_exists(x, y, z):
            return None
        img = src.tile(x, y, z, tilesize=TILE_SIZE, indexes=1)
    band = img.array[0]
    values = np.ma.getdata(band).astype("float64")
    valid = ~np.ma.getmaskarray(band) & np.isfinite(values)
    if not valid.any():
        return None
    if kind in ("ndvi", "fvc"):
        ramp = ramp_for(kind)
    else:
        low, high = stretch if stretch is not None else value_range(uri)
        ramp = ramp_for(kind, low, high)
    rgb = ramp.colours(np.where(valid, values, ramp.low))
    alpha = np.where(valid, 255, 0).astype("uint8")
    return render(rgb, mask=alpha, img_format="PNG")


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}".replace("-", "−")


def legend(kind: str, lang: str = "zh", stretch: tuple[float, float] | None = None) -> dict[str, Any]:
    """What a map's legend shows for a raster of ``kind``: title, unit, colour stops, labels.

    ``stops`` are the ramp's (value, colour) pairs, ``gradient`` the same as a CSS
    ``linear-gradient`` (left = low), ``labels`` a few values with their ``text`` in ``lang``
    and a short ``tick`` (the number alone) to write under the bar.
    DEM and other kinds need the raster's value range ``stretch`` (:func:`value_range`).

    >>> legend("ndvi", "zh")["labels"][0]["text"]
    '−0.2 裸地、水体'
    >>> legend("dem", "en", (1050.0, 1350.0))["labels"][-1]["text"]
    '1,350 m'
    """
    en = lang == "en"
    low, high = stretch if stretch is not None else (None, None)
    ramp = ramp_for(kind, low, high) if kind not in ("ndvi", "fvc") else ramp_for(kind)
    if kind == "ndvi":
        words = (("裸地、水体", "bare soil, water"), ("稀疏植被", "sparse vegetation"),
                 ("茂密植被", "dense vegetation"))
        labels = [(v, _fmt(v, 1), f"{_fmt(v, 1)} {w[1] if en else w[0]}")
                  for v, w in zip((-0.2, 0.3, 0.9), words, strict=True)]
    elif kind == "fvc":
        labels = [(v, f"{v * 100:.0f}%", f"{v * 100:.0f}%") for v in (0.0, 0.5, 1.0)]
    else:
        lo, hi = ramp.low, ramp.high
        unit = (" m" if en else " 米") if kind == "dem" else ""
        digits = 0 if hi - lo >= 20 else 2
        labels = [(v, _fmt(v, digits), f"{_fmt(v, digits)}{unit}") for v in (lo, (lo + hi) / 2, hi)]
    span = ramp.high - ramp.low
    gradient = ", ".join(f"{c} {100 * (v - ramp.low) / span:.1f}%" for v, c in ramp.stops)
    return {
        "kind": kind,
        "title": _TITLES[kind][1 if en else 0],
        "unit": _UNITS[kind][1 if en else 0],
        "min": ramp.low, "max": ramp.high,
        "stops": [{"value": v, "color": c} for v, c in ramp.stops],
        "gradient": f"linear-gradient(to right, {gradient})",
        "labels": [{"value": float(v), "tick": tick, "text": t} for v, tick, t in labels],
        "transparent": "no data or outside the raster: transparent" if en else "无数据或影像范围外：透明",
    }
