"""The demo township's rasters: NDVI and vegetation cover of four summers, stored like any raster.

The pixels come from :mod:`gis.vegetation`, drawn from the layers as they are in the database
(the villages' outline, the caragana plots' planting year and survival, the grazing bans' years),
so that older plots are greener and banned pasture recovers on the demo that is loaded. Each
raster is added through :func:`layers.rasters.add_raster` (checked, COG, registered); a new demo
first removes the rasters an earlier demo added (their ``source`` says so), never others.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import shapely
import sqlalchemy as sa

from gis import vegetation
from gis.raster import write_geotiff
from layers.rasters import Raster, add_raster, delete_raster
from layers.settings import Settings

__all__ = ["DEMO_SOURCE", "demo_change_patches", "load_demo_rasters"]

#: The ``source`` of the demo's rasters (how a new demo finds the old ones to replace).
DEMO_SOURCE = "landeco demo (synthetic)"
_MEANING = {"ndvi": "NDVI, −1 to 1 (synthetic: older caragana greener, grazing bans recovering, "
                    "change patches from 2022)",
            "fvc": "植被覆盖度 fractional vegetation cover, 0 to 1 (dimidiate pixel model of the NDVI)"}


def _inputs(conn: sa.Connection, seed: int):
    rows = conn.execute(sa.text("SELECT ST_AsBinary(ST_Union(geom)) FROM villages")).scalar()
    if rows is None:
        raise ValueError("the demo rasters need the demo's villages: run landeco demo")
    outline = shapely.from_wkb(bytes(rows))
    plots = [vegetation.Plot(shapely.from_wkb(bytes(g)), int(y), float(s) if s is not None else 1.0)
             for g, y, s in conn.execute(sa.text(
                 "SELECT ST_AsBinary(geom), planted_year, survival_rate FROM caragana_plots "
                 "WHERE planted_year IS NOT NULL ORDER BY id"))]
    bans = [vegetation.Ban(shapely.from_wkb(bytes(g)), int(a), int(b))
            for g, a, b in conn.execute(sa.text(
                "SELECT ST_AsBinary(geom), extract(year FROM valid_from)::int, "
                "coalesce(extract(year FROM valid_to)::int, 9999) FROM grazing_bans "
                "WHERE valid_from IS NOT NULL ORDER BY id"))]
    avoid = shapely.union_all([p.geom for p in plots]) if plots else None
    patches = vegetation.change_patches(outline, seed, avoid=avoid)
    return outline, plots, bans, patches


def demo_change_patches(engine: sa.Engine, seed: int = 20220701) -> list[vegetation.ChangePatch]:
    """The change patches the demo rasters hold (NDVI change from 2021 to 2022), for checking."""
    with engine.connect() as conn:
        return _inputs(conn, seed)[3]


def load_demo_rasters(engine: sa.Engine, settings: Settings, *, seed: int = 20220701,
                      dates: tuple[date, ...] = vegetation.DATES, res: float = 30.0,
                      progress: Callable[[str, int, int], None] | None = None) -> list[Raster]:
    """Generate NDVI and cover for ``dates`` over the loaded demo and add them; the rasters added."""
    with engine.connect() as conn:
        old = conn.execute(sa.text("SELECT id FROM rasters WHERE source = :s"),
                           {"s": DEMO_SOURCE}).scalars().all()
        outline, plots, bans, patches = _inputs(conn, seed)
    for raster_id in old:
        delete_raster(engine, raster_id, who="landeco demo")
    grid = vegetation.Grid.covering(outline, res=res)
    series = vegetation.ndvi(grid, outline, plots, bans, patches, dates, seed=seed)
    added: list[Raster] = []
    total = 2 * len(dates)
    with tempfile.TemporaryDirectory(prefix="landeco-demo-rasters-") as tmp:
        for day in dates:
            for kind, values in (("ndvi", series[day]), ("fvc", vegetation.fvc_from_ndvi(series[day]))):
                path = write_geotiff(Path(tmp) / f"{kind}-{day.isoformat()}.tif", values, crs=grid.crs,
                                     origin=grid.origin, res=grid.res, nodata=vegetation.NODATA, tiled=True)
                added.append(add_raster(engine, settings, path, kind=kind, acquired=day, source=DEMO_SOURCE,
                                        band_meaning=_MEANING[kind], who="landeco demo"))
                path.unlink()
                if progress is not None:
                    progress("rasters", 1, total)
    return added
