"""Operations: one JSON access line per request without secrets, /metrics, /health without versions."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.observability import ACCESS_LOGGER
from layers.settings import Settings
from tests.conftest import TEST_BASE, surveyor_headers

SECRET = "s3cr3t-value-9f2c"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines():
    handler = _Lines()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def client(demo_url, tmp_path):
    app = create_app(Settings(database_url=demo_url.render_as_string(hide_password=False), home=tmp_path,
                              public_metrics=True))
    with TestClient(app, base_url=TEST_BASE, headers=surveyor_headers(demo_url)) as test_client:
        yield test_client


def test_a_request_is_one_json_line_with_the_route_template(client, access_lines):
    res = client.get("/collections/caragana_plots/items?limit=3", headers={"Accept-Encoding": "identity"})
    assert res.status_code == 200
    assert len(access_lines) == 1
    line = json.loads(access_lines[0])
    assert line["method"] == "GET"
    assert line["route"] == "/collections/{collection_id}/items"
    assert line["status"] == 200
    assert line["bytes"] == len(res.content)
    assert 0 < line["duration_ms"] < 60_000
    assert line["client"] == "testclient"


def test_upload_id_is_logged_and_an_unknown_path_is_not(client, access_lines):
    upload_id = "0" * 32
    assert client.get(f"/uploads/{upload_id}").status_code == 404
    client.get("/no/such/thing/abc123")
    first, second = (json.loads(line) for line in access_lines)
    assert first["route"] == "/uploads/{upload_id}" and first["upload_id"] == upload_id
    assert first["status"] == 404
    assert second["route"] == "<unmatched>" and "abc123" not in access_lines[1]


def test_no_secret_reaches_the_log(client, access_lines):
    client.get(f"/collections/caragana_plots/items?limit=1&tk={SECRET}&token={SECRET}&key={SECRET}",
               headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"})
    assert len(access_lines) == 1
    assert SECRET not in access_lines[0]
    assert "Bearer" not in access_lines[0] and "session" not in access_lines[0]


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


def test_metrics_count_requests_and_latency_by_route_and_show_the_pool(client):
    for _ in range(3):
        assert client.get("/collections/caragana_plots/items?limit=2").status_code == 200
    assert client.get("/collections/no_such_layer/items").status_code == 404
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain")
    text = res.text
    route = "/collections/{collection_id}/items"
    assert _sample(text, "landeco_http_requests_total", route=route, method="GET", status="200") == 3
    assert _sample(text, "landeco_http_requests_total", route=route, method="GET", status="404") == 1
    assert _sample(text, "landeco_http_request_duration_seconds_count", route=route) == 4
    assert _sample(text, "landeco_http_request_duration_seconds_bucket", route=route, le="+Inf") == 4
    assert _sample(text, "landeco_db_pool_size") == client.app.state.engine.pool.size()
    assert _sample(text, "landeco_db_pool_checked_out") == 0  # every request gave its connection back


def test_metrics_count_uploads_by_state(new_database, tmp_path):
    geojson = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": "OBS-1", "planted_year": 2020, "method": "enclosure"},
        "geometry": {"type": "Polygon", "coordinates": [[[107.30, 38.40], [107.301, 38.40], [107.301, 38.401],
                                                         [107.30, 38.401], [107.30, 38.40]]]}}]}
    with new_database("landeco_test_metrics") as url, TestClient(create_app(Settings(
            database_url=url.render_as_string(hide_password=False), home=tmp_path, public_metrics=True)),
            base_url=TEST_BASE, headers=surveyor_headers(url)) as client:
        assert _sample(client.get("/metrics").text, "landeco_uploads", state="checked") == 0
        res = client.post("/uploads", files={"file": ("one.geojson", json.dumps(geojson).encode())},
                          data={"layer": "caragana_plots"})
        assert res.status_code == 201, res.text
        assert _sample(client.get("/metrics").text, "landeco_uploads", state="checked") == 1


def test_two_apps_have_their_own_metrics(demo_url, tmp_path):
    settings = Settings(database_url=demo_url.render_as_string(hide_password=False), home=tmp_path,
                        public_metrics=True)
    with TestClient(create_app(settings), base_url=TEST_BASE) as a, \
            TestClient(create_app(settings), base_url=TEST_BASE) as b:
        a.get("/conformance")
        assert _sample(a.get("/metrics").text, "landeco_http_requests_total", route="/conformance") == 1
        assert _sample(b.get("/metrics").text, "landeco_http_requests_total", route="/conformance") is None


def test_health_shows_no_versions(client):
    res = client.get("/health")
    assert res.status_code == 200
    body = res.json()
    assert body["status"] == "ok" and body["features"]["caragana_plots"] > 0
    assert "PostgreSQL" not in res.text and "postgis" not in res.text.lower()
    assert "database" not in body


def test_health_is_503_with_retry_after_when_the_database_is_away(db_url, tmp_path):
    dead = db_url.set(port=1)  # nothing listens there
    app = create_app(Settings(database_url=dead.render_as_string(hide_password=False), home=tmp_path))
    with TestClient(app, base_url=TEST_BASE) as test_client:
        res = test_client.get("/health")
    assert res.status_code == 503
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["code"] == "database_unavailable"
    assert int(res.headers["Retry-After"]) > 0
