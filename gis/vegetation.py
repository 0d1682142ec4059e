"""Synthetic vegetation rasters of a township: NDVI and fractional vegetation cover, by date.

Pure (no database): it takes the township's outline, its caragana plots (planting year,
survival) and its grazing bans (years in force) in lon/lat and draws, on a 30 m grid in UTM
zone 48N (EPSG:32648, the zone Landsat and Sentinel-2 deliver this area in, so the demo looks
like what staff will load; the plots stay in lon/lat and the surveyors' files in EPSG:4545),
a deterministic NDVI per date:

- a desert-steppe background (0.10–0.25), smooth in space, with the year's weather (2021 dry);
- caragana plots greener the older they are (0.04 in the planting year, +0.025 a year, up to
  0.25), scaled by their survival rate; nothing before planting;
- grazing bans recovering: +0.02 for each year a pixel has been banned, up to 0.10, while the
  land around them stays as it was;
- a few change patches (变化图斑) from a given year on: losses (−0.18 to −0.30: mining, clearing)
  and gains (+0.18 to +0.30: planting, irrigation), each uniform, so that a change detection
  between a date before and one after finds each of them whole;
- pixel noise (σ 0.012) from a seeded generator, and nodata beyond 1.5 km of the township.

Fractional vegetation cover is the dimidiate pixel model of the NDVI (soil 0.05, full cover 0.75).
The same inputs and seed give the same rasters, bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from gis import synth

__all__ = ["CRS", "DATES", "NODATA", "Ban", "ChangePatch", "Grid", "Plot", "change_patches", "fvc_from_ndvi",
           "ndvi", "plot_increment"]

#: The demo rasters' CRS: WGS 84 / UTM zone 48N.
CRS = "EPSG:32648"
#: Acquisition dates of the demo rasters: mid-July, the peak of the growing season.
DATES = (date(2019, 7, 15), date(2020, 7, 15), date(2021, 7, 15), date(2022, 7, 15))
NODATA = -9999.0
NDVI_SOIL, NDVI_FULL = 0.05, 0.75
#: The year's weather, added everywhere (2021 was dry: the demo's plots of 2021 survived worse).
WEATHER = {2019: 0.0, 2020: 0.01, 2021: -0.02, 2022: 0.01}
NOISE_SD = 0.012
#: How far beyond the township the rasters hold values (m).
MARGIN_M = 1500.0


@dataclass(frozen=True)
class Plot:
    """A caragana plot: lon/lat geometry, year planted, share of seedlings alive (0-1)."""

    geom: BaseGeometry
    planted_year: int
    survival: float = 1.0


@dataclass(frozen=True)
class Ban:
    """A grazing ban: lon/lat geometry and the years it is in force (inclusive)."""

    geom: BaseGeometry
    first_year: int
    last_year: int


@dataclass(frozen=True)
class ChangePatch:
    """A patch whose NDVI changes by ``delta`` from ``year`` on (lon/lat geometry)."""

    geom: BaseGeometry
    delta: float
    year: int


@dataclass(frozen=True)
class Grid:
    """A north-up grid: top-left corner (``west``, ``north``) and square pixels of ``res`` in ``crs``."""

    crs: str
    west: float
    north: float
    res: float
    width: int
    height: int

    @property
    def transform(self):  # -> affine.Affine
        """The grid's affine transform (rasterio's)."""
        from rasterio.transform import from_origin

        return from_origin(self.west, self.north, self.res, self.res)

    @property
    def origin(self) -> tuple[float, float]:
        """The top-left corner."""
        return self.west, self.north

    @classmethod
    def covering(cls, geom_lonlat: BaseGeometry, *, crs: str = CRS, res: float = 30.0,
                 pad_m: float = MARGIN_M) -> Grid:
        """The grid in ``crs`` over ``geom_lonlat`` and ``pad_m`` around it, snapped to ``res``."""
        minx, miny, maxx, maxy = _to_crs(shapely.segmentize(geom_lonlat, 0.01), crs).bounds
        west = math.floor((minx - pad_m) / res) * res
        north = math.ceil((maxy + pad_m) / res) * res
        east = math.ceil((maxx + pad_m) / res) * res
        south = math.floor((miny - pad_m) / res) * res
        return cls(crs, west, north, res, round((east - west) / res), round((north - south) / res))


@functools.cache
def _transformer(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(4326, crs, always_xy=True)


def _to_crs(geom, crs: str):
    tr = _transformer(crs)
    return shapely.transform(geom, lambda x, y: tr.transform(x, y), interleaved=False)


def _burn(grid: Grid, shapes: Iterable[tuple[BaseGeometry, float]], fill: float = 0.0,
          dtype: str = "float32") -> NDArray:
    from rasterio.features import rasterize

    shapes = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if not shapes:
        return np.full((grid.height, grid.width), fill, dtype=dtype)
    return rasterize(shapes, out_shape=(grid.height, grid.width), transform=grid.transform, fill=fill,
                     dtype=dtype)


def plot_increment(age: NDArray | int, survival: NDArray | float = 1.0) -> NDArray:
    """NDVI a caragana plot adds at ``age`` years after planting (nothing before it).

    >>> [round(float(plot_increment(a)), 3) for a in (-1, 0, 1, 4, 20)]
    [0.0, 0.04, 0.065, 0.14, 0.25]
    """
    age = np.asarray(age, dtype="float64")
    return np.where(age >= 0, np.minimum(0.04 + 0.025 * np.maximum(age, 0), 0.25), 0.0) * survival


def change_patches(outline: BaseGeometry, seed: int, *, n: int = 6, year: int = 2022,
                   avoid: BaseGeometry | None = None) -> list[ChangePatch]:
    """``n`` patches (10–60 ha) inside ``outline``, alternately losses and gains, from ``year`` on."""
    rng = np.random.default_rng([seed, 12])
    blobs = synth.blobs(outline, n, rng, min_area_m2=1e5, max_area_m2=6e5, avoid=avoid)
    sizes = rng.uniform(0.18, 0.30, len(blobs))
    return [ChangePatch(geom, float(round(size if i % 2 else -size, 3)), year)
            for i, (geom, size) in enumerate(zip(blobs, sizes, strict=True))]


def _background(grid: Grid, rng: np.random.Generator) -> NDArray[np.float32]:
    """Smooth desert-steppe NDVI, 0.10-0.25: a few random waves of 3-15 km across the grid.

    Each wave cos(kx·x + ky·y + φ) is cos(a)cos(b) − sin(a)sin(b): two outer products, not a
    cosine per pixel.
    """
    x = ((np.arange(grid.width) + 0.5) * grid.res).astype("float64")
    y = ((np.arange(grid.height) + 0.5) * grid.res).astype("float64")
    field = np.zeros((grid.height, grid.width), dtype="float32")
    for _ in range(8):
        wavelength = rng.uniform(3000, 15000)
        angle = rng.uniform(0, np.pi)
        kx, ky = np.cos(angle) * 2 * np.pi / wavelength, np.sin(angle) * 2 * np.pi / wavelength
        a = kx * x + rng.uniform(0, 2 * np.pi)
        b = ky * y
        field += np.outer(np.cos(b), np.cos(a)).astype("float32")
        field -= np.outer(np.sin(b), np.sin(a)).astype("float32")
    field /= np.abs(field).max() or 1.0
    return 0.175 + 0.075 * field


def ndvi(grid: Grid, outline: BaseGeometry, plots: Sequence[Plot], bans: Sequence[Ban],
         patches: Sequence[ChangePatch], dates: Sequence[date] = DATES, *,
         seed: int = 20220701) -> dict[date, NDArray[np.float32]]:
    """The NDVI of each date on ``grid`` (float32, :data:`NODATA` beyond the township's margin)."""
    rng = np.random.default_rng([seed, 11])
    base = _background(grid, rng)
    metric = lambda g: _to_crs(g, grid.crs)  # noqa: E731
    inside = _burn(grid, [(metric(outline).buffer(MARGIN_M), 1)], dtype="uint8").astype(bool)
    by_year = sorted(plots, key=lambda p: p.planted_year)  # a plot drawn over another: the later one
    planted = _burn(grid, ((metric(p.geom), p.planted_year) for p in by_year), dtype="int32")
    survival = _burn(grid, ((metric(p.geom), p.survival) for p in by_year), fill=1.0)
    rows, cols = np.nonzero(planted)  # the plots are a small share of the township
    planted_at, survival_at = planted[rows, cols], survival[rows, cols]
    # bans by their years in force (few distinct periods: one mask each)
    periods: dict[tuple[int, int], list] = {}
    for ban in bans:
        periods.setdefault((ban.first_year, ban.last_year), []).append(metric(ban.geom))
    masks = {span: _burn(grid, [(g, 1) for g in geoms], dtype="uint8").astype(bool)
             for span, geoms in periods.items()}
    # change patches by the year they appear (they do not overlap)
    starts: dict[int, list] = {}
    for patch in patches:
        starts.setdefault(patch.year, []).append((metric(patch.geom), patch.delta))
    deltas = {year: _burn(grid, shapes) for year, shapes in starts.items()}
    out: dict[date, NDArray[np.float32]] = {}
    for day in dates:
        year = day.year
        value = base + np.float32(WEATHER.get(year, 0.0))
        value[rows, cols] += plot_increment(year - planted_at, survival_at).astype("float32")
        banned_years = np.zeros(value.shape, dtype="float32")
        for (first, last), mask in masks.items():
            years = max(0, min(year, last) - first + 1)
            if years:
                np.maximum(banned_years, np.where(mask, np.float32(years), np.float32(0)), out=banned_years)
        value = value + np.minimum(np.float32(0.02) * banned_years, np.float32(0.10))
        for start, delta in deltas.items():
            if year >= start:
                value = value + delta
        noise = np.random.default_rng([seed, 13, year, day.month, day.day]).standard_normal(
            value.shape, dtype="float32")
        value = np.clip(value + np.float32(NOISE_SD) * noise, -0.2, 0.95)
        out[day] = np.where(inside, value, np.float32(NODATA)).astype("float32")
    return out


def fvc_from_ndvi(values: NDArray[np.float32], nodata: float = NODATA) -> NDArray[np.float32]:
    """Fractional vegetation cover (0-1) by the dimidiate pixel model; nodata stays nodata.

    >>> fvc_from_ndvi(np.array([0.0, 0.05, 0.4, 0.75, 0.9, -9999.0], "float32")).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0, -9999.0]
    """
    cover = np.clip((values - NDVI_SOIL) / (NDVI_FULL - NDVI_SOIL), 0.0, 1.0)
    return np.where(values == nodata, nodata, cover).astype("float32")
