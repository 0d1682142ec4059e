"""GeoTIFFs checked before they are trusted, and converted to Cloud-Optimized GeoTIFFs.

Pure: no database, no web. :func:`inspect` reads only headers (the TIFF's first directory by
hand, then GDAL's view of it) and refuses, with a stable code, what landeco will not store: a
file that is not a TIFF, one GDAL cannot open, one whose header claims more pixels than the
limits (checked before any pixel is read), too many bands, no CRS, no georeferencing, a
rotated grid. :func:`to_cog` reads every block (so a truncated file is found out) and writes a
COG with overviews through ``rio-cogeo``.
"""

from __future__ import annotations

import errno
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import shapely
from shapely.geometry import MultiPolygon, Polygon

from gis.errors import InputError

__all__ = ["DTYPES", "RasterInfo", "RasterLimits", "crs_name", "footprint_lonlat", "inspect", "tiff_header",
           "to_cog", "write_geotiff"]

#: Sample types landeco stores (complex and 1-bit rasters are refused).
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
#: Points per edge of the raster's outline when it is carried into lon/lat.
_EDGE_POINTS = 32

_TIFF_MAGIC = {b"II*\x00": ("<", False), b"MM\x00*": (">", False),
               b"II+\x00": ("<", True), b"MM\x00+": (">", True)}
#: TIFF field types: (struct code, size).
_FIELD = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8), 6: ("b", 1), 8: ("h", 2), 9: ("i", 4),
          17: ("q", 8)}
_WIDTH, _LENGTH, _BITS, _SAMPLES = 256, 257, 258, 277


@dataclass(frozen=True)
class RasterLimits:
    """What a raster may claim in its header."""

    max_pixel_bytes: int = 8 * 1024**3
    max_bands: int = 16


@dataclass(frozen=True)
class RasterInfo:
    """What the header of a GeoTIFF says, and where it lies on the earth."""

    crs: str  # 'EPSG:32648', or WKT when the CRS has no EPSG code
    width: int
    height: int
    band_count: int
    dtype: str
    nodata: float | None
    res_x: float
    res_y: float
    bounds: tuple[float, float, float, float]  # in the raster's CRS
    footprint: MultiPolygon  # lon/lat (EPSG:4326)

    @property
    def pixel_bytes(self) -> int:
        """Bytes of the pixels uncompressed."""
        return self.width * self.height * self.band_count * np.dtype(self.dtype).itemsize


def tiff_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, samples per pixel, bits per sample) of the first directory, read by hand.

    Read before GDAL touches the file, so that a header claiming 10⁹ × 10⁹ pixels is refused by
    its numbers, whatever GDAL or libtiff would make of it.

    >>> import tempfile, struct
    >>> d = tempfile.mkdtemp()
    >>> p = Path(d) / "h.tif"
    >>> tags = [(256, 4, 7), (257, 4, 5), (258, 3, 8), (277, 3, 1)]
    >>> body = struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<H", len(tags))
    >>> body += b"".join(struct.pack("<HHII", t, ty, 1, v) for t, ty, v in tags) + struct.pack("<I", 0)
    >>> _ = p.write_bytes(body)
    >>> tiff_header(p)
    (7, 5, 1, 8)
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if head[:4] not in _TIFF_MAGIC:
                raise InputError("raster_not_tiff", "the file is not a TIFF (GeoTIFF)",
                                 hint="export the raster as GeoTIFF (.tif)")
            order, big = _TIFF_MAGIC[head[:4]]
            if big:
                if len(head) < 16:
                    raise ValueError("short header")
                offset = struct.unpack(order + "Q", head[8:16])[0]
            else:
                offset = struct.unpack(order + "I", head[4:8])[0]
            f.seek(offset)
            count_fmt, entry_size = (order + "Q", 20) if big else (order + "H", 12)
            raw = f.read(struct.calcsize(count_fmt))
            (count,) = struct.unpack(count_fmt, raw)
            if count == 0 or count > 4096:
                raise ValueError("directory size")
            entries = f.read(count * entry_size)
            if len(entries) < count * entry_size:
                raise ValueError("short directory")
    except InputError:
        raise
    except (OSError, ValueError, struct.error) as err:
        raise InputError("raster_corrupt", f"the TIFF's header cannot be read ({err})",
                         hint="the file may be truncated: send it again") from None
    tags: dict[int, int] = {}
    for i in range(count):
        entry = entries[i * entry_size:(i + 1) * entry_size]
        if big:
            tag, ftype, n = struct.unpack(order + "HHQ", entry[:12])
            value = entry[12:20]
        else:
            tag, ftype, n = struct.unpack(order + "HHI", entry[:8])
            value = entry[8:12]
        if tag in (_WIDTH, _LENGTH, _BITS, _SAMPLES) and ftype in _FIELD and n >= 1:
            code, size = _FIELD[ftype]
            if size <= len(value):  # the first value is inline (BitsPerSample of several bands may not be)
                tags[tag] = struct.unpack(order + code, value[:size])[0]
            elif tag == _BITS:
                tags[tag] = 8
    if _WIDTH not in tags or _LENGTH not in tags:
        raise InputError("raster_corrupt", "the TIFF's header gives no width or height")
    return tags[_WIDTH], tags[_LENGTH], tags.get(_SAMPLES, 1), tags.get(_BITS, 1)


