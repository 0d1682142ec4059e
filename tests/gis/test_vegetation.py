"""Synthetic vegetation rasters (gis.vegetation): known effects where they were put, deterministic."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyproj
import shapely
from rasterio.features import geometry_mask

from gis import vegetation as veg

TR = pyproj.Transformer.from_crs(4326, veg.CRS, always_xy=True)


def _square(lon: float, lat: float, half: float = 0.004):
    return shapely.box(lon - half, lat - half, lon + half, lat + half)


OUTLINE = shapely.box(107.10, 38.15, 107.20, 38.25)
OLD = veg.Plot(_square(107.12, 38.17), 2015, 1.0)
NEW = veg.Plot(_square(107.18, 38.17), 2022, 1.0)
BAN = veg.Ban(_square(107.15, 38.23, 0.01), 2019, 2023)
LOSS = veg.ChangePatch(_square(107.12, 38.23), -0.25, 2022)


def _mean(grid: veg.Grid, values: np.ndarray, geom) -> float:
    metric = shapely.transform(geom, lambda x, y: TR.transform(x, y), interleaved=False)
    inside = ~geometry_mask([metric], out_shape=values.shape, transform=grid.transform)
    return float(values[inside].mean())


def _series(seed: int = 1):
    grid = veg.Grid.covering(OUTLINE)
    return grid, veg.ndvi(grid, OUTLINE, [OLD, NEW], [BAN], [LOSS], seed=seed)


def test_grid_covers_the_outline_in_utm_with_30_m_pixels():
    grid = veg.Grid.covering(OUTLINE)
    assert grid.crs == "EPSG:32648" and grid.res == 30
    assert grid.west % 30 == 0 and grid.north % 30 == 0
    x, y = TR.transform(107.10, 38.25)
    assert grid.west <= x - 1500 and grid.north >= y + 1500


def _ring(geom):
    return geom.buffer(0.003).difference(geom.buffer(0.0005))


def test_older_plots_are_greener_and_nothing_grows_before_planting():
    grid, series = _series()
    for day, values in series.items():
        for plot in (OLD, NEW):
            gain = _mean(grid, values, plot.geom) - _mean(grid, values, _ring(plot.geom))
            expected = veg.plot_increment(day.year - plot.planted_year)
            assert abs(gain - expected) < 0.02, (day, plot.planted_year)
    d22 = series[date(2022, 7, 15)]
    assert _mean(grid, d22, OLD.geom) - _mean(grid, d22, NEW.geom) > 0.1


def test_a_ban_recovers_against_the_land_around_it():
    grid, series = _series()
    ring = BAN.geom.buffer(0.006).difference(BAN.geom.buffer(0.001))
    gaps = [_mean(grid, v, BAN.geom) - _mean(grid, v, ring) for v in series.values()]
    assert gaps == sorted(gaps) and gaps[-1] - gaps[0] > 0.05
    assert abs(gaps[-1] - gaps[0] - 0.06) < 0.02  # +0.02 a year for 2019 → 2022


def test_a_change_patch_appears_whole_in_its_year():
    grid, series = _series()
    diff = series[date(2022, 7, 15)] - series[date(2021, 7, 15)]
    assert _mean(grid, diff, LOSS.geom) < -0.2
    changed = np.abs(diff) > 0.12
    metric = shapely.transform(LOSS.geom, lambda x, y: TR.transform(x, y), interleaved=False)
    inside = ~geometry_mask([metric], out_shape=diff.shape, transform=grid.transform)
    assert changed[inside].mean() > 0.99 and changed[~inside].mean() < 0.001
    before = series[date(2020, 7, 15)] - series[date(2019, 7, 15)]
    assert abs(_mean(grid, before, LOSS.geom) - _mean(grid, before, _ring(LOSS.geom))) < 0.01


def test_nodata_beyond_the_margin_and_cover_in_0_1():
    _, series = _series()
    values = series[date(2019, 7, 15)]
    assert values[0, 0] == veg.NODATA and values.dtype == np.float32
    valid = values[values != veg.NODATA]
    assert valid.min() > 0.05 and valid.max() < 0.6
    cover = veg.fvc_from_ndvi(values)
    assert cover[0, 0] == veg.NODATA
    c = cover[cover != veg.NODATA]
    assert c.min() >= 0 and c.max() <= 1


def test_the_same_seed_gives_the_same_rasters_and_another_differs():
    _, a = _series(seed=5)
    _, b = _series(seed=5)
    _, c = _series(seed=6)
    day = date(2021, 7, 15)
    assert np.array_equal(a[day], b[day]) and not np.array_equal(a[day], c[day])


def test_change_patches_are_inside_and_apart():
    patches = veg.change_patches(OUTLINE, 3, n=4, avoid=OLD.geom)
    assert len(patches) == 4
    assert all(OUTLINE.contains(p.geom) and not p.geom.intersects(OLD.geom) for p in patches)
    assert {p.delta < 0 for p in patches} == {True, False}
    assert all(0.18 <= abs(p.delta) <= 0.3 for p in patches)
    again = veg.change_patches(OUTLINE, 3, n=4, avoid=OLD.geom)
    assert [p.geom.wkt for p in again] == [p.geom.wkt for p in patches]
