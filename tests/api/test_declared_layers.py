"""A layer is declared once: the three new layers, and a line layer declared in this test alone.

Every service (items, tiles, stats, export, upload, maps, queries) reaches a layer through
the registry, so a declaration and a table are all a layer needs.
"""

from __future__ import annotations

import io
import json
import zipfile

import mapbox_vector_tile
import pyogrio
import pytest
import sqlalchemy as sa

from layers.model import Choice, Field, Layer, Style
from layers.registry import LAYERS
from layers.store.database import engine_for
from layers.store.schema import build_table
from tests.api.test_maps import _decoded
from tests.api.test_tiles import tile_of
from tests.conftest import client_for

MVT = "application/vnd.mapbox-vector-tile"


def _point_on(conn, table: str, where: str = "TRUE") -> tuple[int, str, float, float, float]:
    """id, code, length and a point on the longest line of ``table``."""
    return conn.execute(sa.text(
        f"SELECT id, code, length_m, ST_X(p), ST_Y(p) FROM (SELECT id, code, length_m, "
        f"ST_LineInterpolatePoint(ST_GeometryN(geom, 1), 0.5) AS p FROM {table} WHERE {where} "
        f"ORDER BY length_m DESC LIMIT 1) s")).one()


# --- the three new layers, on the demo township -------------------------------------------------

def test_the_new_layers_are_collections_with_demo_features(demo_client):
    ids = {c["id"] for c in demo_client.get("/collections").json()["collections"]}
    assert {"fence_lines", "eco_projects", "watersheds"} <= ids
    names = {f["properties"]["name"] for f in
             demo_client.get("/collections/watersheds/items").json()["features"]}
    assert names == {"哈沙图清洁小流域", "特布德清洁小流域"}  # as the work report names them
    fences = demo_client.get("/collections/fence_lines/items?limit=3").json()
    f = fences["features"][0]
    assert f["geometry"]["type"] == "MultiLineString"
    assert f["properties"]["length_m"] > 0 and "area_mu" not in f["properties"]
    types = {f["properties"]["project_type"] for f in
             demo_client.get("/collections/eco_projects/items?limit=100").json()["features"]}
    assert {"grassland_restoration", "sand_control"} <= types


def test_fence_stats_speak_in_metres_and_wan_mi(demo_client, demo_url):
    body = demo_client.get("/stats/fence_lines?by=fence_type").json()
    names = [c["name"] for c in body["columns"]]
    assert "length_m" in names and "length_wan_m" in names and "area_mu" not in names
    assert {"zh": "长度（万米）", "en": "Length (10 km)", "name": "length_wan_m"} in body["columns"]
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        metres = conn.scalar(sa.text("SELECT sum(ST_Length(geom::geography, true)) FROM fence_lines"))
    assert body["total"]["length_m"] == pytest.approx(metres, abs=0.01)
    assert body["total"]["length_wan_m"] == pytest.approx(metres / 10_000, abs=1e-6)
    assert sum(r["count"] for r in body["rows"]) == body["total"]["count"]
    csv = demo_client.get("/stats/fence_lines?format=csv").content.decode("utf-8-sig")
    assert "长度（万米）" in csv.splitlines()[0]
    eco = demo_client.get("/stats/eco_projects?by=project_type").json()
    assert {"area_mu", "investment_wan_yuan", "target_area_mu"} <= set(eco["total"])


def test_a_fence_tile_holds_lines_with_their_length(demo_client, demo_url):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        _, code, length, lon, lat = _point_on(conn, "fence_lines")
    for z in (10, 15):  # lines are never merged into cells, not even far out
        address = "/".join(map(str, tile_of(lon, lat, z)))
        r = demo_client.get(f"/collections/fence_lines/tiles/WebMercatorQuad/{address}")
        assert r.status_code == 200 and r.headers["content-type"] == MVT
        decoded = mapbox_vector_tile.decode(r.content)["fence_lines"]["features"]
        feats = {f["properties"]["code"]: f for f in decoded}
        assert feats[code]["geometry"]["type"] in ("LineString", "MultiLineString")
        assert feats[code]["properties"]["length_m"] == pytest.approx(length, abs=0.01)


