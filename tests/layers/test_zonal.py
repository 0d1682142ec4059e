"""The zonal job against real PostGIS: the demo township, rasters drawn over it with known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio.features
import shapely
import sqlalchemy as sa

from gis.raster import write_geotiff
from layers import jobs
from layers.cql2 import InvalidFilterError
from layers.demo import load_demo
from layers.rasters import add_raster
from layers.settings import Settings
from layers.store.database import make_engine
from layers.zonal import (
    ZonalLayerError,
    ZonalParameterError,
    ZonalStatError,
    bans_against_rings,
    caragana_cover_by_year,
    check_zonal,
    feature_series,
    run_zonal,
)

RES = 30.0
NODATA = -9999.0
BACKGROUND, BAN = 0.3, 0.6


def year_value(year: int) -> float:
    """What the generated NDVI gives caragana planted in ``year``: older is greener."""
    return round(0.1 * (2023 - year), 1)


def _grid(conn) -> tuple[tuple[float, float], int, int]:
    """The top-left corner (EPSG:4545) and size of a 30 m grid over every village, 1 km margin."""
    w, s, e, n = conn.execute(sa.text(
        "SELECT ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) FROM "
        "(SELECT ST_Extent(ST_Transform(geom, 4545)) AS x FROM villages) q")).one()
    x0, y0 = math.floor(w / 1000) * 1000 - 1000, math.ceil(n / 1000) * 1000 + 1000
    return (x0, y0), int((math.ceil(e / 1000) * 1000 + 1000 - x0) / RES), int((y0 - s + 1000) // RES) + 1


def _shapes(conn, sql: str) -> list[tuple[shapely.Geometry, float]]:
    rows = conn.execute(sa.text(sql)).all()
    return [(shapely.from_wkb(bytes(g)), v) for g, v in rows]


@pytest.fixture(scope="module")
def township(new_database, tmp_path_factory):
    """The demo township, and three rasters in EPSG:4545 over it (30 m), registered.

    - ``uniform`` (other, 2021-07-01): 0.25 east of the grid's middle, nodata west of it;
    - ``ndvi_2020`` / ``ndvi_2022`` (ndvi): 0.3 outside, 0.6 on every grazing ban, and on each
      caragana plot 0.1 × its age in 2023 (+0.05 in 2022); every pixel a polygon touches takes
      its value, so a polygon's coverage-weighted mean is its own value.
    """
    home = tmp_path_factory.mktemp("zonal-home")
    folder = tmp_path_factory.mktemp("zonal-rasters")
    with new_database("landeco_test_zonal") as url:
        load_demo(url)
        settings = Settings(database_url=url.render_as_string(hide_password=False), home=home)
        engine = make_engine(url, statement_timeout_ms=60_000)
        with engine.connect() as conn:
            origin, width, height = _grid(conn)
            bans = _shapes(conn, f"SELECT ST_AsBinary(ST_Transform(geom, 4545)), {BAN} FROM grazing_bans")
            plots = _shapes(conn, "SELECT ST_AsBinary(ST_Transform(geom, 4545)), planted_year "
                                  "FROM caragana_plots")
        transform = rasterio.transform.from_origin(origin[0], origin[1], RES, RES)
        uniform = np.full((height, width), 0.25, "float32")
        uniform[:, : width // 2] = NODATA
        rasters = {"uniform": add_raster(engine, settings, write_geotiff(
            folder / "uniform.tif", uniform, crs="EPSG:4545", origin=origin, res=RES, nodata=NODATA),
            kind="other", acquired="2021-07-01")}
        for year, extra in ((2020, 0.0), (2022, 0.05)):
            ndvi = np.full((height, width), BACKGROUND + extra, "float32")
            rasterio.features.rasterize(bans, out=ndvi, transform=transform, all_touched=True)
            ndvi[ndvi == BAN] += extra
            rasterio.features.rasterize([(g, year_value(y) + extra) for g, y in plots], out=ndvi,
                                        transform=transform, all_touched=True)
            rasters[f"ndvi_{year}"] = add_raster(engine, settings, write_geotiff(
                folder / f"ndvi_{year}.tif", ndvi, crs="EPSG:4545", origin=origin, res=RES, nodata=NODATA),
                kind="ndvi", acquired=f"{year}-07-15")
        yield {"url": url, "settings": settings, "engine": engine, "rasters": rasters,
               "middle_x": origin[0] + (width // 2) * RES}
        engine.dispose()


def _rows(engine, raster_id: int, layer: str, zone: str = "feature") -> dict[int, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT * FROM zonal_stats WHERE raster_id = :r AND layer = :l AND zone = :z"),
            {"r": raster_id, "l": layer, "z": zone}).mappings().all()
    return {r["feature_id"]: dict(r) for r in rows}


def test_nodata_is_null_and_valid_area_is_the_plot_area(township):
    engine, raster = township["engine"], township["rasters"]["uniform"]
    summary = run_zonal(engine, raster_id=raster.id, layer="caragana_plots", threshold=0.2)
    rows = _rows(engine, raster.id, "caragana_plots")
    with engine.connect() as conn:
        plots = conn.execute(sa.text(
            "SELECT id, ST_Area(geom::geography) AS m2, ST_XMin(ST_Transform(geom, 4545)) AS west, "
            "ST_XMax(ST_Transform(geom, 4545)) AS east FROM caragana_plots")).all()
    assert summary["features"] == len(plots) == len(rows) and summary["rows"] == len(plots)
    middle = township["middle_x"]
    east = [p for p in plots if p.west > middle]
    west = [p for p in plots if p.east < middle]
    assert east and west
    for p in east:  # wholly over 0.25: mean 0.25 exactly, no spread, valid area = the plot's area
        r = rows[p.id]
        assert r["mean"] == pytest.approx(0.25) and r["median"] == pytest.approx(0.25)
        assert r["stdev"] == pytest.approx(0.0, abs=1e-6) and r["share_above"] == pytest.approx(1.0)
        assert r["area_m2"] == pytest.approx(p.m2, rel=2e-3)  # Gauss-Krüger scale near 108°E
        assert r["area_mu"] == pytest.approx(p.m2 / (10_000 / 15), rel=2e-3)
        assert (r["kind"], r["acquired"].isoformat(), r["threshold"]) == ("other", "2021-07-01", 0.2)
    for p in west:  # wholly over nodata: no value (NULL, not 0), no valid area
        r = rows[p.id]
        assert r["mean"] is None and r["min"] is None and r["share_above"] is None
        assert r["area_m2"] == 0 and r["pixels"] == 0


def test_a_new_run_replaces_the_rows_of_the_same_raster_layer_feature_and_zone(township):
    engine, raster = township["engine"], township["rasters"]["uniform"]
    run_zonal(engine, raster_id=raster.id, layer="caragana_plots", threshold=0.2, job_id=None)
    before = _rows(engine, raster.id, "caragana_plots")
    run_zonal(engine, raster_id=raster.id, layer="caragana_plots", stats=["mean"],
              where="planted_year >= 2020", job_id=77)
    after = _rows(engine, raster.id, "caragana_plots")
    assert set(after) == set(before)  # the others are kept
    with engine.connect() as conn:
        recent = set(conn.execute(sa.text(
            "SELECT id FROM caragana_plots WHERE planted_year >= 2020")).scalars())
    assert recent and recent < set(before)
    for fid, row in after.items():
        if fid in recent:
            assert row["job_id"] == 77 and row["share_above"] is None and row["threshold"] is None
            assert row["computed_at"] >= before[fid]["computed_at"]
        else:
            assert row == before[fid]


def test_caragana_cover_by_planting_year(township):
    """The demo's first example: older caragana is greener, year by year, on both dates."""
    engine, rasters = township["engine"], township["rasters"]
    for key in ("ndvi_2020", "ndvi_2022"):
        run_zonal(engine, raster_id=rasters[key].id, layer="caragana_plots")
    with engine.connect() as conn:
        table = caragana_cover_by_year(conn, kind="ndvi")
        years = dict(conn.execute(sa.text(
            "SELECT planted_year, count(*) FROM caragana_plots GROUP BY 1")).all())
    # a plot planted after the image is bare ground on it: no row for its year on that date
    assert {(r["acquired"], r["planted_year"]) for r in table} == {
        (d, y) for d in ("2020-07-15", "2022-07-15") for y in years if y <= int(d[:4])}
    for row in table:
        extra = 0.05 if row["acquired"] == "2022-07-15" else 0.0
        assert row["plots"] == years[row["planted_year"]]
        # neighbours of other years share a few edge pixels: within 0.02 of the value drawn
        assert row["mean"] == pytest.approx(year_value(row["planted_year"]) + extra, abs=0.02)
    for date in ("2020-07-15", "2022-07-15"):
        means = [r["mean"] for r in sorted(table, key=lambda r: r["planted_year"]) if r["acquired"] == date]
        assert means == sorted(means, reverse=True)  # older (earlier year) greener


