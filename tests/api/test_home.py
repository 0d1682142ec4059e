"""The first look: the landing document and the health check."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from layers.settings import Settings
from tests.conftest import TEST_BASE

LANDECO = Path(sys.executable).with_name("landeco")


def _url_text(url):
    return url.render_as_string(hide_password=False)


@pytest.fixture
def client(db_url, tmp_path):
    app = create_app(Settings(database_url=_url_text(db_url), home=tmp_path / "unused"))
    with TestClient(app, base_url=TEST_BASE) as test_client:
        yield test_client


def test_landing_lists_the_layers_and_links(client):
    res = client.get("/")
    assert res.status_code == 200
    body = res.json()
    assert {layer["id"] for layer in body["layers"]} == {
        "villages", "subsidence_zones", "grazing_bans", "caragana_plots", "land_leases",
        "fence_lines", "eco_projects", "watersheds", "change_patches"}
    assert "采煤沉陷区" in {layer["title"] for layer in body["layers"]}
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert rels["service-desc"].endswith("/api")
    assert client.get(rels["service-desc"]).json()["info"]["title"] == "landeco"


def test_health_reports_the_database(client, db_url):
    res = client.get("/health")
    assert res.status_code == 200
    body = res.json()
    assert body["status"] == "ok"
    assert "database" not in body  # no server versions for anonymous callers
    assert body["schema_revision"]
    assert set(body["features"]) >= {"villages", "land_leases"}


def test_health_says_when_the_schema_is_not_migrated(empty_db_url, tmp_path):
    app = create_app(Settings(database_url=_url_text(empty_db_url), home=tmp_path))
    with TestClient(app, base_url=TEST_BASE) as test_client:
        res = test_client.get("/health")
    assert res.status_code == 503
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["code"] == "schema_not_migrated"


def test_health_says_when_the_database_is_down(db_url, tmp_path):
    dead = db_url.set(port=1)  # nothing listens there
    app = create_app(Settings(database_url=_url_text(dead), home=tmp_path))
    with TestClient(app, base_url=TEST_BASE) as test_client:
        res = test_client.get("/health")
    assert res.status_code == 503
    assert res.json()["code"] == "database_unavailable"
    assert "password" not in res.text.lower()


def test_unknown_path_is_a_problem(client):
    res = client.get("/no/such/thing")
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["code"] == "not_found"


def test_landeco_database_url_is_honoured(db_url, tmp_path):
    """With the variable set, landeco uses that server and creates no cluster."""
    home = tmp_path / "home"
    env = {**os.environ, "LANDECO_DATABASE_URL": _url_text(db_url), "LANDECO_HOME": str(home)}
    out = subprocess.run([str(LANDECO), "db", "status"], env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    state = json.loads(out.stdout.split("\n", 1)[1])  # first line says which server
    assert state["database"] == db_url.database
    assert state["schema_revision"] == state["schema_head"]
    assert not home.exists()


def test_a_command_on_an_unmigrated_database_says_what_to_do(empty_db_url, tmp_path):
    env = {**os.environ, "LANDECO_DATABASE_URL": _url_text(empty_db_url), "LANDECO_HOME": str(tmp_path)}
    out = subprocess.run([str(LANDECO), "query", "land_leases", "--min", "500"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "schema_not_migrated" in out.stderr and "landeco db migrate" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_language_switch_keeps_the_other_parameters(client):
    page = client.get("/maps/land_leases?on=2022-07-01&basemap=none").text
    assert 'href="/maps/land_leases?on=2022-07-01&amp;basemap=none&amp;lang=en"' in page
    page = client.get("/maps/land_leases?lang=en&on=2022-07-01").text
    assert 'href="/maps/land_leases?on=2022-07-01&amp;lang=zh"' in page
