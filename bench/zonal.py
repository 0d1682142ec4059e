"""Zonal statistics of 10 000 plots over a 10 000 × 10 000 raster: landeco against the rest.

Usage: python -m bench.zonal [--plots 10000] [--size 10000]

Generated inputs (kept in bench/data/): a float32 raster of ``size`` × ``size`` pixels of 10 m
in CGCS2000 / 3-degree GK CM 108E (EPSG:4545) over the demo township, tiled 512 × 512 and
deflated as a COG is, with a band of nodata (a cloud mask) across it; and ``plots`` caragana plots
of the demo generator (lon/lat). Three runs of the same plots over the same file, each in a
process of its own (its peak resident memory is that process's):

- landeco: what the ``zonal`` job runs (features read from PostGIS in the job's order,
  reprojected to the raster, through :mod:`gis.zonal` in batches, rows stored);
- exactextract alone: the same statistics over the same plots, given as a GeoDataFrame already
  in the raster's CRS and in the same order (reading the plots is not timed);
- rasterstats: its ``zonal_stats`` on the same GeoDataFrame (centre-of-pixel, not weighted).

landeco's rows (read back from the database) must equal exactextract's to 1e-6.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
CRS = "EPSG:4545"
RES = 10.0
NODATA = -9999.0
STATS = ("mean", "median", "min", "max", "stdev", "area_m2", "area_mu")
#: exactextract's names for what landeco stores
EXACT_OPS = ["mean", "median", "min", "max", "stdev", "count"]


def make_raster(size: int) -> Path:
    """An NDVI-like float32 raster of ``size`` × ``size`` pixels over the township (cached)."""
    import rasterio
    from affine import Affine
    from pyproj import Transformer

    from gis.synth import TOWNSHIP_CENTRE

    path = DATA / f"zonal_{size}.tif"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(*TOWNSHIP_CENTRE)
    half = size * RES / 2
    transform = Affine(RES, 0, math.floor(x - half), 0, -RES, math.floor(y + half))
    rng = np.random.default_rng(12)
    tmp = path.with_suffix(".part")
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
                       crs=CRS, transform=transform, nodata=NODATA, tiled=True, blockxsize=512,
                       blockysize=512, compress="deflate", predictor=3, BIGTIFF="IF_SAFER") as ds:
        cols = np.arange(size, dtype="float32")
        step = 512
        for top in range(0, size, step):
            rows = np.arange(top, min(top + step, size), dtype="float32")[:, None]
            field = 0.35 + 0.2 * np.sin(cols / 700.0) * np.cos(rows / 900.0)
            block = (field + rng.normal(0, 0.05, (len(rows), size))).astype("float32")
            # a cloud band: nodata across the raster
            cloud = (rows >= size * 0.40) & (rows < size * 0.43)
            block[np.broadcast_to(cloud, block.shape)] = NODATA
            ds.write(block, 1, window=rasterio.windows.Window(0, top, size, len(rows)))
    tmp.rename(path)
    return path


def make_plots(n: int) -> Any:
    """The demo generator's ``n`` caragana plots as a GeoDataFrame in lon/lat, index 1..n."""
    import geopandas as gpd

    from layers.demo import generate

    town = generate(parcels=n)
    frame = gpd.GeoDataFrame({"planted_year": [r["planted_year"] for r in town.rows["caragana_plots"]]},
                             geometry=town.geoms["caragana_plots"], crs=4326)
    frame.index = np.arange(1, len(frame) + 1)
    return frame
