"""Limits a client meets: rate, body size, export size, statement time, a database away."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from layers.settings import Settings
from tests.conftest import TEST_BASE, UNLIMITED

PROBLEM = "application/problem+json"
QUERY = {"layers": ["land_leases"], "area": {"min": 1}}


def _client(url, tmp_path, **settings) -> TestClient:
    values = {**UNLIMITED, **settings}
    return TestClient(create_app(Settings(database_url=url.render_as_string(hide_password=False),
                                          home=tmp_path, **values)), base_url=TEST_BASE,
                      raise_server_exceptions=False)


def test_expensive_routes_are_rate_limited_per_client(demo_url, tmp_path):
    with _client(demo_url, tmp_path, rate_limit_per_minute=3, tile_rate_limit_per_minute=2) as client:
        assert [client.post("/query", json=QUERY).status_code for _ in range(3)] == [200, 200, 200]
        r = client.post("/query", json=QUERY)
        assert r.status_code == 429 and r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 60
        assert client.get("/export/villages?format=csv").status_code == 429
        # cheap routes are not counted
        assert client.get("/collections/villages/items").status_code == 200
        low = "/collections/villages/tiles/WebMercatorQuad/8/203/98"
        assert [client.get(low).status_code for _ in range(3)][-1] == 429
        high = "/collections/villages/tiles/WebMercatorQuad/14/13022/6323"
        assert client.get(high).status_code in (200, 204)


def test_bodies_over_the_limit_are_413_declared_or_not(demo_url, tmp_path):
    with _client(demo_url, tmp_path, body_max_bytes=2000, upload_max_bytes=10_000) as client:
        big = {"layers": ["land_leases"], "where": {"lessee": "x" * 3000}}
        r = client.post("/query", json=big)
        assert r.status_code == 413 and r.json()["code"] == "too_large"

        def chunks():  # no Content-Length: the body is counted as it arrives
            yield b'{"layers": ["land_leases"], "where": {"lessee": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}}'

        r = client.post("/query", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
        r = client.post("/uploads", data={"layer": "caragana_plots"},
                        files={"file": ("big.geojson", b"x" * 200_000)})
        assert r.status_code == 413
        assert client.post("/query", json=QUERY).status_code == 200


def test_exports_over_the_feature_limit_are_refused(demo_url, tmp_path):
    with _client(demo_url, tmp_path, export_max_features=5) as client:
        r = client.get("/export/caragana_plots?format=csv")
        assert r.status_code == 413 and r.json()["code"] == "export_too_large"
        assert client.get("/export/villages?format=csv").status_code == 413
        r = client.post("/query?format=csv", json={"layers": ["land_leases"], "limit": 3})
        assert r.status_code == 200


def test_a_statement_past_the_time_limit_is_503_on_every_kind_of_route(demo_url, tmp_path):
    with _client(demo_url, tmp_path, query_timeout_ms=1) as client:
        place = {"layers": ["caragana_plots"], "place": {"villages": ["特布德嘎查"]}, "buffer_m": 5000}
        answers = (client.get("/conflicts/caragana_in_leases"), client.post("/query", json=place))
        for r in answers:
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "query_timeout" and r.headers["retry-after"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/collections"), ("GET", "/collections/villages/items"),
    ("GET", "/collections/villages/tiles/WebMercatorQuad/12/3315/1579"), ("POST", "/query"),
    ("GET", "/query?layers=land_leases"), ("GET", "/maps"), ("GET", "/maps/land_leases"),
    ("GET", "/stats/land_leases"), ("GET", "/conflicts/leases_overlapping"), ("GET", "/export/villages"),
])
def test_a_database_away_is_503_with_retry_after(db_url, tmp_path, method, path):
    dead = db_url.set(port=1)  # nothing listens there
    with _client(dead, tmp_path) as client:
        r = client.request(method, path, json=QUERY if method == "POST" else None)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "database_unavailable"
    assert int(r.headers["retry-after"]) > 0
    assert "password" not in r.text.lower()