def _sampled_mean(path: str, geom: shapely.Geometry, n: int = 4000, seed: int = 3) -> float:
    """The mean of the raster at ``n`` uniform random points of ``geom`` (an independent estimate)."""
    rng = np.random.default_rng(seed)
    w, s, e, n_ = geom.bounds
    points: list[tuple[float, float]] = []
    shapely.prepare(geom)
    while len(points) < n:
        xs, ys = rng.uniform(w, e, 4 * n), rng.uniform(s, n_, 4 * n)
        inside = shapely.contains_xy(geom, xs, ys)
        points += list(zip(xs[inside], ys[inside], strict=True))
    with rasterio.open(path) as ds:
        values = np.array([v[0] for v in ds.sample(points[:n])])
    return float(values[values != NODATA].mean())


def test_grazing_bans_inside_against_the_ring_outside(township):
    """The demo's second example: NDVI inside each ban against a 500 m ring outside it."""
    engine, raster = township["engine"], township["rasters"]["ndvi_2022"]
    summary = run_zonal(engine, raster_id=raster.id, layer="grazing_bans", ring_m=500)
    assert summary["zones"] == ["feature", "ring_500"]
    with engine.connect() as conn:
        table = bans_against_rings(conn, raster_id=raster.id)
        n = conn.execute(sa.text("SELECT count(*) FROM grazing_bans")).scalar()
        bans = dict(conn.execute(sa.text("SELECT id, ST_AsBinary(ST_Transform(geom, 4545)) FROM grazing_bans "
                                         "ORDER BY id LIMIT 4")).all())
    assert len(table) == n
    by_id = {r["feature_id"]: r for r in table}
    for fid, wkb in bans.items():  # against points sampled at random inside the ban and in its ring
        ban = shapely.from_wkb(bytes(wkb))
        ring = ban.buffer(500).difference(ban)
        assert by_id[fid]["inside"] == pytest.approx(_sampled_mean(raster.uri, ban), abs=0.01)
        assert by_id[fid]["outside"] == pytest.approx(_sampled_mean(raster.uri, ring), abs=0.01)
    for row in table:
        assert row["difference"] == pytest.approx(row["inside"] - row["outside"])
        assert row["inside_mu"] > 0 and row["outside_mu"] > 0
    # drawn 0.6 (+0.05) on the bans against 0.3 (+0.05) around them: every ban is greener inside
    # drawn 0.6 (+0.05) on every ban, 0.3 (+0.05) elsewhere: inside is the ban's value; a ring lies
    # between the two (re-delineated bans overlap, so some rings fall on other bans)
    for row in table:
        assert row["inside"] == pytest.approx(BAN + 0.05, abs=0.01)
        assert BACKGROUND + 0.05 - 1e-6 <= row["outside"] <= BAN + 0.05 + 1e-6
    assert sum(r["difference"] for r in table) / len(table) > 0.05


