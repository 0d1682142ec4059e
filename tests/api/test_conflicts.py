"""GET /conflicts lists the checks in Chinese and English; each check answers GeoJSON pieces."""

from __future__ import annotations

import pytest

from tests.conftest import client_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, mu

township = cases.township


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home")) as c:
        yield c


def test_checks_are_listed_with_titles(client):
    checks = client.get("/conflicts").json()["checks"]
    assert {c["id"] for c in checks} >= {"leases_on_subsidence", "leases_in_grazing_bans",
                                         "leases_overlapping", "caragana_in_leases", "outside_village"}
    assert all(c["title_zh"] and c["title_en"] and c["href"].endswith(c["id"]) for c in checks)


def test_a_check_answers_pieces_and_map_links(client):
    r = client.get("/conflicts/leases_overlapping?on=2026-11-01")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    (f,) = fc["features"]
    p = f["properties"]
    assert (p["a_code"], p["b_code"]) == ("L1", "L2")
    assert p["a_layer"] == p["b_layer"] == "land_leases"
    assert p["overlap_mu"] == pytest.approx(mu(LEASES["L1"][-1] & LEASES["L2"][-1]), rel=1e-4)
    assert fc["summary"]["title_zh"] == "租赁地块相互重叠"
    assert fc["links"][0]["href"].startswith("http://localhost/maps/land_leases?ids=")


@pytest.mark.parametrize("url, status, code", [
    ("/conflicts/nothing", 404, "unknown_check"),
    ("/conflicts/leases_overlapping?village=0", 404, "unknown_village"),
    ("/conflicts/leases_overlapping?on=yesterday", 400, "invalid_parameter"),
])
def test_bad_check_requests(client, url, status, code):
    r = client.get(url)
    assert r.status_code == status and r.json()["code"] == code