def _check_size(width: int, height: int, bands: int, itemsize: int, limits: RasterLimits) -> None:
    if width <= 0 or height <= 0 or bands <= 0:
        raise InputError("raster_corrupt", f"the raster claims {width} × {height} pixels in {bands} bands")
    if bands > limits.max_bands:
        raise InputError("raster_too_many_bands", f"the raster has {bands} bands; at most "
                         f"{limits.max_bands} are accepted", bands=bands, max_bands=limits.max_bands)
    claimed = width * height * bands * itemsize
    if claimed > limits.max_pixel_bytes:
        raise InputError("raster_dimensions_too_large",
                         f"the raster claims {width} × {height} pixels × {bands} bands "
                         f"({claimed:,} bytes uncompressed); at most {limits.max_pixel_bytes:,} are accepted",
                         hint="clip it to the township or coarsen it", width=width, height=height,
                         bands=bands, pixel_bytes=claimed, max_pixel_bytes=limits.max_pixel_bytes)


def crs_name(crs: object) -> str:
    """``EPSG:n`` when the CRS has an EPSG code, else its WKT."""
    epsg = crs.to_epsg()  # type: ignore[attr-defined]
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()  # type: ignore[attr-defined]


def footprint_lonlat(bounds: tuple[float, float, float, float], crs_wkt: str) -> MultiPolygon:
    """The outline of ``bounds`` (in ``crs_wkt``) in lon/lat, its edges densified so that it curves."""
    minx, miny, maxx, maxy = bounds
    box = shapely.segmentize(shapely.box(minx, miny, maxx, maxy),
                             max(maxx - minx, maxy - miny) / _EDGE_POINTS)
    ring = np.asarray(box.exterior.coords)
    source = pyproj.CRS.from_user_input(crs_wkt)
    if source.is_geographic and pyproj.CRS.from_epsg(4326).equals(source, ignore_axis_order=True):
        lon, lat = ring[:, 0], ring[:, 1]
    else:
        tr = pyproj.Transformer.from_crs(source, 4326, always_xy=True)
        lon, lat = tr.transform(ring[:, 0], ring[:, 1])
    lon, lat = np.asarray(lon), np.asarray(lat)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise InputError("raster_outside_township", "the raster's corners have no place in lon/lat",
                         hint="check the raster's coordinate system")
    poly = shapely.make_valid(Polygon(np.column_stack([lon, lat])))
    parts = [g for g in getattr(poly, "geoms", [poly]) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        raise InputError("raster_outside_township", "the raster's outline has no area in lon/lat")
    return MultiPolygon(parts)


def inspect(path: Path, limits: RasterLimits | None = None) -> RasterInfo:
    """The raster's metadata, or an :class:`InputError` with a stable code; no pixel is read."""
    import rasterio

    limits = limits or RasterLimits()
    width, height, samples, bits = tiff_header(path)
    _check_size(width, height, samples, max(1, bits // 8), limits)
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as src:
            if src.driver != "GTiff":
                raise InputError("raster_not_tiff", f"the file is read as {src.driver}, not as a GeoTIFF")
            dtypes = set(src.dtypes)
            crs, transform = src.crs, src.transform
            w, h, count = src.width, src.height, src.count
            nodata = src.nodata
            bounds = tuple(float(v) for v in src.bounds)
            gcps = src.gcps[0]
    except InputError:
        raise
    except Exception as err:  # RasterioError, GDAL's CPLE_* errors, a header numpy cannot take
        raise InputError("raster_corrupt", f"the file cannot be read as a GeoTIFF: {err}",
                         hint="the file may be truncated or damaged: send it again") from None
    if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPES:
        raise InputError("raster_dtype_unsupported", f"sample type {', '.join(sorted(dtypes))} is not "
                         f"accepted: {', '.join(DTYPES)}", dtypes=sorted(dtypes))
    dtype = next(iter(dtypes))
    _check_size(w, h, count, np.dtype(dtype).itemsize, limits)
    if crs is None:
        raise InputError("raster_no_crs", "the raster names no coordinate system",
                         hint="assign one (gdal_edit.py -a_srs EPSG:4545 file.tif) and send it again")
    if transform.is_identity:
        detail = " (it has ground control points: warp it first)" if gcps else ""
        raise InputError("raster_not_georeferenced", f"the raster has no geotransform{detail}",
                         hint="georeference it (gdalwarp) and send it again")
    if transform.b != 0 or transform.d != 0:
        raise InputError("raster_rotated", "the raster's grid is rotated or sheared",
                         hint="warp it north-up (gdalwarp) and send it again")
    if nodata is not None and not np.isfinite(nodata) and not np.isnan(nodata):
        nodata = None
    try:
        name = crs_name(crs)
        footprint = footprint_lonlat(bounds, crs.to_wkt())  # type: ignore[arg-type]
    except InputError:
        raise
    except Exception as err:  # a CRS PROJ cannot use
        raise InputError("raster_no_crs", f"the raster's coordinate system cannot be used: {err}") from None
    return RasterInfo(crs=name, width=w, height=h, band_count=count, dtype=dtype,
                      nodata=None if nodata is None else float(nodata),
                      res_x=abs(float(transform.a)), res_y=abs(float(transform.e)), bounds=bounds,
                      footprint=footprint)


class _Progress:
    """A file click's progress bar writes to (rio-cogeo has no callback): percentages to a function."""

    _PERCENT = re.compile(r"(\d{1,3})%")

    def __init__(self, report: Callable[[float], None]) -> None:
        self.report = report

    def isatty(self) -> bool:  # click draws its bar only on a terminal
        return True

    def write(self, text: str) -> int:
        found = self._PERCENT.findall(text)
        if found:
            self.report(min(100, int(found[-1])) / 100)
        return len(text)

    def flush(self) -> None:
        pass


class _QuietClick:
    """rio-cogeo's ``click`` without its messages ("Reading input: …"): landeco says what it does itself.

    Its progress bar still draws (into :class:`_Progress`); nothing else of click changes.
    """

    def __init__(self, click: object) -> None:
        self._click = click

    def echo(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return getattr(self._click, name)


def _quiet_cogeo() -> None:
    from rio_cogeo import cogeo

    if not isinstance(cogeo.click, _QuietClick):
        cogeo.click = _QuietClick(cogeo.click)


def to_cog(src_path: Path, dst_path: Path, *, resampling: str = "average",
           on_progress: Callable[[float], None] | None = None) -> None:
    """Write ``src_path`` as a COG (DEFLATE, 512-pixel tiles, overviews) at ``dst_path``.

    Every block of the source is read, so a truncated or damaged file raises ``raster_corrupt``
    here rather than when someone draws it. ``resampling`` builds the overviews (``average`` for
    continuous values, ``nearest`` for classes).
    """
    import rasterio
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    _quiet_cogeo()
    profile = cog_profiles.get("deflate")
    profile.update(blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER")
    with rasterio.open(src_path) as src:
        profile["predictor"] = 3 if np.dtype(src.dtypes[0]).kind == "f" else 2
    try:
        with rasterio.Env(GDAL_CACHEMAX=256, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            cog_translate(src_path, dst_path, profile, overview_resampling=resampling,
                          quiet=on_progress is None,
                          progress_out=_Progress(on_progress) if on_progress else None,
                          in_memory=False, use_cog_driver=False)
    except Exception as err:  # GDAL's errors come as several classes; a full disk is not the file's fault
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        raise InputError("raster_corrupt", f"the raster's pixels cannot be read: {err}",
                         hint="the file may be truncated or damaged: send it again") from None


def write_geotiff(path: Path, data: np.ndarray, *, crs: str, origin: tuple[float, float],
                  res: float | tuple[float, float], nodata: float | None = None, tiled: bool = False) -> Path:
    """Write ``data`` (rows × cols, or bands × rows × cols) as a plain GeoTIFF, north up.

    ``origin`` is the top-left corner in ``crs``; ``res`` the pixel size (x, y) in its units.
    For tests and the demo: what a surveyor's GIS would export.
    """
    import rasterio
    from rasterio.transform import from_origin

    arr = data if data.ndim == 3 else data[np.newaxis]
    rx, ry = (res, res) if isinstance(res, int | float) else res
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
               "dtype": arr.dtype.name, "crs": crs, "transform": from_origin(origin[0], origin[1], rx, ry),
               "nodata": nodata, "compress": "deflate"}
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path
