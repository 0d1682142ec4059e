"""Zonal statistics of polygons over a raster, weighted by how much of each pixel they cover.

exactextract (the reference implementation of coverage-weighted zonal statistics) does the
work: each pixel counts by the fraction of it inside the polygon, nodata pixels do not count,
and the polygons are reprojected to the raster's CRS so that the raster is never resampled.
Features go through in batches and exactextract reads only the window of each feature (at
most ``max_cells`` pixels at a time) under a bounded GDAL block cache, so a 10 000 × 10 000
raster and 10 000 plots stay well under 1 GB.

A *ring* zone is the band ``ring_m`` metres wide outside a polygon (its buffer minus itself,
drawn in a metric CRS): grazing bans are compared inside against the land just outside.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from exactextract.feature import Feature, FeatureSource

from gis.area import M2_PER_MU

__all__ = ["DEFAULT_STATS", "FEATURE_ZONE", "STATS", "ring_zone", "ring_zone_name", "zonal_batches",
           "zonal_stats"]

#: What can be asked for each feature (``share_above`` needs a threshold).
STATS = ("mean", "median", "min", "max", "stdev", "area_m2", "area_mu", "share_above")
#: Asked when nothing is said.
DEFAULT_STATS = ("mean", "median", "min", "max", "stdev", "area_m2", "area_mu")
#: The zone of the feature itself; rings are ``ring_<metres>``.
FEATURE_ZONE = "feature"
#: exactextract's named operation for each plain statistic.
_EXACT = {"mean": "mean", "median": "median", "min": "min", "max": "max", "stdev": "stdev"}
#: Pixels exactextract holds at once, and the GDAL block cache (bytes): the memory bound.
MAX_CELLS = 4_000_000
GDAL_CACHE_BYTES = 128 * 1024 * 1024
BATCH = 2000


def ring_zone_name(ring_m: float) -> str:
    """The zone name of a ring ``ring_m`` metres wide.

    Examples
    --------
    >>> ring_zone_name(500)
    'ring_500'
    >>> ring_zone_name(12.5)
    'ring_12.5'
    """
    return f"ring_{float(ring_m):g}"


def _metric_crs(geoms: gpd.GeoSeries) -> Any:
    """The CRS to buffer in: the features' own when projected in metres, else their UTM zone."""
    crs = geoms.crs
    if crs.is_projected and crs.axis_info and crs.axis_info[0].unit_name in ("metre", "meter"):
        return crs
    return geoms.estimate_utm_crs()


def ring_zone(geoms: gpd.GeoSeries, ring_m: float) -> gpd.GeoSeries:
    """The band ``ring_m`` metres wide outside each geometry, in the geometries' CRS.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> s = gpd.GeoSeries([box(0, 0, 100, 100)], crs="EPSG:32648")
    >>> round(float(ring_zone(s, 10).area[0]))  # 120² - 100², less the rounded corners
    4312
    """
    if not (math.isfinite(ring_m) and ring_m > 0):
        raise ValueError("ring_m must be a positive number of metres")
    if geoms.crs is None:
        raise ValueError("the features have no CRS")
    metric = _metric_crs(geoms)
    inner = geoms.to_crs(metric)
    ring = inner.buffer(ring_m, quad_segs=8).difference(inner)
    return ring.to_crs(geoms.crs)


def _area_op(raster: Any) -> tuple[str | None, float]:
    """How to get the valid area in m²: an extra operation and its factor, or none and m² per pixel.

    In a projected CRS every pixel has the same area, so the coverage-weighted pixel count
    times that area is the valid area; in lon/lat exactextract sums each pixel's area on the sphere.
    """
    crs = raster.crs
    if crs.is_geographic:
        return "area=count(coverage_weight=area_spherical_m2)", 1.0
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return None, abs(raster.res[0] * raster.res[1]) * factor * factor


def _share_above(threshold: float) -> Callable[[np.ma.MaskedArray, np.ndarray], float]:
    """The covered share of a feature's valid pixels whose value exceeds ``threshold``."""
    def share_above(values: np.ma.MaskedArray, coverage: np.ndarray) -> float:
        valid = ~np.ma.getmaskarray(values)
        weight = coverage[valid]
        total = float(weight.sum())
        if total <= 0:
            return math.nan
        data = np.ma.getdata(values)[valid]
        return float(weight[data > threshold].sum()) / total
    return share_above


def _check_stats(stats: Sequence[str], threshold: float | None) -> tuple[str, ...]:
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; known: {', '.join(STATS)}")
    if "share_above" in stats and (threshold is None or not math.isfinite(threshold)):
        raise ValueError("share_above needs a finite threshold")
    return tuple(dict.fromkeys(stats))


