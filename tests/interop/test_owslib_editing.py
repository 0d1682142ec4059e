"""OWSLib's OGC API – Features Part 4 calls (create, update, delete) edit landeco as a real client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from owslib.ogcapi.features import Features

from api.app import create_app
from layers.demo import load_demo
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import UNLIMITED, serving, surveyor_headers


@pytest.fixture(scope="module")
def edit_server(new_database, tmp_path_factory) -> Iterator[tuple[str, sa.Engine, dict]]:
    with new_database("landeco_test_owslib_edit") as url:
        load_demo(url)
        text = url.render_as_string(hide_password=False)
        settings = Settings(database_url=text, home=tmp_path_factory.mktemp("home"), **UNLIMITED)
        with serving(create_app(settings)) as base:
            yield base, engine_for(text), surveyor_headers(url)


def test_owslib_creates_updates_and_deletes_with_etags(edit_server):
    base, engine, auth = edit_server
    api = Features(base, headers=dict(auth))
    assert any(c.endswith("ogcapi-features-4/1.0/conf/create-replace-delete")
               for c in api.conformance()["conformsTo"])
    with engine.connect() as conn:
        village, square = conn.execute(sa.text(
            "WITH c AS (SELECT v.code, ST_Buffer(ST_PointOnSurface(v.geom)::geography, 25, 4)::geometry AS g "
            "FROM villages v) SELECT code, ST_AsGeoJSON(g) FROM c WHERE NOT EXISTS "
            "(SELECT 1 FROM caragana_plots p WHERE ST_Intersects(p.geom, c.g)) ORDER BY code LIMIT 1")).one()
    new = {"type": "Feature", "geometry": json.loads(square),
           "properties": {"code": "OWSLIB-1", "village_code": village, "planted_year": 2024,
                          "method": "restoration", "seedlings": 500}}
    assert api.collection_item_create("caragana_plots", new) is True
    location = api.response_headers["Location"]
    fid = location.rsplit("/", 1)[1]
    got = api.collection_item("caragana_plots", fid)
    assert got["properties"]["code"] == "OWSLIB-1" and got["properties"]["area_mu"] > 2
    first = api.response_headers["ETag"]

    got["properties"]["seedlings"] = 650
    api.headers["If-Match"] = first
    assert api.collection_item_update("caragana_plots", fid, json.dumps(got)) is True
    assert api.collection_item("caragana_plots", fid)["properties"]["seedlings"] == 650
    second = api.response_headers["ETag"]
    assert second != first

    # another surveyor's client still holds the first ETag: its update is refused, nothing written
    api.headers["If-Match"] = first
    got["properties"]["seedlings"] = 1
    with pytest.raises(RuntimeError, match="precondition_failed"):
        api.collection_item_update("caragana_plots", fid, json.dumps(got))
    api.headers.pop("If-Match")
    assert api.collection_item("caragana_plots", fid)["properties"]["seedlings"] == 650

    api.headers["If-Match"] = second
    assert api.collection_item_delete("caragana_plots", fid) is True
    api.headers.pop("If-Match")
    with pytest.raises(RuntimeError, match=r"not_found|no feature"):
        api.collection_item("caragana_plots", fid)
    with engine.connect() as conn:
        ops = conn.execute(sa.text("SELECT detail->>'operation' FROM audit WHERE action = 'feature.edit' "
                                   "AND feature_ids = ARRAY[CAST(:fid AS bigint)] ORDER BY id"),
                           {"fid": int(fid)}).scalars().all()
        history = conn.execute(sa.text("SELECT operation FROM caragana_plots_history WHERE feature_id = :fid "
                                       "ORDER BY history_id"), {"fid": int(fid)}).scalars().all()
    assert ops == ["create", "replace", "delete"]
    assert history == ["insert", "update", "delete"]
