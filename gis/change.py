"""Change patches (变化图斑) between two rasters of one kind: where the value rose or fell.

Polygons of the pixels whose change passes a threshold, of at least a minimum size.

The second raster is read on the first one's grid (``WarpedVRT`` when the grids differ), strip
by strip of about :data:`STRIP_PIXELS` pixels: memory does not grow with the raster's size.
Pixels whose change passes the threshold are grouped into patches of edge-touching pixels
(4-connectivity, as ``rasterio.features.shapes`` draws them); a patch crossing strips is one
patch (its pieces are joined by a union-find over the strips' seams). Each patch carries its
mean change (over its pixels), its area on the ellipsoid and its outline in EPSG:4326.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely
from pyproj import Transformer

from gis.area import M2_PER_MU, geodesic_area_m2
from gis.errors import InputError

__all__ = ["DIRECTIONS", "ChangePatch", "detect_changes"]

Direction = Literal["loss", "gain", "both"]
#: What a detection looks for: values that fell, rose, or either.
DIRECTIONS: tuple[str, ...] = ("loss", "gain", "both")
#: Pixels read at once (a strip of whole rows: 4 M float32 pixels are 16 MB per raster).
STRIP_PIXELS = 4_000_000
_LOSS, _GAIN = 1, 2
#: GDAL's block cache while detecting (MB): the strips are read once, a large cache only grows.
GDAL_CACHE_MB = 64


@dataclass(frozen=True)
class ChangePatch:
    """One patch: ``kind`` (``loss`` or ``gain``), outline in lon/lat, mean change, size."""

    kind: str
    geometry: Any  # shapely (Multi)Polygon in EPSG:4326
    mean_change: float
    pixels: int
    area_m2: float

    @property
    def area_mu(self) -> float:
        """The area in 亩 (1 亩 = 10 000 / 15 m²)."""
        return self.area_m2 / M2_PER_MU


class _Parts:
    """Union-find over the pieces of patches met strip by strip."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.kind: list[int] = []
        self.count: list[int] = []
        self.total: list[float] = []
        self.geoms: list[list[Any]] = []
        self.live: set[int] = set()  # roots not yet finished

    def add(self, kind: int, count: int, total: float, geoms: list[Any]) -> int:
        self.parent.append(len(self.parent))
        self.kind.append(kind)
        self.count.append(count)
        self.total.append(total)
        self.geoms.append(geoms)
        self.live.add(len(self.parent) - 1)
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if len(self.geoms[a]) < len(self.geoms[b]):
            a, b = b, a
        self.parent[b] = a
        self.count[a] += self.count[b]
        self.total[a] += self.total[b]
        self.geoms[a].extend(self.geoms[b])
        self.geoms[b] = []
        self.live.discard(b)


