"""OGC API – Features over the demo township: documents, every items parameter, CRS, HTML, errors."""

from __future__ import annotations

import re

import pyproj
import pytest
import sqlalchemy as sa
from shapely.geometry import box, shape

from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for

ITEMS = "/collections/caragana_plots/items"


@pytest.fixture(scope="module")
def db(demo_url):
    return engine_for(demo_url.render_as_string(hide_password=False))


def _scalar(db, sql, **params):
    with db.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _json(client, path, **params):
    res = client.get(path, params=params)
    assert res.status_code == 200, res.text
    return res.json()


# --- documents ---------------------------------------------------------------------------------

def test_landing_links_the_ogc_documents(demo_client):
    body = _json(demo_client, "/")
    rels = {link["rel"]: link["href"] for link in body["links"]}
    for rel in ("conformance", "data", "service-desc", "service-doc"):
        assert rel in rels
    assert demo_client.get(rels["data"]).json()["collections"]


def test_conformance_declares_core_geojson_crs_and_filter(demo_client):
    classes = _json(demo_client, "/conformance")["conformsTo"]
    for part in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                 "ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter",
                 "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/cql2-json"):
        assert any(c.endswith(part) for c in classes), part


def test_collections_list_every_layer_with_extent_and_titles(demo_client, db):
    body = _json(demo_client, "/collections")
    by_id = {c["id"]: c for c in body["collections"]}
    assert set(by_id) == set(LAYERS)
    leases = by_id["land_leases"]
    assert leases["title"] == "土地租赁" and leases["x-title-en"] == "Land leases"
    x0, y0, x1, y1 = leases["extent"]["spatial"]["bbox"][0]
    assert 106 < x0 < x1 < 108 and 37 < y0 < y1 < 39
    first = _scalar(db, "SELECT min(start_date)::text FROM land_leases")
    assert leases["extent"]["temporal"]["interval"][0][0].startswith(first)
    assert "http://www.opengis.net/def/crs/EPSG/0/4545" in leases["crs"]
    rels = {link["rel"]: link["href"] for link in leases["links"]}
    assert {"self", "items", "http://www.opengis.net/def/rel/ogc/1.0/queryables"} <= set(rels)
    tiles = demo_client.get(rels["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"])
    assert tiles.status_code == 200
    en = _json(demo_client, "/collections/land_leases", lang="en")
    assert en["title"] == "Land leases"


def test_queryables_are_a_json_schema_of_the_layer_fields(demo_client):
    res = demo_client.get("/collections/land_leases/queryables")
    assert res.headers["content-type"].startswith("application/schema+json")
    props = res.json()["properties"]
    assert props["geometry"]["format"] == "geometry-multipolygon"
    assert props["area_mu"]["type"] == "number"
    assert props["start_date"] == {**props["start_date"], "type": "string", "format": "date"}
    assert "solar" in props["purpose"]["enum"] and props["purpose"]["title"] == "用途"


def test_unknown_collection_is_a_404_problem(demo_client):
    res = demo_client.get("/collections/nope/items")
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["code"] == "unknown_layer"


# --- items ---------------------------------------------------------------------------------------

