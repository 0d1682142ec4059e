"""The schema is ready for Citus (migration 0016, docs/scale.md), checked on plain PostGIS (CI).

What a trial on Citus found the schema must be before the layers can be distributed by
township: triggers name their layer by argument (on a shard ``TG_TABLE_NAME`` is the shard's),
no identity columns, ``township_code`` on every layer row and in every key, sent by landeco's
writers themselves (Citus routes a row by the value in the statement).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for

BY_TOWNSHIP = [layer.table for layer in LAYERS.values() if layer.by_township]
PLOTS = "/collections/caragana_plots/items"


def test_no_trigger_function_of_a_layer_names_its_table_by_tg_table_name(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.relname, t.tgname, p.proname, p.prosrc FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal AND c.relname = ANY(:t)"),
            {"t": list(LAYERS)}).all()
    assert {r.relname for r in rows} == set(LAYERS)
    assert [(r.relname, r.tgname) for r in rows if "tg_table_name" in r.prosrc.lower()] == []
    # the history and version triggers say which layer they are for
    with engine.connect() as conn:
        args = dict(conn.execute(sa.text(
            "SELECT t.tgname, encode(t.tgargs, 'escape') FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = 'caragana_plots' "
            "AND (t.tgname LIKE '%history%' OR t.tgname = 'bump_layer_version')")).all())
    assert len(args) == 5 and all(a == "caragana_plots\\000" for a in args.values()), args


def test_no_layer_or_history_table_has_an_identity_column(engine):
    tables = [*LAYERS, *(t + "_history" for t in LAYERS), "change_patch_steps"]
    with engine.connect() as conn:
        identity = conn.execute(sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND is_identity = 'YES' AND table_name = ANY(:t)"), {"t": tables}).all()
        defaults = dict(conn.execute(sa.text(
            "SELECT table_name, column_default FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'id' AND table_name = ANY(:t)"), {"t": list(LAYERS)}).all())
    assert identity == []
    assert all(d.startswith("nextval(") for d in defaults.values()), defaults


def test_every_layer_has_its_township_in_every_key(engine):
    with engine.connect() as conn:
        cols = {r[0] for r in conn.execute(sa.text(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'township_code' AND is_nullable = 'NO'"))}
        keys = conn.execute(sa.text(
            "SELECT c.relname, k.conname, array(SELECT a.attname FROM pg_attribute a "
            "WHERE a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey))::text[] FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid WHERE k.contype IN ('p', 'u') AND c.relname = ANY(:t)"),
            {"t": [*BY_TOWNSHIP, *(t + "_history" for t in BY_TOWNSHIP), "change_patch_steps"]}).all()
    assert set(BY_TOWNSHIP) | {t + "_history" for t in BY_TOWNSHIP} | {"change_patch_steps"} <= cols
    assert "villages" not in cols  # the frame: a reference table on Citus
    assert keys and [(t, k) for t, k, c in keys if "township_code" not in c] == []


def test_the_database_refuses_a_township_that_is_not_the_villages(conn):
    conn.execute(sa.text(
        "INSERT INTO villages (code, name, kind, geom) VALUES ('150623101201', '测试村', 'village', "
        "ST_Multi(ST_MakeEnvelope(107, 38, 107.01, 38.01, 4326)))"))
    insert = ("INSERT INTO caragana_plots (code, village_code, township_code, planted_year, method, geom) "
              "VALUES (:c, :v, :t, 2020, 'restoration', "
              "ST_Multi(ST_MakeEnvelope(107, 38, 107.001, 38.001, 4326)))")
    conn.execute(sa.text(insert), {"c": "T-1", "v": "150623101201", "t": "150623101"})
    conn.execute(sa.text(insert), {"c": "T-2", "v": None, "t": ""})  # no village: township ''
    with pytest.raises(sa.exc.IntegrityError, match="township_of_village"), conn.begin_nested():
        conn.execute(sa.text(insert), {"c": "T-3", "v": "150623101201", "t": "150623102"})
    # SQL typed by hand gets it filled on one server (landeco's writers send it)
    conn.execute(sa.text("INSERT INTO caragana_plots (code, village_code, planted_year, method, geom) VALUES "
                         "('T-4', '150623101201', 2020, 'restoration', "
                         "ST_Multi(ST_MakeEnvelope(107.002, 38, 107.003, 38.001, 4326)))"))
    assert conn.scalar(sa.text("SELECT township_code FROM caragana_plots WHERE code = 'T-4'")) == "150623101"
    rows = conn.execute(sa.text(
        "SELECT h.operation, h.township_code FROM caragana_plots_history h JOIN caragana_plots p "
        "ON p.id = h.feature_id WHERE p.code IN ('T-1', 'T-2') ORDER BY p.code")).all()
    assert rows == [("insert", "150623101"), ("insert", "")]  # an insert's history row has it too


@pytest.fixture(scope="module")
def ready_url(new_database) -> Iterator[URL]:
    """The demo township, with the one-server conveniences off: what Citus would see."""
    from layers.demo import load_demo

    with new_database("landeco_test_citus_ready") as url:
        load_demo(url)
        with engine_for(url.render_as_string(hide_password=False)).begin() as conn:
            for table in BY_TOWNSHIP:  # the triggers filling the township for SQL typed by hand
                conn.execute(sa.text(f"DROP TRIGGER {table}_township_insert ON {table}"))
                conn.execute(sa.text(f"DROP TRIGGER {table}_township_update ON {table}"))
        yield url


def test_landeco_writers_send_the_township_themselves(ready_url, tmp_path):
    engine = engine_for(ready_url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        village, other, x, y = conn.execute(sa.text(
            # two villages of the demo township (another test adds one of another township)
            "SELECT v.code, (SELECT min(code) FROM villages WHERE code <> v.code "
            "AND code LIKE '150623101%'), ST_X(p), ST_Y(p) FROM villages v, LATERAL (SELECT "
            "ST_PointOnSurface(ST_Difference(ST_Buffer(v.geom, -0.01), coalesce((SELECT "
            "ST_Union(ST_Buffer(c.geom, 0.002)) FROM caragana_plots c), 'POLYGON EMPTY'::geometry))) p) s "
            "WHERE v.code LIKE '150623101%' "
            "ORDER BY v.code DESC LIMIT 1")).one()
    d = 0.0008
    square = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
    upload = tmp_path / "one.geojson"
    upload.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square]},
        "properties": {"编号": "TR-1", "嘎查村代码": village, "种植年份": 2021, "种植方式": "restoration"}}]},
        ensure_ascii=False))
    with client_for(ready_url, tmp_path / "home") as client:
        with upload.open("rb") as fh:  # an upload (its COPY)
            r = client.post("/uploads", files={"file": (upload.name, fh)}, data={"layer": "caragana_plots"})
        assert r.status_code == 201, r.text
        assert client.post(f"/uploads/{r.json()['id']}/commit").status_code == 200
        with engine.connect() as conn:
            fid, town = conn.execute(sa.text(
                "SELECT id, township_code FROM caragana_plots WHERE code = 'TR-1'")).one()
        assert town == village[:9]
        etag = client.get(f"{PLOTS}/{fid}").headers["etag"]  # an edit moving it to another village
        edit = client.patch(f"{PLOTS}/{fid}", json={"properties": {"village_code": other}},
                            headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})
        assert edit.status_code == 200, edit.text
        drawn = [[x + 2 * d, y], [x + 3 * d, y], [x + 3 * d, y + d], [x + 2 * d, y]]
        created = client.post(PLOTS, json={  # a feature drawn on the map
            "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [drawn]},
            "properties": {"code": "TR-2", "village_code": village, "planted_year": 2022,
                           "method": "restoration"}})
        assert created.status_code == 201, created.text
        back = client.post(f"{PLOTS}/{fid}/versions/1/restore")  # a restore
        assert back.status_code == 200, back.text
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text(
                "SELECT code, township_code FROM caragana_plots WHERE code LIKE 'TR-%'")).all())
            history = conn.execute(sa.text(
                "SELECT operation, village_code, township_code FROM caragana_plots_history "
                "WHERE feature_id = :f ORDER BY history_id"), {"f": fid}).all()
    assert rows == {"TR-1": village[:9], "TR-2": village[:9]}
    assert history[0] == ("insert", None, village[:9])  # the trigger wrote it in the right table
    assert history[1][0] == "update" and history[1][1:] == (village, village[:9])


def test_a_feature_keeps_its_township(ready_url, tmp_path):
    """An edit (or an upsert) cannot give a feature a village of another township."""
    engine = engine_for(ready_url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO villages (code, name, kind, geom) SELECT '150623102001', '邻乡测试村', 'village', "
            "ST_Multi(ST_Buffer(ST_Centroid(geom), 0.01)) FROM villages ORDER BY code LIMIT 1"))
        fid, village = conn.execute(sa.text(
            "SELECT id, village_code FROM caragana_plots WHERE code NOT LIKE 'TR-%' "
            "ORDER BY id LIMIT 1")).one()
    with client_for(ready_url, tmp_path / "home") as client:
        etag = client.get(f"{PLOTS}/{fid}").headers["etag"]
        r = client.patch(f"{PLOTS}/{fid}", json={"properties": {"village_code": "150623102001"}},
                         headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 422, r.text
    assert [p["code"] for p in r.json()["problems"]] == ["township_changed"]
    with engine.connect() as conn:
        kept = conn.scalar(sa.text("SELECT village_code FROM caragana_plots WHERE id = :f"), {"f": fid})
    assert kept == village
