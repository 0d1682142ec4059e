"""CQL2 filters (text and JSON) on the demo township, checked against SQL written by hand."""

from __future__ import annotations

import json

import pyproj
import pytest
import sqlalchemy as sa

from layers.store.database import engine_for

ITEMS = "/collections/caragana_plots/items"


@pytest.fixture(scope="module")
def db(demo_url):
    return engine_for(demo_url.render_as_string(hide_password=False))


def _count(db, where: str, table: str = "caragana_plots", **params) -> int:
    with db.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"), params).scalar()


def _matched(client, cql, lang=None, path=ITEMS, **params) -> dict:
    query = {"filter": cql if isinstance(cql, str) else json.dumps(cql), "limit": 10000, **params}
    if lang:
        query["filter-lang"] = lang
    res = client.get(path, params=query)
    assert res.status_code == 200, res.text
    return res.json()


@pytest.fixture(scope="module")
def village(db) -> str:
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT village_code FROM caragana_plots GROUP BY 1 "
                                    "ORDER BY count(*) DESC LIMIT 1")).scalar()


def test_a_planners_question_is_one_request(demo_client, db, village):
    """Parcels over 30 亩 in one village: text and JSON give the same answer as SQL."""
    expected = _count(db, "area_mu > 30 AND village_code = :v", v=village)
    assert expected > 0
    text = _matched(demo_client, f"area_mu > 30 AND village_code = '{village}'")
    as_json = _matched(demo_client, {"op": "and", "args": [
        {"op": ">", "args": [{"property": "area_mu"}, 30]},
        {"op": "=", "args": [{"property": "village_code"}, village]}]}, lang="cql2-json")
    assert text["numberMatched"] == as_json["numberMatched"] == expected
    assert all(f["properties"]["area_mu"] > 30 for f in text["features"])


def test_area_in_square_metres(demo_client, db):
    assert _matched(demo_client, "area_m2 >= 20000")["numberMatched"] == _count(db, "area_m2 >= 20000")


@pytest.mark.parametrize(("cql", "where"), [
    ("area_mu BETWEEN 10 AND 20", "area_mu BETWEEN 10 AND 20"),
    ("area_mu NOT BETWEEN 10 AND 20", "NOT area_mu BETWEEN 10 AND 20"),
    ("method IN ('enclosure', 'replacement')", "method IN ('enclosure', 'replacement')"),
    ("method NOT IN ('enclosure')", "method <> 'enclosure'"),
    ("code LIKE 'NT-2018-%'", "code LIKE 'NT-2018-%'"),
    ("contractor LIKE '%合作社'", "contractor LIKE '%合作社'"),
    ("NOT (planted_year >= 2018) OR survival_rate < 0.6", "NOT planted_year >= 2018 OR survival_rate < 0.6"),
    ("note IS NULL", "note IS NULL"),
    ("inspected_on IS NOT NULL AND inspected_on < DATE('2019-06-01')", "inspected_on < '2019-06-01'"),
    ("inspected_on >= TIMESTAMP('2020-01-01T00:00:00Z')", "inspected_on >= '2020-01-01'"),
    ("CASEI(method) = CASEI('ENCLOSURE')", "method = 'enclosure'"),
    ("seedlings / area_mu > 100", "seedlings / area_mu > 100"),
    ("planted_year <> 2018", "planted_year <> 2018"),
])
def test_operators_match_sql(demo_client, db, cql, where):
    assert _matched(demo_client, cql)["numberMatched"] == _count(db, where)


def test_json_operators(demo_client, db):
    cql = {"op": "or", "args": [
        {"op": "between", "args": [{"property": "area_mu"}, 10, 20]},
        {"op": "not", "args": [{"op": "like", "args": [{"property": "code"}, "NT-201%"]}]},
        {"op": "in", "args": [{"property": "planted_year"}, [2016, 2017]]},
    ]}
    where = "area_mu BETWEEN 10 AND 20 OR code NOT LIKE 'NT-201%' OR planted_year IN (2016, 2017)"
    assert _matched(demo_client, cql)["numberMatched"] == _count(db, where)


def test_spatial_predicates(demo_client, db):
    poly = "POLYGON((107.1 38.1, 107.3 38.1, 107.3 38.3, 107.1 38.3, 107.1 38.1))"
    wkt = "ST_GeomFromText(:p, 4326)"
    inter = _matched(demo_client, f"S_INTERSECTS(geometry, {poly})")
    assert inter["numberMatched"] == _count(db, f"ST_Intersects(geom, {wkt})", p=poly) > 0
    within = _matched(demo_client, f"S_WITHIN(geometry, {poly})")
    assert within["numberMatched"] == _count(db, f"ST_Within(geom, {wkt})", p=poly)
    assert within["numberMatched"] <= inter["numberMatched"]
    env = _matched(demo_client, "S_INTERSECTS(geometry, ENVELOPE(107.1 38.1 107.3 38.3))")
    assert env["numberMatched"] == inter["numberMatched"]
    as_json = _matched(demo_client, {"op": "s_intersects", "args": [
        {"property": "geometry"},
        {"type": "Polygon", "coordinates": [[[107.1, 38.1], [107.3, 38.1], [107.3, 38.3], [107.1, 38.3],
                                             [107.1, 38.1]]]}]})
    assert as_json["numberMatched"] == inter["numberMatched"]


