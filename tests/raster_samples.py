"""Small generated GeoTIFFs with known values, and where their pixels fall on a Web Mercator tile."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pyproj import Transformer

#: The demo township's centre (gis.synth.TOWNSHIP_CENTRE).
CENTRE = (107.15, 38.2)


def write_raster(path: Path, data: np.ndarray, *, crs: str = "EPSG:32648",
                 centre: tuple[float, float] = CENTRE, res: float = 10.0,
                 nodata: float | None = None) -> Path:
    """A one-band GeoTIFF of ``data`` (rows from the north) centred on ``centre`` (lon, lat)."""
    import rasterio
    from rasterio.transform import from_origin

    cx, cy = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*centre)
    rows, cols = data.shape
    transform = from_origin(cx - cols * res / 2, cy + rows * res / 2, res, res)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype=data.dtype.name,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data, 1)
    return path


def lonlat_of(crs: str, centre: tuple[float, float], dx: float, dy: float) -> tuple[float, float]:
    """The lon/lat of the point ``dx`` m east and ``dy`` m north of ``centre`` in ``crs``."""
    cx, cy = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*centre)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx + dx, cy + dy)
    return lon, lat


def tile_pixel(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """(x, y) of the tile holding lon/lat at zoom ``z``, and the pixel (column, row) in it."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    t = tms.tile(lon, lat, z)
    b = tms.xy_bounds(t)
    mx, my = tms.xy(lon, lat)
    col = int((mx - b.left) / (b.right - b.left) * 256)
    row = int((b.top - my) / (b.top - b.bottom) * 256)
    return t.x, t.y, col, row


def rgba(png: bytes) -> np.ndarray:
    """A PNG decoded to (rows, columns, 4) RGBA."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
