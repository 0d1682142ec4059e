"""The layers as they were: POST /query with ``asof`` answers what it answered then."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from layers.demo import load_demo
from layers.store.database import engine_for
from tests.conftest import client_for


@pytest.fixture(scope="module")
def township(new_database, tmp_path_factory):
    with new_database("landeco_test_asof") as url:
        load_demo(url)
        with client_for(url, tmp_path_factory.mktemp("home")) as client:
            yield engine_for(url.render_as_string(hide_password=False)), client


def test_a_query_of_the_past_answers_as_it_did_then(township):
    engine, client = township
    spec = {"layers": ["land_leases"], "where": {"purpose": "光伏"}, "sort": "code", "limit": 500}
    then_answer = client.post("/query", json=spec).json()
    time.sleep(0.05)
    then = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    with engine.begin() as conn:  # the solar leases change: one ends up elsewhere, one is deleted
        ids = conn.execute(sa.text("SELECT id FROM land_leases WHERE purpose = 'solar' "
                                   "ORDER BY id")).scalars().all()
        conn.execute(sa.text("UPDATE land_leases SET purpose = 'railway' WHERE id = :i"), {"i": ids[0]})
        conn.execute(sa.text("DELETE FROM land_leases WHERE id = :i"), {"i": ids[1]})
    now = client.post("/query", json=spec).json()
    assert now["summary"]["layers"]["land_leases"]["count"] == len(ids) - 2
    past = client.post("/query", json={**spec, "asof": then}).json()
    assert past["summary"] == then_answer["summary"]
    assert [f["properties"]["code"] for f in past["features"]] == \
        [f["properties"]["code"] for f in then_answer["features"]]
    bad = client.post("/query", json={**spec, "asof": "last week"})
    assert bad.status_code == 400 and bad.json()["code"]


def test_a_map_of_the_past_draws_what_was_there(township):
    engine, client = township
    with engine.connect() as conn:
        fid, code = conn.execute(sa.text("SELECT id, code FROM eco_projects ORDER BY id LIMIT 1")).one()
    time.sleep(0.05)
    then = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM eco_projects WHERE id = :i"), {"i": fid})
    now = client.get("/maps/eco_projects", headers={"Accept": "text/html"})
    past = client.get("/maps/eco_projects", params={"asof": then}, headers={"Accept": "text/html"})
    assert now.status_code == 200 and past.status_code == 200
    assert f'"{code}"' not in now.text and f'"{code}"' in past.text
    assert client.get("/maps", params={"asof": "tomorrow-ish"}).status_code == 400