def test_fence_export_and_map(demo_client, tmp_path):
    r = demo_client.get("/export/fence_lines?format=gpkg")
    assert r.status_code == 200
    (tmp_path / "f.gpkg").write_bytes(r.content)
    frame = pyogrio.read_dataframe(tmp_path / "f.gpkg")
    assert set(frame.geom_type) == {"MultiLineString"} and (frame["length_m"] > 0).all()
    page = _decoded(demo_client.get("/maps/fence_lines").text)
    assert "line x1=" in page  # the legend draws a line swatch, not a box
    assert "长度" in page and "刺丝网围栏" in page
    png = demo_client.get("/maps/fence_lines.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_query_on_a_line_layer(demo_client):
    r = demo_client.post("/query", json={"layers": ["fence_lines"], "area": {"min": 1, "unit": "mu"}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_area"
    assert "fence_lines" in r.json()["detail"]
    ok = demo_client.post("/query", json={"layers": ["fence_lines", "watersheds"],
                                          "place": {"villages": ["哈沙图嘎查"]}})
    assert ok.status_code == 200, ok.text
    s = ok.json()["summary"]
    assert s["layers"]["fence_lines"]["length_m"] > 0 and "area_mu" not in s["layers"]["fence_lines"]
    assert s["layers"]["watersheds"]["count"] == 1 and s["total"]["length_m"] > 0
    page = demo_client.get("/query?layers=fence_lines&layers=watersheds&villages=150623101202")
    assert page.status_code == 200, page.text
    assert "长度（万米）" in page.text and "网围栏" in page.text


def test_eco_projects_on_active_leases_is_a_conflict_check(demo_client):
    r = demo_client.get("/conflicts/eco_projects_in_leases?on=2026-11-01")
    assert r.status_code == 200, r.text
    fc = r.json()
    assert {f["properties"]["a_layer"] for f in fc["features"]} <= {"eco_projects"}
    assert all(f["properties"]["overlap_m2"] >= 1 for f in fc["features"])
    assert fc["summary"]["count"] == len(fc["features"])
    outside = demo_client.get("/conflicts").json()["checks"]
    layers = next(c["layers"] for c in outside if c["id"] == "outside_village")
    assert {"eco_projects", "watersheds"} <= set(layers) and "fence_lines" not in layers


# --- a line layer declared here alone ------------------------------------------------------------

TRACKS = Layer(
    id="survey_tracks",
    zh="巡护路线",
    en="Patrol tracks",
    geometry_type="MULTILINESTRING",
    order=70,
    fields=(
        Field("ranger", "text", "巡护员", "Ranger", required=True, aliases=("巡护员", "XHY")),
        Field("mode", "text", "方式", "Mode", required=True,
              choices=(Choice("foot", "步行", "On foot", "#1b9e77"),
                       Choice("motorbike", "摩托车", "Motorbike", "#d95f02"))),
    ),
    style=Style(color="#1b9e77", weight=3.0, by="mode"),
)


@pytest.fixture(scope="module")
def tracks_url(new_database):
    """A demo township plus the test's own table, built from its declaration."""
    from layers.demo import load_demo

    with new_database("landeco_test_tracks") as url:
        load_demo(url)
        engine = engine_for(url.render_as_string(hide_password=False))
        build_table(TRACKS, sa.MetaData()).create(engine)
        yield url


@pytest.fixture
def tracks_client(tracks_url, tmp_path, monkeypatch):
    monkeypatch.setitem(LAYERS, TRACKS.id, TRACKS)  # registered for this test only
    with client_for(tracks_url, tmp_path / "home") as client:
        yield client


def _tracks_geojson(conn) -> bytes:
    """Three tracks across the first village, as a surveyor's GeoJSON file."""
    x0, y0, x1, y1 = conn.execute(sa.text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT ST_Extent(geom) AS e FROM villages WHERE code = (SELECT min(code) FROM villages)) s")).one()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    feats = [{"type": "Feature", "properties": {"编号": f"T-{i}", "巡护员": r, "mode": m},
              "geometry": {"type": "LineString",
                           "coordinates": [[cx - 0.01, cy + 0.002 * i], [cx + 0.01, cy + 0.002 * i]]}}
             for i, (r, m) in enumerate((("巴图", "foot"), ("斯琴", "motorbike"), ("那仁", "foot")))]
    return json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False).encode()