def test_items_default_page_and_counts(demo_client, db):
    res = demo_client.get(ITEMS)
    assert res.headers["content-type"] == "application/geo+json"
    assert res.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    body = res.json()
    total = _scalar(db, "SELECT count(*) FROM caragana_plots")
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == total and body["numberReturned"] == len(body["features"]) == 100
    feature = body["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert {"code", "village_code", "area_mu", "area_m2", "planted_year"} <= set(feature["properties"])


def test_paging_follows_next_links_to_the_last_feature(demo_client, db):
    total = _scalar(db, "SELECT count(*) FROM caragana_plots")
    ids, url, pages = [], f"{ITEMS}?limit=97", 0
    while url:
        body = demo_client.get(url).json()
        ids += [f["id"] for f in body["features"]]
        links = {link["rel"]: link["href"] for link in body["links"]}
        assert ("prev" in links) == (pages > 0)
        url, pages = links.get("next"), pages + 1
    assert len(ids) == len(set(ids)) == total
    assert pages == -(-total // 97)
    last = demo_client.get(ITEMS, params={"limit": 97, "offset": total}).json()
    assert last["features"] == [] and last["numberMatched"] == total


def test_limit_is_capped_and_checked(demo_client):
    assert len(_json(demo_client, ITEMS, limit=100000)["features"]) <= 10000
    for bad in ("0", "-1", "many"):
        res = demo_client.get(ITEMS, params={"limit": bad})
        assert res.status_code == 400 and res.json()["code"] == "invalid_parameter"


def test_bbox_returns_exactly_the_intersecting_features(demo_client, db):
    bbox = (107.1, 38.1, 107.3, 38.3)
    body = _json(demo_client, ITEMS, bbox=",".join(map(str, bbox)), limit=10000)
    expected = _scalar(db, "SELECT count(*) FROM caragana_plots WHERE ST_Intersects(geom, "
                       "ST_MakeEnvelope(107.1, 38.1, 107.3, 38.3, 4326))")
    assert 0 < body["numberMatched"] == len(body["features"]) == expected
    assert all(shape(f["geometry"]).intersects(box(*bbox)) for f in body["features"])
    latlon = _json(demo_client, ITEMS, bbox="38.1,107.1,38.3,107.3", limit=10000,
                   **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert latlon["numberMatched"] == expected


def test_bbox_in_gauss_kruger_metres(demo_client, db):
    to_gk = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:4545", always_xy=True)
    (e0, e1), (n0, n1) = to_gk.transform([107.1, 107.3], [38.1, 38.3])
    # EPSG:4545 is northing first
    body = _json(demo_client, ITEMS, bbox=f"{n0},{e0},{n1},{e1}", limit=10000,
                 **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4545"})
    expected = _scalar(db, "SELECT count(*) FROM caragana_plots WHERE ST_Intersects(ST_Transform(geom, 4545),"
                       " ST_MakeEnvelope(:e0, :n0, :e1, :n1, 4545))", e0=e0, n0=n0, e1=e1, n1=n1)
    assert abs(body["numberMatched"] - expected) <= 1  # edges densified, not exact lines


@pytest.mark.parametrize("epsg", [4326, 4490, 4545])
def test_crs_round_trip_against_pyproj(demo_client, epsg):
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    plain = _json(demo_client, ITEMS, limit=5)
    res = demo_client.get(ITEMS, params={"limit": 5, "crs": uri})
    assert res.headers["content-crs"] == f"<{uri}>"
    back = pyproj.Transformer.from_crs(f"EPSG:{epsg}", "OGC:CRS84")  # authority axis order in
    for a, b in zip(plain["features"], res.json()["features"], strict=True):
        ring_a = a["geometry"]["coordinates"][0][0]
        ring_b = b["geometry"]["coordinates"][0][0]
        for (lon, lat), (u, v) in zip(ring_a, ring_b, strict=True):
            lon2, lat2 = back.transform(u, v)
            assert abs(lon2 - lon) < 1e-6 and abs(lat2 - lat) < 1e-6


def test_one_feature_in_another_crs(demo_client):
    fid = _json(demo_client, ITEMS, limit=1)["features"][0]["id"]
    res = demo_client.get(f"{ITEMS}/{fid}", params={"crs": "EPSG:4545"})
    assert res.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4545>"
    northing, easting = res.json()["geometry"]["coordinates"][0][0][0]
    assert 4_000_000 < northing < 4_400_000 and 400_000 < easting < 600_000


def test_unsupported_crs_is_a_400(demo_client):
    for params in ({"crs": "EPSG:3857"}, {"bbox-crs": "nonsense", "bbox": "1,2,3,4"}):
        res = demo_client.get(ITEMS, params=params)
        assert res.status_code == 400 and res.json()["code"] == "unsupported_crs"


def test_datetime_against_a_lease_term(demo_client, db):
    body = _json(demo_client, "/collections/land_leases/items", datetime="2021-06-01", limit=10000)
    expected = _scalar(db, "SELECT count(*) FROM land_leases WHERE (start_date IS NULL OR start_date <= "
                       "'2021-06-01') AND (end_date IS NULL OR end_date >= '2021-06-01')")
    assert body["numberMatched"] == expected > 0
    for f in body["features"]:
        p = f["properties"]
        assert (p["start_date"] or "0") <= "2021-06-01" <= (p["end_date"] or "9")
    later = _json(demo_client, "/collections/land_leases/items", datetime="2030-01-01T00:00:00Z/..")
    assert later["numberMatched"] == _scalar(
        db, "SELECT count(*) FROM land_leases WHERE end_date IS NULL OR end_date >= '2030-01-01'")


def test_datetime_against_an_inspection_date(demo_client, db):
    body = _json(demo_client, ITEMS, datetime="2019-01-01/2019-12-31", limit=10000)
    assert body["numberMatched"] == _scalar(
        db, "SELECT count(*) FROM caragana_plots WHERE inspected_on BETWEEN '2019-01-01' AND '2019-12-31'")
    assert all(f["properties"]["inspected_on"].startswith("2019") for f in body["features"])


def test_datetime_errors(demo_client):
    for params, code in (({"datetime": "yesterday"}, "invalid_parameter"),
                         ({"datetime": "2022-01-01/2021-01-01"}, "invalid_parameter"),
                         ({"datetime": "2022-01-01/2023-01-01/2024-01-01"}, "invalid_parameter")):
        res = demo_client.get(ITEMS, params=params)
        assert res.status_code == 400 and res.json()["code"] == code
    res = demo_client.get("/collections/villages/items", params={"datetime": "2022-01-01"})
    assert res.status_code == 400 and res.json()["code"] == "datetime_not_supported"


def test_equality_on_queryables(demo_client, db):
    body = _json(demo_client, ITEMS, method="enclosure", planted_year=2018, limit=10000)
    assert body["numberMatched"] == _scalar(
        db, "SELECT count(*) FROM caragana_plots WHERE method = 'enclosure' AND planted_year = 2018")
    assert {(f["properties"]["method"], f["properties"]["planted_year"]) for f in body["features"]} \
        <= {("enclosure", 2018)}
    res = demo_client.get(ITEMS, params={"planted_year": "last"})
    assert res.status_code == 400 and res.json()["parameter"] == "planted_year"


def test_sortby(demo_client):
    areas = [f["properties"]["area_mu"] for f in _json(demo_client, ITEMS, sortby="-area_mu")["features"]]
    assert areas == sorted(areas, reverse=True)
    body = _json(demo_client, ITEMS, sortby="+planted_year,-area_mu", limit=1000)
    keys = [(f["properties"]["planted_year"], -f["properties"]["area_mu"]) for f in body["features"]]
    assert keys == sorted(keys)
    res = demo_client.get(ITEMS, params={"sortby": "colour"})
    assert res.status_code == 400 and res.json()["code"] == "unknown_property"


def test_properties_and_skip_geometry(demo_client):
    body = _json(demo_client, ITEMS, properties="code,area_mu", skipGeometry="true", limit=3)
    for f in body["features"]:
        assert set(f["properties"]) == {"code", "area_mu"}
        assert f["geometry"] is None
    assert _json(demo_client, ITEMS, properties="", limit=1)["features"][0]["properties"] == {}
    res = demo_client.get(ITEMS, params={"properties": "code,shoe_size"})
    assert res.status_code == 400 and res.json()["property"] == "shoe_size"
    assert demo_client.get(ITEMS, params={"skipGeometry": "maybe"}).status_code == 400


def test_bad_input_is_a_4xx_never_a_500(demo_client):
    for params in ({"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"bbox": "1,5,3,4"}, {"offset": "-3"},
                   {"colour": "red"}, {"filter-lang": "cql2-text"}, {"f": "xml"},
                   {"limit": ["1", "2"]}, {"filter-lang": "sql", "filter": "a=1"}):
        res = demo_client.get(ITEMS, params=params)
        assert res.status_code == 400, (params, res.text)
        assert res.headers["content-type"] == "application/problem+json"
    assert demo_client.get(f"{ITEMS}/999999999").status_code == 404
    assert demo_client.get(f"{ITEMS}/abc").json()["code"] == "feature_not_found"
    assert demo_client.get(f"{ITEMS}/99999999999999999999999").status_code == 404


def test_one_feature_links_and_etag(demo_client):
    first = _json(demo_client, ITEMS, limit=1)["features"][0]
    res = demo_client.get(f"{ITEMS}/{first['id']}")
    body = res.json()
    assert body["type"] == "Feature" and body["properties"] == first["properties"]
    assert {link["rel"] for link in body["links"]} >= {"self", "collection"}
    again = demo_client.get(f"{ITEMS}/{first['id']}", headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304


def test_items_etag_and_cache_control(demo_client):
    res = demo_client.get(ITEMS, params={"limit": 50})
    assert res.headers["cache-control"] and res.headers["etag"]
    again = demo_client.get(ITEMS, params={"limit": 50}, headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = demo_client.get(ITEMS, params={"limit": 51}, headers={"If-None-Match": res.headers["etag"]})
    assert other.status_code == 200


def test_items_are_gzipped_for_clients_that_ask(demo_client):
    res = demo_client.get(ITEMS, params={"limit": 200}, headers={"Accept-Encoding": "gzip"})
    assert res.headers.get("content-encoding") == "gzip"
    assert len(res.json()["features"]) == 200


def test_chinese_text_is_intact(demo_client, db):
    body = _json(demo_client, ITEMS, limit=1000)
    names = {f["properties"]["contractor"] for f in body["features"]} - {None}
    stored = {r[0] for r in db.connect().execute(sa.text("SELECT DISTINCT contractor FROM caragana_plots"))}
    assert names and names <= stored
    assert any(re.search("[\u4e00-\u9fff]", n) for n in names)


# --- HTML ----------------------------------------------------------------------------------------

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_browser_gets_the_home_page_in_chinese(demo_client):
    res = demo_client.get("/", headers=BROWSER)
    assert res.headers["content-type"].startswith("text/html")
    for href in ('/maps"', '/uploads"', '/query"', "/collections?f=html", '/api.html"'):
        assert href in res.text, href
    assert "地图" in res.text and "土地与生态" in res.text
    en = demo_client.get("/", params={"lang": "en"}, headers=BROWSER).text
    assert "Maps" in en and "/maps?lang=en" in en


@pytest.mark.parametrize(("accept", "html"), [
    (BROWSER["Accept"], True),
    ("application/geo+json, application/json", False),
    ("application/json, text/html;q=0.9", False),
    ("text/html;q=0.5, application/json;q=0.4", True),
    ("*/*", False),
    ("", False),
])
def test_content_negotiation(demo_client, accept, html):
    res = demo_client.get(ITEMS, params={"limit": 1}, headers={"Accept": accept})
    assert res.headers["content-type"].startswith("text/html" if html else "application/geo+json")


def test_html_collections_and_items_pages(demo_client):
    page = demo_client.get("/collections", headers=BROWSER).text
    for layer in LAYERS.values():
        assert layer.zh in page
    items = demo_client.get(ITEMS, params={"limit": 20, "lang": "zh"}, headers=BROWSER)
    assert items.headers["content-type"].startswith("text/html")
    text = items.text
    assert "苗木成活率" in text and "下一页" in text and "柠条" in text
    assert "/static/vendor/leaflet/leaflet.js" in text
    assert not re.search(r"(src|href)=\"https?://(?!localhost)", text)
    en = demo_client.get(ITEMS, params={"f": "html", "lang": "en", "limit": 5}).text
    assert "Survival rate" in en and "Next" in en
    assert demo_client.get("/collections/land_leases", params={"f": "html"}).text.count("承租方") >= 1
    assert "core" in demo_client.get("/conformance", params={"f": "html"}).text


def test_html_items_page_shows_choice_labels(demo_client):
    text = demo_client.get(ITEMS, params={"f": "html", "method": "enclosure", "limit": 5}).text
    assert "划区围封" in text


def test_html_items_page_says_what_is_wrong_with_a_filter(demo_client):
    res = demo_client.get(ITEMS, params={"f": "html", "filter": "area_mu >> 20"})
    assert res.status_code == 400 and res.headers["content-type"].startswith("text/html")
    assert "这个查询有问题" in res.text and "column 10" in res.text
    assert '<code class="problem-at">area_mu &gt;<mark>&gt;</mark> 20</code>' in res.text
    assert 'value="area_mu &gt;&gt; 20"' in res.text  # the form keeps what was typed
    assert demo_client.get(ITEMS, params={"filter": "area_mu >> 20"}).headers["content-type"] == \
        "application/problem+json"


def test_html_items_page_filters_and_sorts(demo_client):
    page = demo_client.get(ITEMS, params={"f": "html", "filter": "area_mu > 20", "sortby": "-area_mu"}).text
    assert 'name="filter"' in page and 'value="area_mu &gt; 20"' in page
    assert "?filter=area_mu+%3E+20&amp;f=html&amp;sortby=area_mu" in page  # click again: ascending
    assert "面积（亩）</a> ↓" in page


def test_api_definition_documents_the_items_parameters(demo_client):
    api = demo_client.get("/api").json()
    params = {p["name"] for p in api["paths"]["/collections/{collection_id}/items"]["get"]["parameters"]}
    assert {"bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang", "sortby", "properties",
            "skipGeometry", "limit", "offset"} <= params


def test_database_down_is_a_503(db_url, tmp_path):
    with client_for(db_url.set(port=1), tmp_path, surveyor=False) as client:  # nothing listens there
        res = client.get(ITEMS)
    assert res.status_code == 503 and res.json()["code"] == "database_unavailable"


@pytest.mark.parametrize("size", [0, 5, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 7])
def test_streamed_body_is_the_head_the_features_and_the_tail(size):
    import asyncio

    from api.features import FeaturesResponse

    async def parts():
        return [chunk async for chunk in FeaturesResponse._parts(b"[", b"x" * size, b"]")]

    chunks = asyncio.run(parts())
    assert b"".join(chunks) == b"[" + b"x" * size + b"]"
    assert len(chunks) == max(1, -(-size // (1024 * 1024)))