def _number(value: Any) -> float | None:
    """A statistic as JSON holds it: NaN (no valid pixel) is None, never 0."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _open(raster: Any) -> Any:
    import rasterio

    if isinstance(raster, (str, os.PathLike)):
        return rasterio.open(raster)
    return contextlib.nullcontext(raster)  # the caller's dataset stays open


def zonal_batches(features: gpd.GeoDataFrame, raster: Any, *, stats: Sequence[str] = DEFAULT_STATS,
                  threshold: float | None = None, ring_m: float | None = None, band: int = 1,
                  batch: int = BATCH, max_cells: int = MAX_CELLS,
                  on_progress: Callable[[int, int], None] | None = None) -> Iterator[list[dict[str, Any]]]:
    """Statistics of each feature (and of its ring), one list of rows per batch of features.

    Parameters
    ----------
    features
        Polygons in any CRS; the index is each row's ``feature_id``.
    raster
        A path or URI rasterio opens, or an open rasterio dataset.
    stats
        Names from :data:`STATS`; ``share_above`` is the covered share of the valid pixels
        whose value is above ``threshold``.
    threshold
        The value ``share_above`` compares with.
    ring_m
        Also the ring this many metres wide outside each feature (zone ``ring_<m>``).
    band
        The band summarized (1 = the first).
    batch
        Features handed to exactextract at once.
    max_cells
        Most pixels exactextract reads at once (larger features are read in parts).
    on_progress
        Called with (features done, features in all) after each batch.

    Each row: ``feature_id``, ``zone``, ``pixels`` (valid pixels, weighted by coverage) and the
    statistics asked; a feature over nodata only (or off the raster) has ``None`` for every
    value statistic and an area of 0.
    """
    stats = _check_stats(stats, threshold)
    if features.crs is None:
        raise ValueError("the features have no CRS")
    import rasterio
    from exactextract.raster import RasterioRasterSource

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), _open(raster) as ds:
        if ds.crs is None:
            raise ValueError("the raster has no CRS")
        if not 1 <= band <= ds.count:
            raise ValueError(f"the raster has no band {band}")
        source = RasterioRasterSource(ds, band)
        area_op, to_m2 = _area_op(ds)
        ops: list[Any] = ["pixels=count", *(f"{s}={_EXACT[s]}" for s in stats if s in _EXACT)]
        if area_op is not None:
            ops.append(area_op)
        if "share_above" in stats:
            ops.append(_share_above(float(threshold)))  # type: ignore[arg-type]
        zones = [FEATURE_ZONE] + ([ring_zone_name(ring_m)] if ring_m else [])
        total = len(features)
        geoms_all = features.geometry
        for start in range(0, total, batch):
            part = geoms_all.iloc[start:start + batch]
            rows: list[dict[str, Any]] = []
            for zone in zones:
                geoms = part if zone == FEATURE_ZONE else ring_zone(part, float(ring_m))  # type: ignore[arg-type]
                rows += _extract(source, geoms.to_crs(ds.crs), ops, stats, zone, to_m2, max_cells)
            yield rows
            if on_progress is not None:
                on_progress(min(start + batch, total), total)


class _Feature(Feature):
    """A feature exactextract reads: its position in the batch and its geometry as WKB."""

    def __init__(self, i: int, wkb: bytes) -> None:
        super().__init__()
        self.i, self.wkb = i, wkb

    def geometry(self) -> bytes:
        return self.wkb

    def get(self, name: str) -> int:
        return self.i

    def fields(self) -> list[str]:
        return ["_i"]


class _Features(FeatureSource):
    """Geometries handed over as WKB (no GeoJSON text per feature, as a GeoDataFrame's are)."""

    def __init__(self, items: list[tuple[int, bytes]], srs_wkt: str) -> None:
        super().__init__()
        self.items, self.wkt = items, srs_wkt

    def count(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[_Feature]:
        for i, wkb in self.items:
            yield _Feature(i, wkb)

    def srs_wkt(self) -> str:
        return self.wkt


def _extract(source: Any, geoms: gpd.GeoSeries, ops: list[Any], stats: tuple[str, ...],
             zone: str, to_m2: float, max_cells: int) -> list[dict[str, Any]]:
    """One batch of one zone through exactextract; rows in the features' order."""
    from exactextract import exact_extract

    ids = list(geoms.index)
    values = geoms.values
    usable = np.flatnonzero(~(geoms.isna() | geoms.is_empty).to_numpy())
    found: dict[int, dict[str, Any]] = {}
    if len(usable):
        wkbs = shapely.to_wkb(np.asarray(values[usable]))
        features = _Features(list(zip(usable.tolist(), wkbs, strict=True)), geoms.crs.to_wkt())
        out = exact_extract(source, features, ops, include_cols=["_i"], output="pandas",
                            max_cells_in_memory=max_cells)
        for rec in out.to_dict("records"):
            found[int(rec["_i"])] = rec
    rows = []
    for i, fid in enumerate(ids):
        rec = found.get(i, {})
        pixels = _number(rec.get("pixels")) or 0.0
        area_m2 = (_number(rec.get("area")) or 0.0) * to_m2 if "area" in rec else pixels * to_m2
        row: dict[str, Any] = {"feature_id": fid, "zone": zone, "pixels": pixels}
        for s in stats:
            if s == "area_m2":
                row[s] = area_m2
            elif s == "area_mu":
                row[s] = area_m2 / M2_PER_MU
            else:
                row[s] = _number(rec.get(s))
        rows.append(row)
    return rows


def zonal_stats(features: gpd.GeoDataFrame, raster: Any, **options: Any) -> list[dict[str, Any]]:
    """Every row of :func:`zonal_batches` in one list (for small inputs and tests).

    Examples
    --------
    >>> import numpy as np, rasterio, tempfile, pathlib
    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "half.tif"
    >>> with rasterio.open(path, "w", driver="GTiff", width=4, height=2, count=1, dtype="float32",
    ...                    crs="EPSG:32648", transform=Affine(10, 0, 0, 0, -10, 20)) as ds:
    ...     ds.write(np.array([[1, 1, 0, 0], [1, 1, 0, 0]], dtype="float32"), 1)
    >>> plots = gpd.GeoDataFrame(geometry=[box(10, 0, 30, 20)], crs="EPSG:32648")
    >>> row = zonal_stats(plots, path, stats=["mean", "area_mu"])[0]
    >>> row["mean"], round(row["area_mu"], 3)
    (0.5, 0.6)
    """
    return [row for rows in zonal_batches(features, raster, **options) for row in rows]