@contextmanager
def _aligned(before_uri: str, after_uri: str) -> Iterator[tuple[Any, Any]]:
    """Both rasters open, the second on the first one's grid; refused when they do not overlap."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    with ExitStack() as stack:
        try:
            before = stack.enter_context(rasterio.open(before_uri))
            after = stack.enter_context(rasterio.open(after_uri))
        except RasterioIOError as err:
            raise InputError("raster_unreadable", f"a raster cannot be opened: {err}") from None
        if before.crs is None or after.crs is None:
            raise InputError("raster_without_crs", "both rasters need a coordinate reference system")
        west, south, east, north = transform_bounds(after.crs, before.crs, *after.bounds, densify_pts=21)
        bw, bs, be, bn = before.bounds
        if west >= be or east <= bw or south >= bn or north <= bs:
            raise InputError("rasters_disjoint", "the two rasters do not overlap: nothing to compare")
        same = (after.crs == before.crs and after.transform.almost_equals(before.transform)
                and after.shape == before.shape)
        if not same:
            # outside the second raster is no data: its nodata value, NaN, or an alpha band
            blank: dict[str, Any] = {"nodata": after.nodata}
            if after.nodata is None:
                floating = np.issubdtype(np.dtype(after.dtypes[0]), np.floating)
                blank = {"nodata": np.nan} if floating else {"add_alpha": True}
            after = stack.enter_context(WarpedVRT(
                after, crs=before.crs, transform=before.transform, width=before.width, height=before.height,
                resampling=Resampling.bilinear, **blank))
        yield before, after


def _read(src: Any, window: Any) -> np.ndarray:
    """Band 1 of ``window`` as float32 with NaN where there is no data."""
    band = src.read(1, window=window, masked=True, boundless=False, out_dtype="float32")
    return np.ma.filled(band, np.nan)


def detect_changes(before_uri: str, after_uri: str, *, threshold: float, direction: Direction = "both",
                   min_mu: float = 0.0, strip_rows: int | None = None,
                   on_progress: Callable[[float], None] | None = None) -> list[ChangePatch]:
    """The patches where ``after - before`` is at most ``-threshold`` (loss) or at least it (gain).

    ``threshold`` is an absolute change in the rasters' unit (0.15 of NDVI); ``min_mu`` the
    smallest patch kept, in 亩, measured on the ellipsoid. Pixels without data in either raster
    never belong to a patch. ``strip_rows`` (default: :data:`STRIP_PIXELS` worth of rows) bounds
    the memory; ``on_progress`` sees the fraction of rows read.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, rasterio
    >>> from rasterio.transform import from_origin
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> profile = dict(driver="GTiff", width=40, height=40, count=1, dtype="float32",
    ...                crs="EPSG:32648", transform=from_origin(600000, 4200000, 30, 30))
    >>> old, new = np.full((40, 40), 0.6, "float32"), np.full((40, 40), 0.6, "float32")
    >>> new[5:15, 5:15] = 0.2
    >>> for name, data in (("a.tif", old), ("b.tif", new)):
    ...     with rasterio.open(folder / name, "w", **profile) as dst:
    ...         dst.write(data, 1)
    >>> [p] = detect_changes(str(folder / "a.tif"), str(folder / "b.tif"), threshold=0.15, min_mu=5)
    >>> p.kind, p.pixels, round(p.mean_change, 2), round(p.area_m2 / 90_000, 2)
    ('loss', 100, -0.4, 1.0)
    """
    import rasterio
    import rasterio.features
    from rasterio.windows import Window
    from scipy import ndimage

    if not np.isfinite(threshold) or threshold <= 0:
        raise InputError("threshold_invalid", "the threshold is an absolute change greater than 0")
    if direction not in DIRECTIONS:
        raise InputError("direction_invalid", f"direction is one of {', '.join(DIRECTIONS)}")
    if not np.isfinite(min_mu) or min_mu < 0:
        raise InputError("min_mu_invalid", "the minimum size is 0 亩 or more")
    kinds = {"loss": (_LOSS,), "gain": (_GAIN,), "both": (_LOSS, _GAIN)}[direction]
    parts = _Parts()
    out: list[ChangePatch] = []
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), _aligned(before_uri, after_uri) as (before, after):
        to_lonlat = Transformer.from_crs(before.crs, "EPSG:4326", always_xy=True)
        rows, width = before.height, before.width
        if strip_rows is None:
            strip_rows = max(16, STRIP_PIXELS // width)
        prev_labels: np.ndarray | None = None  # the global part ids of the previous strip's last row
        prev_codes: np.ndarray | None = None
        for top in range(0, rows, strip_rows):
            height = min(strip_rows, rows - top)
            window = Window(0, top, width, height)
            diff = _read(after, window) - _read(before, window)
            codes = np.zeros(diff.shape, dtype="uint8")
            with np.errstate(invalid="ignore"):
                if _LOSS in kinds:
                    codes[diff <= -threshold] = _LOSS
                if _GAIN in kinds:
                    codes[diff >= threshold] = _GAIN
            labels = np.zeros(diff.shape, dtype="int32")
            ids: list[int] = [0]  # local label → global part id
            for kind in kinds:
                local, n = ndimage.label(codes == kind)
                if not n:
                    continue
                offset = len(ids) - 1
                labels[local > 0] = local[local > 0] + offset
                ids.extend([-1] * n)
            n_local = len(ids) - 1
            if n_local:
                flat = labels.ravel()
                counts = np.bincount(flat, minlength=n_local + 1)
                totals = np.bincount(flat, weights=np.nan_to_num(diff).ravel().astype("float64"),
                                     minlength=n_local + 1)
                first = np.zeros(n_local + 1, dtype="uint8")
                first[flat] = codes.ravel()
                geoms: dict[int, list[Any]] = {}
                transform = before.window_transform(window)
                for shape, value in rasterio.features.shapes(labels, mask=labels > 0, transform=transform,
                                                             connectivity=4):
                    geoms.setdefault(int(value), []).append(shapely.geometry.shape(shape))
                for local in range(1, n_local + 1):
                    ids[local] = parts.add(int(first[local]), int(counts[local]), float(totals[local]),
                                           geoms.get(local, []))
            table = np.asarray(ids, dtype="int64")
            table[0] = -1  # no patch
            top_row, bottom_row = table[labels[0]], table[labels[-1]]
            if prev_labels is not None and prev_codes is not None:
                seam = (top_row >= 0) & (prev_labels >= 0) & (codes[0] == prev_codes)
                for a, b in set(zip(prev_labels[seam].tolist(), top_row[seam].tolist(), strict=True)):
                    parts.union(a, b)
            prev_labels, prev_codes = bottom_row, codes[-1].copy()
            open_roots = {parts.find(i) for i in prev_labels[prev_labels >= 0].tolist()}
            last = top + height >= rows
            out.extend(_finished(parts, open_roots if not last else set(), to_lonlat, min_mu))
            if on_progress is not None:
                on_progress((top + height) / rows)
    out.sort(key=lambda p: (-p.area_m2, p.kind))
    return out


def _finished(parts: _Parts, open_roots: set[int], to_lonlat: Transformer,
              min_mu: float) -> list[ChangePatch]:
    """The patches no later strip can grow: outlined, measured, kept when large enough."""
    found = []
    for i in sorted(parts.live - open_roots):
        parts.live.discard(i)
        pieces, parts.geoms[i] = parts.geoms[i], []
        if not pieces:
            continue
        outline = shapely.union_all(pieces) if len(pieces) > 1 else pieces[0]
        lonlat = shapely.transform(outline, lambda xy: np.column_stack(
            to_lonlat.transform(xy[:, 0], xy[:, 1])))
        if not lonlat.is_valid:  # a ring pinched by the reprojection
            fixed = shapely.make_valid(lonlat)
            lonlat = shapely.union_all([g for g in shapely.get_parts(fixed)
                                        if g.geom_type in ("Polygon", "MultiPolygon")])
        area = geodesic_area_m2(lonlat)
        if area / M2_PER_MU + 1e-9 < min_mu:
            continue
        kind = "loss" if parts.kind[i] == _LOSS else "gain"
        found.append(ChangePatch(kind, lonlat, parts.total[i] / parts.count[i], parts.count[i], area))
    return found