def test_s_dwithin_in_metres(demo_client, db):
    with db.connect() as conn:
        fid, x, y = conn.execute(sa.text(
            "SELECT id, ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface(geom) p FROM caragana_plots "
            "ORDER BY id LIMIT 1) s")).one()
    near = _matched(demo_client, f"S_DWITHIN(geometry, POINT({x} {y}), 2, kilometers)")
    expected = _count(db, "ST_DWithin(geom::geography, "
                      "ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography, 2000)", x=x, y=y)
    assert fid in {f["id"] for f in near["features"]}
    assert near["numberMatched"] == expected > 1
    as_json = _matched(demo_client, {"op": "s_dwithin", "args": [
        {"property": "geometry"}, {"type": "Point", "coordinates": [x, y]}, 2000]})
    assert as_json["numberMatched"] == expected


def test_filter_geometry_in_gauss_kruger(demo_client, db):
    to_gk = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:4545", always_xy=True)
    (e0, e1), (n0, n1) = to_gk.transform([107.1, 107.3], [38.1, 38.3])
    poly = f"POLYGON(({n0} {e0}, {n0} {e1}, {n1} {e1}, {n1} {e0}, {n0} {e0}))"  # northing, easting
    body = _matched(demo_client, f"S_INTERSECTS(geometry, {poly})",
                    **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4545"})
    expected = _count(db, "ST_Intersects(ST_Transform(geom, 4545), "
                      "ST_MakeEnvelope(:e0, :n0, :e1, :n1, 4545))", e0=e0, n0=n0, e1=e1, n1=n1)
    assert body["numberMatched"] == expected


def test_filter_with_other_parameters(demo_client, db):
    body = _matched(demo_client, "area_mu > 20", bbox="107.1,38.1,107.3,38.3", sortby="-area_mu",
                    method="enclosure")
    expected = _count(db, "area_mu > 20 AND method = 'enclosure' AND ST_Intersects(geom, "
                      "ST_MakeEnvelope(107.1, 38.1, 107.3, 38.3, 4326))")
    assert body["numberMatched"] == expected
    areas = [f["properties"]["area_mu"] for f in body["features"]]
    assert areas == sorted(areas, reverse=True)


def test_filter_on_every_layer(demo_client):
    for layer, cql in (("villages", "name LIKE '%嘎查'"), ("subsidence_zones", "households_total >= 0"),
                       ("grazing_bans", "regime = 'full_ban'"), ("land_leases", "purpose = 'solar'")):
        body = _matched(demo_client, cql, path=f"/collections/{layer}/items")
        assert body["numberMatched"] > 0, layer


# --- errors ------------------------------------------------------------------------------------

def _problem(client, cql, **params):
    res = client.get(ITEMS, params={"filter": cql, **params})
    assert res.status_code == 400, res.text
    assert res.headers["content-type"] == "application/problem+json"
    return res.json()


def test_syntax_error_says_where(demo_client):
    body = _problem(demo_client, "area_mu >> 100")
    assert body["code"] == "invalid_filter"
    assert body["position"] == 9 and body["column"] == 10
    assert "area_mu >> 100"[body["position"]] == ">"
    unclosed = _problem(demo_client, "area_mu > 1 AND (")
    assert unclosed["position"] == len("area_mu > 1 AND (") - 1 or unclosed["position"] >= 15


def test_unknown_property_says_where(demo_client):
    body = _problem(demo_client, "area_mu > 1 AND colour = 'red'")
    assert body["code"] == "invalid_filter" and body["position"] == 16
    assert "colour" in body["detail"] and "planted_year" in body["detail"]


@pytest.mark.parametrize("cql", [
    "planted_year = 'last year'",
    "code > 5",
    "inspected_on > 'not a date'",
    "area_mu LIKE '1%'",
    "S_INTERSECTS(code, POINT(1 2))",
    "S_DWITHIN(geometry, POINT(107 38), 5, parsecs)",
    "geometry = 1",
    "unknownfn(code) = 'a'",
    "",
    "   ",
])
def test_meaningless_filters_are_400(demo_client, cql):
    assert _problem(demo_client, cql)["code"] == "invalid_filter"


def test_json_errors(demo_client):
    bad_json = _problem(demo_client, '{"op": "=", "args": [', **{"filter-lang": "cql2-json"})
    assert bad_json["code"] == "invalid_filter" and bad_json["position"] == 21
    assert _problem(demo_client, '{"op": "frobnicate", "args": []}')["code"] == "invalid_filter"
    assert _problem(demo_client, '{"op": "and", "args": 3}')["code"] == "invalid_filter"
    assert _problem(demo_client, '[1, 2]', **{"filter-lang": "cql2-json"})["code"] == "invalid_filter"


def test_filter_lang_and_crs_are_checked(demo_client):
    assert demo_client.get(ITEMS, params={"filter": "area_mu > 1", "filter-lang": "ecql"}).status_code == 400
    res = demo_client.get(ITEMS, params={"filter": "area_mu > 1", "filter-crs": "EPSG:3857"})
    assert res.status_code == 400 and res.json()["code"] == "unsupported_crs"


def test_injection_is_only_a_value(demo_client):
    body = _matched(demo_client, "code = 'x''; DROP TABLE caragana_plots; --'")
    assert body["numberMatched"] == 0
    assert _problem(demo_client, '"code; DROP TABLE caragana_plots" = 1')["code"] == "invalid_filter"
    assert demo_client.get(ITEMS, params={"limit": 1}).json()["numberReturned"] == 1
