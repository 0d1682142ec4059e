"""The demo township: counts, consistency, geometry rules, determinism."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import shapely
import sqlalchemy as sa

from layers.demo import DEMO_AS_OF, generate
from layers.registry import LAYERS
from layers.store.database import create_database, drop_database, engine_for

LANDECO = Path(sys.executable).with_name("landeco")


@pytest.fixture(scope="module")
def demo(demo_url):
    engine = engine_for(demo_url.render_as_string(hide_password=False))
    counts = generate().counts()  # what the generator made, compared with what was stored
    return counts, engine


def _scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _rows(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def test_counts_are_those_of_a_township(demo):
    counts, engine = demo
    assert counts["villages"] == 12
    assert 20 <= counts["subsidence_zones"] <= 40
    assert counts["grazing_bans"] > 0
    assert 300 <= counts["caragana_plots"] <= 600
    assert 100 <= counts["land_leases"] <= 200
    assert 20 <= counts["eco_projects"] <= 40 and counts["fence_lines"] > 10 and counts["watersheds"] == 2
    assert 5 <= counts["change_patches"] <= 8
    for layer_id, n in counts.items():
        assert _scalar(engine, f"SELECT count(*) FROM {layer_id}") == n


def test_change_patches_went_through_their_steps(demo):
    _, engine = demo
    statuses = dict(_rows(engine, "SELECT status, count(*) FROM change_patches GROUP BY 1"))
    assert {"pending", "verified", "rectified"} <= set(statuses)
    steps = _rows(engine, "SELECT s.to_status, s.by FROM change_patch_steps s JOIN change_patches p "
                          "ON p.id = s.patch_id WHERE p.status = 'rectified' ORDER BY s.id")
    assert ("rectified", "demo") in steps and ("verified", "demo") in steps


def test_villages_carry_the_names_of_the_work_report(demo):
    _, engine = demo
    names = {r.name for r in _rows(engine, "SELECT name FROM villages")}
    assert {"特布德嘎查", "沙章图村", "八一村", "哈沙图嘎查", "布拉格社区", "马兰花社区"} <= names
    codes = [r.code for r in _rows(engine, "SELECT code FROM villages")]
    assert all(len(c) == 12 and c.startswith("150623") for c in codes)


def test_everything_lies_in_the_region(demo):
    _, engine = demo
    for layer_id in LAYERS:
        xmin, ymin, xmax, ymax = _rows(engine, f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), "
                                               f"ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
                                               f"FROM {layer_id}) s")[0]
        assert 106.8 <= xmin < xmax <= 107.6 and 37.9 <= ymin < ymax <= 38.5, layer_id


def test_villages_tile_the_township_without_overlap(demo):
    _, engine = demo
    overlap = _scalar(engine, "SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom), "
                              "true)), 0) FROM villages a JOIN villages b ON a.id < b.id "
                              "AND ST_Intersects(a.geom, b.geom)")
    assert overlap < 1.0  # m², floating noise along shared borders


@pytest.mark.parametrize("layer_id", ["subsidence_zones", "grazing_bans", "caragana_plots",
                                      "land_leases"])
def test_every_feature_lies_inside_the_village_it_names(demo, layer_id):
    _, engine = demo
    outside = _scalar(engine, f"SELECT count(*) FROM {layer_id} f LEFT JOIN villages v "
                              f"ON v.code = f.village_code WHERE v.code IS NULL OR NOT "
                              f"ST_CoveredBy(f.geom, ST_Buffer(v.geom, 1e-7))")
    assert outside == 0


@pytest.mark.parametrize("layer_id", [k for k, v in LAYERS.items() if not v.overlaps_allowed])
def test_layers_that_forbid_overlap_have_none(demo, layer_id):
    _, engine = demo
    pairs = _scalar(engine, f"SELECT count(*) FROM {layer_id} a JOIN {layer_id} b "
                            f"ON a.id < b.id AND ST_Intersects(a.geom, b.geom) "
                            f"AND ST_Area(ST_Intersection(a.geom, b.geom), true) > 1")
    assert pairs == 0


def test_grazing_bans_overlap_only_across_delineations(demo):
    _, engine = demo
    same_period = _scalar(engine, "SELECT count(*) FROM grazing_bans a JOIN grazing_bans b "
                                  "ON a.id < b.id AND daterange(a.valid_from, a.valid_to, '[]') "
                                  "&& daterange(b.valid_from, b.valid_to, '[]') "
                                  "AND ST_Area(ST_Intersection(a.geom, b.geom), true) > 1")
    assert same_period == 0


def test_current_grazing_bans_cover_the_northern_pastoral_gachas(demo):
    _, engine = demo
    rows = _rows(engine, "SELECT v.name, v.area_m2, sum(g.area_m2) AS banned FROM villages v "
                         "JOIN grazing_bans g ON g.village_code = v.code AND g.valid_from <= "
                         ":day AND g.valid_to >= :day GROUP BY v.name, v.area_m2", day=DEMO_AS_OF)
    assert len(rows) >= 4
    for name, area, banned in rows:
        assert name.endswith("嘎查")
        assert banned == pytest.approx(area, rel=1e-3), name
    seasonal = _rows(engine, "SELECT DISTINCT season_start, season_end FROM grazing_bans "
                             "WHERE regime = 'seasonal_rest'")
    assert seasonal == [("04-01", "06-30")]


def test_subsidence_households_and_compensation_are_consistent(demo):
    _, engine = demo
    for status, total, relocated, comp in _rows(
            engine, "SELECT status, households_total, households_relocated, "
                    "compensation_wan_yuan FROM subsidence_zones"):
        assert 0 <= relocated <= total
        if status == "monitoring":
            assert relocated == 0
        if status in ("relocated", "rehabilitating", "rehabilitated"):
            assert relocated == total
        assert (comp > 0) == (relocated > 0)
    assert _scalar(engine, "SELECT sum(households_relocated) FROM subsidence_zones") > 0


def test_caragana_plots_span_the_years_and_methods(demo):
    _, engine = demo
    years = {r[0] for r in _rows(engine, "SELECT DISTINCT planted_year FROM caragana_plots")}
    assert years == set(range(2015, 2023))
    methods = {r[0] for r in _rows(engine, "SELECT DISTINCT method FROM caragana_plots")}
    assert methods == {"enclosure", "restoration", "replacement"}
    assert _scalar(engine, "SELECT count(*) FROM caragana_plots WHERE inspected_on "
                           "<= make_date(planted_year, 12, 31)") == 0


def test_leases_have_the_reports_projects_and_ordered_dates(demo):
    _, engine = demo
    projects = {r[0] for r in _rows(engine, "SELECT DISTINCT project FROM land_leases")}
    assert {"国电双维铁路", "京能光伏发电", "油气勘探"} <= projects
    assert _scalar(engine, "SELECT count(*) FROM land_leases WHERE end_date < start_date") == 0
    wrong_status = _scalar(engine, "SELECT count(*) FROM land_leases WHERE "
                                   "(status = 'expired') <> (end_date < :day)", day=DEMO_AS_OF)
    assert wrong_status == 0
    soon = _scalar(engine, "SELECT count(*) FROM land_leases WHERE end_date BETWEEN :day "
                           "AND :day + 90", day=DEMO_AS_OF)
    assert soon >= 3  # the maps mark leases expiring within 90 days


def test_the_same_seed_gives_the_same_township():
    a, b, c = generate(7), generate(7), generate(8)
    for layer_id in LAYERS:
        assert a.rows[layer_id] == b.rows[layer_id]
        assert shapely.to_wkb(a.geoms[layer_id]).tolist() == \
            shapely.to_wkb(b.geoms[layer_id]).tolist()
    assert shapely.to_wkb(a.geoms["villages"]).tolist() != \
        shapely.to_wkb(c.geoms["villages"]).tolist()


def test_demo_command_builds_a_large_parcel_layer(server_url):
    url = server_url.set(database="landeco_test_parcels")
    drop_database(url)
    create_database(url)
    try:
        env = {**os.environ, "LANDECO_DATABASE_URL": url.render_as_string(hide_password=False)}
        out = subprocess.run([str(LANDECO), "demo", "--parcels", "20000"], env=env,
                             capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, out.stderr
        engine = engine_for(url.render_as_string(hide_password=False))
        n = _scalar(engine, "SELECT count(*) FROM caragana_plots")
        assert 18_000 <= n <= 22_000
        assert f"{n:,}" in out.stdout
        overlapping = _scalar(engine, "SELECT count(*) FROM (SELECT id, geom FROM caragana_plots "
                                      "LIMIT 2000) a JOIN caragana_plots b ON a.id < b.id AND "
                                      "ST_Intersects(a.geom, b.geom)")
        assert overlapping == 0
        engine.dispose()
    finally:
        drop_database(url)


def test_the_work_reports_ecology_projects(demo):
    _, engine = demo
    sheds = _rows(engine, "SELECT w.name, v.name AS village FROM watersheds w "
                          "JOIN villages v ON v.code = w.village_code ORDER BY w.name")
    assert [(r.name, r.village) for r in sheds] == [("哈沙图清洁小流域", "哈沙图嘎查"),
                                                    ("特布德清洁小流域", "特布德嘎查")]
    wan_mi = _scalar(engine, "SELECT sum(length_m) / 10000 FROM fence_lines")
    assert 5 < wan_mi < 50  # fence projects are counted in 万米
    # every fence and project lies in the village it names
    for table in ("fence_lines", "eco_projects", "watersheds"):
        outside = _scalar(engine, f"SELECT count(*) FROM {table} t JOIN villages v "
                                  "ON v.code = t.village_code WHERE NOT ST_Covers(v.geom, t.geom)")
        assert outside == 0, table
