"""Filters take the words staff read (``purpose='光伏'``, a village's name) in CQL2, ``/query``,
the query page and the CLI; a word that is no value is answered with the allowed ones."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.conftest import client_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, V1

township = cases.township
runner = CliRunner()
SOLAR = sorted(c for c, v in LEASES.items() if v[2] == "solar")
RAIL_OR_SOLAR = sorted(c for c, v in LEASES.items() if v[2] in ("solar", "railway"))


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home")) as c:
        yield c


def _codes(r) -> list[str]:
    assert r.status_code == 200, r.text
    return sorted(f["properties"]["code"] for f in r.json()["features"])


@pytest.mark.parametrize("value", ["solar", "光伏", "Solar", "SOLAR", " 光伏 "])
def test_query_where_takes_code_or_label(client, value):
    r = client.post("/query", json={"layers": ["land_leases"], "where": {"purpose": value}})
    assert _codes(r) == SOLAR


def test_query_where_takes_a_list_of_labels_and_a_village_name(client):
    r = client.post("/query", json={"layers": ["land_leases"], "where": {"purpose": ["光伏", "铁路"]}})
    assert _codes(r) == RAIL_OR_SOLAR
    by_name = client.post("/query", json={"layers": ["land_leases"], "where": {"village_code": "特布德嘎查"}})
    assert _codes(by_name) == sorted(c for c, v in LEASES.items() if v[0] == V1)


def test_an_unknown_label_lists_the_allowed_values(client):
    r = client.post("/query", json={"layers": ["land_leases"], "where": {"purpose": "赌场"}})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_field_value" and body["parameter"] == "where.purpose"
    assert "solar" in body["allowed"] and body["labels"]["solar"] == {"zh": "光伏", "en": "Solar"}
    assert "光伏" in body["detail"]


@pytest.mark.parametrize("cql", ["purpose = '光伏'", "'光伏' = purpose", "purpose = 'Solar'",
                                 "purpose IN ('光伏', 'solar')"])
def test_cql2_takes_labels(client, cql):
    r = client.get("/collections/land_leases/items", params={"filter": cql})
    assert _codes(r) == SOLAR


def test_cql2_json_takes_labels(client):
    import json

    cql = {"op": "in", "args": [{"property": "purpose"}, ["光伏", "铁路"]]}
    r = client.get("/collections/land_leases/items",
                   params={"filter": json.dumps(cql), "filter-lang": "cql2-json"})
    assert _codes(r) == RAIL_OR_SOLAR


def test_cql2_unknown_label_is_a_problem_not_an_empty_answer(client):
    r = client.get("/collections/land_leases/items", params={"filter": "purpose = '赌场'"})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_field_value" and body["parameter"] == "filter"
    assert set(body["allowed"]) >= {"solar", "railway"} and "光伏" in body["detail"]
    # free text fields still match anything, an empty answer being a real answer there
    assert _codes(client.get("/collections/land_leases/items", params={"filter": "lessee = '无人'"})) == []


def test_page_filters_by_label_and_says_what_is_allowed(client):
    page = client.get("/query", params={"layers": "land_leases", "where": "purpose=光伏"})
    assert page.status_code == 200
    assert 'data-layer="land_leases"' in page.text
    bad = client.get("/query", params={"layers": "land_leases", "where": "purpose=赌场"})
    assert bad.status_code == 400 and "invalid_field_value" in bad.text and "光伏" in bad.text


@pytest.fixture
def env(township, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", township.render_as_string(hide_password=False))


def test_cli_where_takes_labels(env):
    r = runner.invoke(app, ["query", "land_leases", "--where", "purpose=光伏，铁路", "--json"])
    assert r.exit_code == 0, r.output
    import json

    assert json.loads(r.output)["summary"]["layers"]["land_leases"]["count"] == len(RAIL_OR_SOLAR)
    bad = runner.invoke(app, ["query", "land_leases", "--where", "purpose=赌场"])
    assert bad.exit_code == 1 and "invalid_field_value" in bad.output and "solar = 光伏 / Solar" in bad.output
