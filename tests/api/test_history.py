"""Nothing is lost: the database records every change; versions, asof, restore and undo over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from shapely.affinity import translate
from sqlalchemy.engine import URL

from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for
from tests.data.fixtures import make


@pytest.fixture(scope="module")
def hist_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_history") as url:
        yield url


@pytest.fixture
def engine(hist_url):
    return engine_for(hist_url.render_as_string(hide_password=False))


@pytest.fixture
def client(hist_url: URL, tmp_path: Path, engine):
    with client_for(hist_url, tmp_path / "home") as c:
        yield c
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE uploads, caragana_plots, caragana_plots_history"))


def commit(client, path: Path, **options) -> str:
    with open(path, "rb") as fh:
        r = client.post("/uploads", files={"file": (path.name, fh)},
                        data={"layer": "caragana_plots", **options})
    assert r.status_code == 201, r.text
    upload_id = r.json()["id"]
    # a replace says what it deletes and needs a confirmation (as a surveyor ticks it on the page)
    c = client.post(f"/uploads/{upload_id}/commit", params={"confirm": "true"})
    assert c.status_code == 200, c.text
    return upload_id


def plots(engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {r.code: (r.id, r.method, r.seedlings, round(r.area_mu, 6)) for r in conn.execute(sa.text(
            "SELECT id, code, method, seedlings, area_mu FROM caragana_plots"))}


def moment() -> str:
    """Now as RFC 3339, with a pause either side so that changes fall clearly before or after."""
    time.sleep(0.05)
    at = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    return at


def plain_sql(engine, sql: str) -> None:
    """A change as psql makes it: its own connection, no landeco settings."""
    with engine.begin() as conn:
        conn.execute(sa.text(sql))


def test_every_layer_in_the_registry_has_history(engine):
    with engine.connect() as conn:
        triggers = set(conn.execute(sa.text("SELECT tgrelid::regclass::text, tgname FROM pg_trigger")).all())
        tables = set(sa.inspect(conn).get_table_names())
    for layer_id in LAYERS:
        assert f"{layer_id}_history" in tables, layer_id
        for op in ("insert", "update", "delete", "truncate"):
            assert (layer_id, f"{layer_id}_history_{op}") in triggers, (layer_id, op)


def test_commit_edit_in_sql_versions_diff_restore(client, engine, tmp_path):
    commit(client, make.caragana_zip(tmp_path, 3))
    before = plots(engine)
    fid = before["NT-0001"][0]
    # a psql-style change: plain SQL on a connection without landeco's settings
    plain_sql(engine, "UPDATE caragana_plots SET seedlings = 7, "
                      f"geom = ST_Multi(ST_Translate(geom, 0.0001, 0)) WHERE id = {fid}")
    with engine.connect() as conn:
        db_user = conn.scalar(sa.text("SELECT session_user"))
        row = conn.execute(sa.text(
            "SELECT operation, changed_by, db_user, seedlings FROM caragana_plots_history "
            "WHERE feature_id = :f AND operation = 'update'"), {"f": fid}).one()
    assert row == ("update", None, db_user, before["NT-0001"][2])  # the version it ended, by the role

    r = client.get(f"/collections/caragana_plots/items/{fid}/versions")
    assert r.status_code == 200, r.text
    versions = r.json()["versions"]
    assert [v["version"] for v in versions] == [1, 2] and versions[-1]["current"]
    first, second = versions
    assert first["by"] == "test-surveyor" and first["upload_id"] and first["operation"] == "insert"
    assert second["by"] == db_user and second["operation"] == "update" and second["upload_id"] is None
    changes = second["changes"]
    assert changes["attributes"] == {"seedlings": {"from": before["NT-0001"][2], "to": 7}}
    # 0.0001 degrees of longitude at 38-39 N is about 8.7 m
    assert 8 < changes["moved_m"] < 9.5
    assert abs(changes["area_mu_change"]) < 0.01  # moved, not resized

    old = client.get(f"/collections/caragana_plots/items/{fid}/versions/1").json()
    assert old["properties"]["seedlings"] == before["NT-0001"][2]
    assert old["geometry"]["type"] == "MultiPolygon"
    assert client.get(f"/collections/caragana_plots/items/{fid}/versions/3").status_code == 404

    back = client.post(f"/collections/caragana_plots/items/{fid}/versions/1/restore")
    assert back.status_code == 200, back.text
    assert plots(engine) == before
    after = client.get(f"/collections/caragana_plots/items/{fid}/versions").json()["versions"]
    assert len(after) == 3 and after[-1]["operation"] == "restore" and after[-1]["by"] == "test-surveyor"
    assert after[-1]["changes"]["moved_m"] > 8  # moved back
    with engine.connect() as conn:
        entry = conn.execute(sa.text(
            "SELECT actor, layer, feature_ids FROM audit WHERE action = 'feature.restore'")).one()
    assert entry == ("test-surveyor", "caragana_plots", [fid])


def test_a_deleted_feature_is_restored_with_its_id(client, engine, tmp_path):
    commit(client, make.caragana_zip(tmp_path, 2))
    before = plots(engine)
    fid = before["NT-0000"][0]
    plain_sql(engine, f"DELETE FROM caragana_plots WHERE id = {fid}")
    assert client.get(f"/collections/caragana_plots/items/{fid}").status_code == 404
    versions = client.get(f"/collections/caragana_plots/items/{fid}/versions").json()
    assert not versions["exists"] and versions["versions"][-1]["ended_by"] == "delete"
    r = client.post(f"/collections/caragana_plots/items/{fid}/versions/1/restore")
    assert r.status_code == 200 and r.json()["recreated"] is True
    assert plots(engine) == before


def test_restore_refused_when_another_feature_took_the_code(client, engine, tmp_path):
    commit(client, make.caragana_zip(tmp_path, 2))
    fid = plots(engine)["NT-0000"][0]
    plain_sql(engine, f"DELETE FROM caragana_plots WHERE id = {fid}")
    plain_sql(engine, "UPDATE caragana_plots SET code = 'NT-0000' WHERE code = 'NT-0001'")
    r = client.post(f"/collections/caragana_plots/items/{fid}/versions/1/restore")
    assert r.status_code == 409 and r.json()["code"] == "restore_conflict", r.text


def upsert_zip(tmp_path: Path, n: int, seedlings: int, name: str) -> Path:
    frame = make.caragana_frame(n)
    frame["苗木数量"] = str(seedlings)
    frame["geometry"] = [translate(g, 0, 5) for g in frame.geometry]  # 5 m north (EPSG:4545)
    folder = tmp_path / name
    return make.caragana_zip(folder, n, frame=frame)


def test_undo_an_upsert_puts_back_the_layer(client, engine, tmp_path):
    commit(client, make.caragana_zip(tmp_path, 3))
    before = plots(engine)
    page_then = client.get("/collections/caragana_plots/items").json()["features"]
    fid = before["NT-0000"][0]
    one_then = client.get(f"/collections/caragana_plots/items/{fid}").json()
    asof = moment()
    upload_id = commit(client, upsert_zip(tmp_path, 4, 99, "u2"), mode="upsert")  # 3 updated, 1 new
    changed = plots(engine)
    assert len(changed) == 4 and {v[2] for v in changed.values()} == {99}

    # the past as it was: items and one feature answer what they answered before the upsert
    page = client.get("/collections/caragana_plots/items", params={"asof": asof}).json()
    assert page["features"] == page_then and page["numberMatched"] == 3
    one = client.get(f"/collections/caragana_plots/items/{fid}", params={"asof": asof}).json()
    assert {k: one[k] for k in ("id", "geometry", "properties")} == \
        {k: one_then[k] for k in ("id", "geometry", "properties")}
    bbox = client.get("/collections/caragana_plots/items",
                      params={"asof": asof, "filter": "seedlings > 500", "bbox": "100,30,120,45"}).json()
    assert len(bbox["features"]) == 3  # filters apply to the past (now every plot has 99)
    assert client.get(f"/collections/caragana_plots/items/{changed['NT-0003'][0]}",
                      params={"asof": asof}).status_code == 404  # not there yet
    now = client.get("/collections/caragana_plots/items", params={"asof": moment()}).json()
    assert len(now["features"]) == 4

    r = client.post(f"/uploads/{upload_id}/undo")
    assert r.status_code == 200, r.text
    assert r.json() | {"audit_id": 0} == {"upload_id": upload_id, "layer": "caragana_plots", "removed": 1,
                                          "restored": 3, "recreated": 0, "forced": False, "later_changes": 0,
                                          "audit_id": 0}
    assert plots(engine) == before
    again = client.post(f"/uploads/{upload_id}/undo")
    assert again.status_code == 409 and again.json()["code"] == "undo_refused"
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT actor FROM audit WHERE action = 'upload.undo'")) == "test-surveyor"


def test_undo_refused_after_a_later_change_unless_forced(client, engine, tmp_path):
    commit(client, make.caragana_zip(tmp_path, 2))
    before = plots(engine)
    upload_id = commit(client, upsert_zip(tmp_path, 2, 55, "u2"), mode="upsert")
    fid = before["NT-0001"][0]
    plain_sql(engine, f"UPDATE caragana_plots SET seedlings = 1 WHERE id = {fid}")
    r = client.post(f"/uploads/{upload_id}/undo")
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "undo_conflict" and r.json()["feature_ids"] == [fid] and r.json()["count"] == 1
    assert plots(engine)["NT-0001"][2] == 1  # nothing written
    forced = client.post(f"/uploads/{upload_id}/undo", params={"force": "true"})
    assert forced.status_code == 200 and forced.json()["forced"] is True
    assert plots(engine) == before


def test_undo_of_an_insert_removes_it_and_a_replace_comes_back(client, engine, tmp_path):
    first = commit(client, make.caragana_zip(tmp_path, 2))
    before = plots(engine)
    replace = commit(client, upsert_zip(tmp_path, 3, 11, "u2"), mode="replace")
    assert len(plots(engine)) == 3
    assert client.post(f"/uploads/{replace}/undo").status_code == 200
    assert plots(engine) == before  # the same ids, codes and values
    r = client.post(f"/uploads/{first}/undo")
    assert r.status_code == 200, r.text
    assert plots(engine) == {}


def test_undo_needs_a_surveyor_and_a_committed_upload(client, hist_url, tmp_path):
    assert client.post("/uploads/0123456789abcdef0123456789abcdef/undo").status_code == 404
    with client_for(hist_url, tmp_path / "h2", surveyor=False) as anonymous:
        assert anonymous.post("/uploads/x/undo").status_code == 401
        assert anonymous.post("/collections/caragana_plots/items/1/versions/1/restore").status_code == 401
        # versions name people: an account reads them; the layers' past is read like the layers
        assert anonymous.get("/collections/caragana_plots/items/1/versions").status_code == 401
        past = anonymous.get("/collections/caragana_plots/items", params={"asof": moment()})
        assert past.status_code == 200


@pytest.mark.parametrize("value", ["2026-11-30", "yesterday", "2026-11-30T08:00:00", "0001-01-01T00:00:00Z"])
def test_asof_must_be_a_time_with_its_offset(client, value):
    r = client.get("/collections/caragana_plots/items", params={"asof": value})
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter", r.text
    assert client.get("/collections/caragana_plots/items/1", params={"asof": value}).status_code == 400


def test_the_commands_list_versions_restore_and_undo(client, engine, hist_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from api.cli import app

    monkeypatch.setenv("LANDECO_DATABASE_URL", hist_url.render_as_string(hide_password=False))
    commit(client, make.caragana_zip(tmp_path, 2))
    before = plots(engine)
    fid = before["NT-0000"][0]
    plain_sql(engine, f"UPDATE caragana_plots SET seedlings = 3 WHERE id = {fid}")
    shown = CliRunner().invoke(app, ["history", "caragana_plots", str(fid)])
    assert shown.exit_code == 0, shown.output
    assert "v1" in shown.output and "v2" in shown.output and "seedlings" in shown.output
    assert CliRunner().invoke(app, ["history", "caragana_plots", str(fid), "--restore", "1"]).exit_code == 0
    assert plots(engine) == before
    upload_id = commit(client, upsert_zip(tmp_path, 2, 77, "u2"), mode="upsert")
    plain_sql(engine, f"UPDATE caragana_plots SET seedlings = 4 WHERE id = {fid}")
    refused = CliRunner().invoke(app, ["undo", upload_id])
    assert refused.exit_code == 1 and "undo_conflict" in refused.output and str(fid) in refused.output
    done = CliRunner().invoke(app, ["undo", upload_id, "--force"])
    assert done.exit_code == 0, done.output
    assert plots(engine) == before
    with engine.connect() as conn:
        actor = conn.scalar(sa.text("SELECT actor FROM audit WHERE action = 'upload.undo'"))
    assert actor  # the OS user
    missing = CliRunner().invoke(app, ["history", "caragana_plots", "999999"])
    assert missing.exit_code == 1 and "version_not_found" in missing.output
