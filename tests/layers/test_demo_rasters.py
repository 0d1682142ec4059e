"""The demo's rasters on the demo township: what the issue's examples must find in them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyproj
import pytest
import rasterio
import shapely
import sqlalchemy as sa
from rasterio.features import rasterize, shapes

from gis.vegetation import DATES, NODATA
from layers.demo_rasters import DEMO_SOURCE, demo_change_patches, load_demo_rasters
from layers.rasters import list_rasters
from layers.settings import Settings
from layers.store.database import engine_for


@pytest.fixture(scope="module")
def demo_engine(demo_url) -> sa.Engine:
    return engine_for(demo_url.render_as_string(hide_password=False))


@pytest.fixture(scope="module")
def ndvi(demo_engine):
    """The NDVI rasters by date, read whole (2 000 × 2 000 float32), and the grid's transform."""
    with demo_engine.connect() as conn:
        found = {r.acquired: r for r in list_rasters(conn, kind="ndvi")}
    out = {}
    for day, r in found.items():
        with rasterio.open(r.uri) as src:
            out[day] = src.read(1)
            transform, crs = src.transform, src.crs
    return out, transform, crs


def _metric(geoms, crs):
    tr = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    return [shapely.transform(g, lambda x, y: tr.transform(x, y), interleaved=False) for g in geoms]


def _means(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    ok = (labels > 0) & (values != NODATA)
    total = np.bincount(labels[ok], weights=values[ok], minlength=n + 1)
    count = np.bincount(labels[ok], minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count)[1:]


def test_eight_rasters_ndvi_and_cover_of_four_summers(demo_engine):
    with demo_engine.connect() as conn:
        found = list_rasters(conn)
        extent = conn.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                      "FROM (SELECT ST_Extent(geom) e FROM villages) s")).one()
    assert [(r.kind, r.acquired) for r in found] == [("fvc", d) for d in DATES] + [("ndvi", d) for d in DATES]
    for r in found:
        assert (r.crs, r.res_x, r.res_y, r.dtype, r.nodata, r.source) == (
            "EPSG:32648", 30.0, 30.0, "float32", NODATA, DEMO_SOURCE)
        minx, miny, maxx, maxy = r.bounds_4326
        assert minx < extent[0] and miny < extent[1] and maxx > extent[2] and maxy > extent[3]
    cover = next(r for r in found if r.kind == "fvc")
    with rasterio.open(cover.uri) as src:
        values = src.read(1, masked=True)
    assert values.min() >= 0 and values.max() <= 1


def test_older_caragana_plots_are_greener(demo_engine, ndvi):
    series, transform, crs = ndvi
    with demo_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT ST_AsBinary(geom), planted_year FROM caragana_plots "
                                    "ORDER BY id")).all()
    geoms = _metric([shapely.from_wkb(bytes(g)) for g, _ in rows], crs)
    years = np.array([y for _, y in rows])
    values = series[date(2022, 7, 15)]
    inside = rasterize([(g, i + 1) for i, g in enumerate(geoms)], out_shape=values.shape, transform=transform,
                       dtype="int32")
    ring = rasterize([(g.buffer(300).difference(g.buffer(30)), i + 1) for i, g in enumerate(geoms)],
                     out_shape=values.shape, transform=transform, dtype="int32")
    gain = _means(values, inside, len(geoms)) - _means(values, np.where(inside > 0, 0, ring), len(geoms))
    by_year = {y: float(np.nanmean(gain[years == y])) for y in sorted(set(years))}
    assert list(by_year.values()) == sorted(by_year.values(), reverse=True)  # older: more
    assert by_year[min(by_year)] - by_year[max(by_year)] > 0.1


def test_grazing_bans_recover_against_a_500_m_ring(demo_engine, ndvi):
    series, transform, crs = ndvi
    with demo_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT ST_AsBinary(geom) FROM grazing_bans "
                                    "WHERE valid_from = '2019-01-01' ORDER BY id")).scalars().all()
        every = conn.execute(sa.text("SELECT ST_AsBinary(ST_Union(geom)) FROM grazing_bans")).scalar()
    assert rows
    geoms = _metric([shapely.from_wkb(bytes(g)) for g in rows], crs)
    banned = _metric([shapely.from_wkb(bytes(every))], crs)[0]
    shape = series[DATES[0]].shape
    inside = rasterize([(g, i + 1) for i, g in enumerate(geoms)], out_shape=shape, transform=transform,
                       dtype="int32")
    ring = rasterize([(g.buffer(500).difference(banned), i + 1) for i, g in enumerate(geoms)],
                     out_shape=shape, transform=transform, dtype="int32")
    gaps = [float(np.nanmean(_means(series[d], inside, len(geoms)) - _means(series[d], ring, len(geoms))))
            for d in DATES]
    assert gaps == sorted(gaps), gaps
    assert gaps[-1] - gaps[0] > 0.04


def test_change_patches_between_2021_and_2022_are_found(demo_engine, ndvi):
    series, transform, crs = ndvi
    expected = demo_change_patches(demo_engine)
    assert len(expected) >= 4
    a, b = series[date(2021, 7, 15)], series[date(2022, 7, 15)]
    diff = np.where((a == NODATA) | (b == NODATA), 0, b - a)
    changed = (np.abs(diff) > 0.12).astype("uint8")
    found = [shapely.geometry.shape(g) for g, v in shapes(changed, mask=changed.astype(bool),
                                                          transform=transform) if v == 1]
    big = [g for g in found if g.area >= 5 * 10_000]  # 5 ha, 75 亩: no noise speck is that large
    assert len(big) == len(expected)
    for patch, metric in zip(expected, _metric([p.geom for p in expected], crs), strict=True):
        match = [g for g in big if g.contains(metric.representative_point())]
        assert len(match) == 1
        assert abs(match[0].area - metric.area) / metric.area < 0.1
        inside = rasterize([(metric, 1)], out_shape=diff.shape, transform=transform).astype(bool)
        assert np.sign(diff[inside].mean()) == np.sign(patch.delta)


def test_a_new_demo_replaces_its_rasters_and_keeps_others(new_database, tmp_path):
    with new_database("landeco_test_demo_rasters") as url:
        engine = engine_for(url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO villages (code, name, kind, geom) VALUES ('t', '测试村', "
                                 "'village', ST_Multi(ST_MakeEnvelope(107.10, 38.15, 107.14, 38.18, 4326)))"))
        settings = Settings(home=tmp_path / "home")
        first = load_demo_rasters(engine, settings, dates=(date(2022, 7, 15),))
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE rasters SET source = 'a survey' WHERE id = :i"), {"i": first[0].id})
        second = load_demo_rasters(engine, settings, dates=(date(2022, 7, 15),))
        with engine.connect() as conn:
            kept = [(r.id, r.source) for r in list_rasters(conn)]
        assert sorted(kept) == sorted([(first[0].id, "a survey")] + [(r.id, DEMO_SOURCE) for r in second])
        files = sorted(p.name for p in (tmp_path / "home" / "storage" / "rasters").iterdir())
        assert len(files) == 3  # the first demo's fvc is gone with its row