def test_a_feature_series_has_one_entry_per_raster_date_and_zone(township):
    engine, rasters = township["engine"], township["rasters"]
    for key in ("ndvi_2020", "ndvi_2022"):
        run_zonal(engine, raster_id=rasters[key].id, layer="grazing_bans", ring_m=500)
    with engine.connect() as conn:
        fid = conn.execute(sa.text("SELECT min(id) FROM grazing_bans")).scalar()
        series = feature_series(conn, "grazing_bans", fid)
    assert [(s["kind"], s["zone"], s["acquired"]) for s in series] == [
        ("ndvi", "feature", "2020-07-15"), ("ndvi", "feature", "2022-07-15"),
        ("ndvi", "ring_500", "2020-07-15"), ("ndvi", "ring_500", "2022-07-15")]
    assert all(isinstance(s["mean"], float) for s in series)


def test_the_zonal_job_runs_in_a_worker_with_progress(township):
    settings, engine, raster = township["settings"], township["engine"], township["rasters"]["uniform"]
    queue = jobs.JobQueue(settings, township["url"])
    job_id = jobs.submit(queue, engine, "zonal", {"raster_id": raster.id, "layer": "grazing_bans",
                                                  "where": "regime = 'full_ban'", "ring_m": 200}, "surveyor1")
    seen: list[float] = []
    with jobs.worker_in_background(queue, engine):
        job = jobs.wait(engine, job_id, timeout_s=120, on_progress=lambda j: seen.append(j["progress"]))
    assert job["state"] == "succeeded", job
    with engine.connect() as conn:
        bans = conn.execute(sa.text(
            "SELECT count(*) FROM grazing_bans WHERE regime = 'full_ban' AND ST_Intersects(geom, "
            "(SELECT footprint FROM rasters WHERE id = :r))"), {"r": raster.id}).scalar()
        stored = conn.execute(sa.text(
            "SELECT zone, count(*), min(job_id), max(job_id) FROM zonal_stats "
            "WHERE raster_id = :r AND layer = 'grazing_bans' GROUP BY zone ORDER BY zone"),
            {"r": raster.id}).all()
    assert bans > 0 and job["result"]["features"] == bans and job["result"]["rows"] == 2 * bans
    assert [tuple(r) for r in stored] == [("feature", bans, job_id, job_id),
                                          ("ring_200", bans, job_id, job_id)]
    assert job["progress"] == 1 and job["kind"] == "zonal"


