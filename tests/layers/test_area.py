"""Areas kept by the database agree with pyproj's geodesic area on GRS80 to 0.01 %."""

from pathlib import Path

import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from gis.area import geodesic_area_m2

ORDOS = Path(__file__).parents[1] / "data" / "ordos_counties" / "ordos_counties.shp"


@pytest.fixture(scope="module")
def counties():
    frame = pyogrio.read_dataframe(ORDOS, encoding="utf-8")
    assert len(frame) == 9
    return frame


def test_database_area_matches_pyproj_on_real_polygons(conn, counties):
    for i, geom in enumerate(counties.geometry):
        multi = shapely.multipolygons(shapely.get_parts(geom))
        conn.execute(sa.text(
            "INSERT INTO villages (code, name, kind, geom) "
            "VALUES (:code, :name, 'village', ST_GeomFromText(:wkt, 4326))"),
            {"code": f"C{i}", "name": counties.iloc[i]["name"], "wkt": multi.wkt})
    rows = conn.execute(sa.text(
        "SELECT code, name, area_m2, area_mu, ST_AsBinary(geom) FROM villages "
        "WHERE code LIKE 'C%' ORDER BY code")).all()
    assert len(rows) == 9
    for _code, name, area_m2, area_mu, wkb in rows:
        expected = geodesic_area_m2(shapely.from_wkb(wkb))
        assert expected > 1e8, name  # a county is hundreds of km² or more
        assert area_m2 == pytest.approx(expected, rel=1e-4), name
        assert area_mu == pytest.approx(expected * 15 / 10_000, rel=1e-4), name
    names = {r.name for r in rows}
    assert "鄂托克前旗" in names


def test_area_is_recomputed_when_the_geometry_changes(conn):
    conn.execute(sa.text(
        "INSERT INTO villages (code, name, kind, geom) VALUES ('A', '甲', 'village', "
        "ST_Multi(ST_MakeEnvelope(107, 38, 107.01, 38.01, 4326)))"))
    conn.execute(sa.text("UPDATE villages SET geom = ST_Multi(ST_MakeEnvelope("
                         "107, 38, 107.02, 38.01, 4326)) WHERE code = 'A'"))
    area = conn.execute(sa.text("SELECT area_m2 FROM villages WHERE code = 'A'")).scalar()
    assert area == pytest.approx(geodesic_area_m2(shapely.box(107, 38, 107.02, 38.01)), rel=1e-4)


def test_area_range_query_can_use_the_area_index(conn):
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(conn.execute(sa.text(
        "EXPLAIN SELECT id FROM caragana_plots WHERE area_mu BETWEEN 50 AND 200")).scalars())
    assert "ix_caragana_plots_area_mu" in plan


def test_area_cannot_be_written_by_a_client(conn):
    with pytest.raises(sa.exc.DBAPIError, match="generated column"), conn.begin_nested():
        conn.execute(sa.text(
            "INSERT INTO villages (code, name, kind, area_m2, geom) VALUES ('B', '乙', "
            "'village', 1, ST_Multi(ST_MakeEnvelope(107, 38, 107.01, 38.01, 4326)))"))