def test_a_layer_declared_in_a_test_works_everywhere(tracks_client, tracks_url, tmp_path):
    engine = engine_for(tracks_url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        data = _tracks_geojson(conn)
    # upload: checked against the declaration, then committed
    r = tracks_client.post("/uploads", files={"file": ("tracks.geojson", io.BytesIO(data))},
                           data={"layer": "survey_tracks"})
    assert r.status_code == 201, r.text
    assert r.json()["report"]["can_commit"], r.json()["report"]
    c = tracks_client.post(f"/uploads/{r.json()['id']}/commit")
    assert c.status_code == 200 and c.json()["report"]["written"]["inserted"] == 3, c.text
    # items: the database measured each track (≈ 0.02° of longitude ≈ 1.75 km here)
    items = tracks_client.get("/collections/survey_tracks/items").json()["features"]
    assert sorted(f["properties"]["code"] for f in items) == ["T-0", "T-1", "T-2"]
    assert all(1500 < f["properties"]["length_m"] < 2000 for f in items)
    total = sum(f["properties"]["length_m"] for f in items)
    # stats in metres and 万米
    stats = tracks_client.get("/stats/survey_tracks?by=mode").json()
    assert stats["total"]["length_m"] == pytest.approx(total, abs=0.01)
    assert {r["mode"]: r["count"] for r in stats["rows"]} == {"foot": 2, "motorbike": 1}
    # tiles: lines
    with engine.connect() as conn:
        *_, lon, lat = _point_on(conn, "survey_tracks")
    tile = tracks_client.get("/collections/survey_tracks/tiles/WebMercatorQuad/"
                             + "/".join(map(str, tile_of(lon, lat, 14))))
    assert tile.status_code == 200
    layer = mapbox_vector_tile.decode(tile.content)["survey_tracks"]
    assert {f["geometry"]["type"] for f in layer["features"]} <= {"LineString", "MultiLineString"}
    # export: a shapefile of lines with the length
    e = tracks_client.get("/export/survey_tracks?format=shp")
    assert e.status_code == 200
    with zipfile.ZipFile(io.BytesIO(e.content)) as zf:
        zf.extractall(tmp_path)
    frame = pyogrio.read_dataframe(tmp_path / "survey_tracks.shp")
    assert len(frame) == 3 and set(frame.geom_type) <= {"LineString", "MultiLineString"}
    assert "LENGTH_M" in frame.columns  # shapefile names are upper case (README: the naming rule)
    # map: the tracks drawn as lines, coloured by mode, with a line legend
    page = tracks_client.get("/maps/survey_tracks?lang=en")
    assert page.status_code == 200
    text = _decoded(page.text)
    assert "Patrol tracks" in text and "On foot" in text and "line x1=" in text


def test_the_collection_page_gives_a_length_example_for_lines(demo_client):
    page = demo_client.get("/collections/fence_lines?f=html").text
    assert "length_m &gt; 1000" in page and "area_mu" not in page
    filtered = demo_client.get("/collections/fence_lines/items?filter=length_m%20%3E%201000")
    assert filtered.status_code == 200
    assert all(f["properties"]["length_m"] > 1000 for f in filtered.json()["features"])