@pytest.mark.parametrize("params, error", [
    ({"layer": "fence_lines"}, ZonalLayerError),
    ({"layer": "no_such"}, ZonalLayerError),
    ({"layer": "caragana_plots", "stats": ["mean", "mode"]}, ZonalStatError),
    ({"layer": "caragana_plots", "stats": "mean"}, ZonalParameterError),
    ({"layer": "caragana_plots", "threshold": float("nan")}, ZonalParameterError),
    ({"layer": "caragana_plots", "threshold": float("inf")}, ZonalParameterError),
    ({"layer": "caragana_plots", "threshold": True}, ZonalParameterError),
    ({"layer": "caragana_plots", "stats": ["share_above"]}, ZonalParameterError),
    ({"layer": "caragana_plots", "ring_m": 0}, ZonalParameterError),
    ({"layer": "caragana_plots", "ring_m": 1e9}, ZonalParameterError),
    ({"layer": "caragana_plots", "where": "nope = 1"}, InvalidFilterError),
    ({"layer": "caragana_plots", "where": 5}, ZonalParameterError),
    ({"layer": "caragana_plots", "colour": "red"}, ZonalParameterError),
])
def test_parameters_are_checked_before_queueing(params, error):
    with pytest.raises(error):
        check_zonal({"raster_id": 1, **params})


def test_the_default_statistics_and_threshold():
    checked = check_zonal({"raster_id": 1, "layer": "caragana_plots", "threshold": 0.3})
    assert checked["stats"] == ["mean", "median", "min", "max", "stdev", "area_m2", "area_mu", "share_above"]
    assert check_zonal({"raster_id": 1, "layer": "grazing_bans"})["stats"][-1] == "area_mu"
