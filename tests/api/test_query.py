"""POST /query over HTTP: a FeatureCollection with its summary and map links; bad input as problems."""

from __future__ import annotations

import pytest

from tests.conftest import client_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, V1, VILLAGES, mu

township = cases.township


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home")) as c:
        yield c


def test_place_query_answers_geojson_with_summary_and_map_links(client):
    r = client.post("/query", json={"layers": ["land_leases"], "place": {"villages": [V1]},
                                    "sort": "-area_inside_mu"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    codes = [f["properties"]["code"] for f in fc["features"]]
    assert codes[-1] == "L4" and set(codes) == {"L1", "L2", "L3", "L4"}
    s = fc["summary"]["layers"]["land_leases"]
    inside = mu(LEASES["L4"][-1] & VILLAGES[V1][1]) + sum(mu(LEASES[c][-1]) for c in ("L1", "L2", "L3"))
    assert s["area_mu"] == pytest.approx(inside, rel=1e-4)
    assert s["area_wan_mu"] == pytest.approx(inside / 1e4, rel=1e-4)
    assert s["area_ha"] == pytest.approx(inside / 15, rel=1e-4)
    (link,) = fc["links"]
    ids = {f["properties"]["id"] for f in fc["features"]}
    assert {int(i) for i in link["href"].split("?ids=")[1].split(",")} == ids


def test_limit_keeps_totals_of_every_match(client):
    fc = client.post("/query", json={"layers": ["land_leases"], "limit": 1}).json()
    assert len(fc["features"]) == 1
    assert fc["summary"]["layers"]["land_leases"]["count"] == 5


@pytest.mark.parametrize("body, status, code", [
    ({"layers": ["land_leases"], "area": {"min": -1, "unit": "ha"}}, 400, "invalid_area"),
    ({"layers": ["land_leases"], "place": {"villages": ["no such"]}}, 404, "unknown_village"),
    ({"layers": ["land_leases"], "place": {"geometry": {"type": "Polygon", "coordinates": [
        [[107, 38], [107.1, 38.1], [107.1, 38], [107, 38.1], [107, 38]]]}}}, 400, "invalid_geometry"),
    ({"layers": ["parks"]}, 404, "unknown_layer"),
    ({"layers": ["land_leases"], "where": {"colour": "red"}}, 400, "unknown_property"),
    ({"layers": ["land_leases"], "where": {"purpose": "casino"}}, 400, "invalid_field_value"),
    ({"layers": ["land_leases"], "area": {"unit": "acre"}}, 400, "invalid_parameter"),
    ({"layers": ["land_leases"], "buffer_m": 100}, 400, "invalid_buffer"),
    ({"layers": ["land_leases"], "limit": 0}, 400, "invalid_limit"),
    ({"layers": ["land_leases"], "radius": 3}, 400, "invalid_parameter"),
    ({"layers": []}, 400, "invalid_layers"),
])
def test_bad_input_is_a_problem(client, body, status, code):
    r = client.post("/query", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


def test_invalid_geometry_says_where(client):
    bowtie = [[[107, 38], [107.1, 38.1], [107.1, 38], [107, 38.1], [107, 38]]]
    r = client.post("/query", json={"layers": ["land_leases"],
                                    "place": {"geometry": {"type": "Polygon", "coordinates": bowtie}}})
    assert "Self-intersection" in r.json()["reason"]


def test_whole_real_numbers_stay_real(client):
    """A rent of exactly 1000 yuan is written 1000.0, so that GDAL and QGIS type the field real."""
    r = client.post("/query", json={"layers": ["land_leases"], "limit": 1})
    assert '"annual_rent_yuan" : 1000.0' in r.text


def test_merged_codes_still_answer_their_former_names(client, demo_client):
    """/query said unknown_field, items said invalid_parameter for a bad bbox: both kept as aliases."""
    r = client.post("/query", json={"layers": ["land_leases"], "where": {"colour": "red"}})
    assert r.json()["code"] == "unknown_property" and "unknown_field" in r.json()["aliases"]
    r = demo_client.get("/collections/land_leases/items", params={"bbox": "1,2,3"})
    assert r.json()["code"] == "invalid_bbox" and "invalid_parameter" in r.json()["aliases"]
    r = demo_client.get("/collections/land_leases/items", params={"purpose": "casino"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_field_value"
    assert "solar" in r.json()["allowed"]


def test_answers_beyond_the_limit_are_paged_with_next_links(demo_client):
    """Following ``next`` (the same POST, its offset moved on) gives every match once, in order."""
    spec = {"layers": ["caragana_plots"], "sort": "-area_mu", "limit": 100}
    seen, pages, body = [], 0, spec
    while body is not None:
        r = demo_client.post("/query", json=body)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [f["properties"]["id"] for f in page["features"]]
        total = page["summary"]["layers"]["caragana_plots"]["count"]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        body = nxt[0]["body"] if nxt else None
        if nxt:
            assert nxt[0]["method"] == "POST" and nxt[0]["href"].endswith("/query")
        pages += 1
    assert len(seen) == total == len(set(seen)) and pages == -(-total // 100)
    areas = [demo_client.get(f"/collections/caragana_plots/items/{i}").json()["properties"]["area_mu"]
             for i in seen[95:105]]
    assert areas == sorted(areas, reverse=True)  # the order holds across the page boundary
    assert demo_client.post("/query", json={**spec, "offset": -1}).status_code == 400
    assert demo_client.post("/query", json={**spec, "offset": 10**12}).status_code == 400
