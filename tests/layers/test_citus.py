"""The layers distributed by township on Citus answer as on one PostgreSQL server (docs/scale.md).

A throwaway single-node Citus cluster (the coordinator holds the shards): ``landeco db migrate``,
the demo township, ``landeco db distribute``, then what people do: an upload committed, an
item edited, its versions, a restore and the upload's undo, items of a village, a tile,
statistics and a conflict check, each compared with the same steps on plain PostGIS.

Skipped where Citus is not installed: Debian does not package it, so CI (Debian and PyPI
packages only) cannot run this test; a developer builds it from source (docs/scale.md).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from typer.testing import CliRunner

from api.cli import app
from layers.demo import load_demo
from layers.store.cluster import Cluster, find_bindir
from layers.store.database import create_database, engine_for
from tests.api.test_tiles import tile_of
from tests.conftest import client_for


def _citus_so() -> Path | None:
    try:
        return find_bindir().parent / "lib" / "citus.so"
    except Exception:  # no PostgreSQL at all: the other tests say so
        return None


_SO = _citus_so()
pytestmark = pytest.mark.skipif(
    _SO is None or not _SO.exists(),
    reason=f"Citus is not installed ({_SO or 'citus.so'} absent): Debian does not package it, so CI "
           "cannot run this test; build Citus from source to run it (docs/scale.md)")

PLOTS = "/collections/caragana_plots/items"
SHARDS = 4


def _cli(url: URL, *args: str) -> str:
    env = {"LANDECO_DATABASE_URL": url.render_as_string(hide_password=False)}
    r = CliRunner().invoke(app, list(args), env=env)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def citus_url() -> Iterator[URL]:
    """A Citus cluster of its own (never the shared one): migrated, the demo, distributed."""
    home = Path(tempfile.mkdtemp(prefix="landeco-citus-"))  # /tmp: reachable by the postgres user
    home.chmod(0o755)
    cluster = Cluster(home / "cluster")
    cluster.create()
    with (cluster.datadir / "postgresql.auto.conf").open("a") as fh:
        fh.write("shared_preload_libraries = 'citus'\n")
    # Citus connects to its own node (the coordinator holds the shards): trusted on loopback here;
    # a real deployment gives the nodes a .pgpass or certificates
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n" + hba.read_text())
    cluster.start()
    try:
        url = make_url(cluster.info.url())
        create_database(url)
        with engine_for(url.render_as_string(hide_password=False)).begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS citus"))
        _cli(url, "db", "migrate")
        load_demo(url)
        yield url
    finally:
        engine_for(cluster.info.url()).dispose()
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def distributed(citus_url) -> URL:
    out = json.loads(_cli(citus_url, "db", "distribute", "--shards", str(SHARDS)))
    assert "caragana_plots" in out["distributed"] and "villages" in out["reference"]
    return citus_url


@pytest.fixture(scope="module")
def plain_url(new_database) -> Iterator[URL]:
    """The same steps on plain PostGIS (the shared test server)."""
    with new_database("landeco_test_citus_plain") as url:
        load_demo(url)
        yield url


def _engine(url: URL) -> sa.Engine:
    return engine_for(url.render_as_string(hide_password=False))


def test_the_plan_is_made_co_located_by_township(distributed):
    with _engine(distributed).connect() as conn:
        kinds = dict(conn.execute(sa.text(
            "SELECT table_name::text, citus_table_type FROM citus_tables")).all())
        groups = conn.scalar(sa.text("SELECT count(DISTINCT colocation_id) FROM citus_tables "
                                     "WHERE citus_table_type = 'distributed'"))
        shards = conn.scalar(sa.text(
            "SELECT shard_count FROM citus_tables WHERE table_name = 'caragana_plots'::regclass"))
    assert kinds["caragana_plots"] == kinds["caragana_plots_history"] == "distributed"
    assert kinds["change_patch_steps"] == "distributed"
    assert kinds["villages"] == kinds["users"] == kinds["layer_versions"] == "reference"
    assert "uploads" not in kinds and "audit" not in kinds  # the coordinator's own
    assert groups == 1 and shards == SHARDS
    # repeating it changes nothing
    assert json.loads(_cli(distributed, "db", "distribute")) == {"reference": [], "distributed": []}


def test_distribute_refuses_a_database_without_citus(plain_url):
    env = {"LANDECO_DATABASE_URL": plain_url.render_as_string(hide_password=False)}
    r = CliRunner().invoke(app, ["db", "distribute"], env=env)
    assert r.exit_code == 1 and "citus_missing" in r.output


def _upload_file(tmp: Path, url: URL) -> Path:
    """Three plots in a part of the first village without plots (the demo is deterministic)."""
    with _engine(url).connect() as conn:
        village, lon, lat = conn.execute(sa.text(
            "SELECT v.code, ST_X(p), ST_Y(p) FROM villages v, LATERAL (SELECT ST_PointOnSurface("
            "ST_Difference(ST_Buffer(v.geom, -0.01), coalesce((SELECT ST_Union(ST_Buffer(c.geom, 0.002)) "
            "FROM caragana_plots c WHERE c.village_code = v.code), 'POLYGON EMPTY'::geometry))) p) s "
            "ORDER BY v.code LIMIT 1")).one()
    d = 0.0008
    feats = [{"type": "Feature",
              "properties": {"编号": f"CT-{i}", "嘎查村代码": village, "种植年份": 2021,
                             "种植方式": "restoration", "苗木数量": 100 + i},
              "geometry": {"type": "Polygon", "coordinates": [[
                  [lon + i * d, lat], [lon + i * d + d * 0.9, lat], [lon + i * d + d * 0.9, lat + d * 0.9],
                  [lon + i * d, lat + d * 0.9], [lon + i * d, lat]]]}} for i in range(3)]
    path = tmp / "plots.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False))
    return path


def _walk(url: URL, home: Path, upload: Path) -> dict:
    """What a surveyor, a planner and a map see, in order; the answers to compare."""
    seen: dict = {}
    with client_for(url, home) as client:
        with upload.open("rb") as fh:
            r = client.post("/uploads", files={"file": (upload.name, fh)}, data={"layer": "caragana_plots"})
        assert r.status_code == 201, r.text
        upload_id = r.json()["id"]
        c = client.post(f"/uploads/{upload_id}/commit", params={"confirm": "true"})
        assert c.status_code == 200, c.text
        with _engine(url).connect() as conn:
            rows = conn.execute(sa.text("SELECT id, code, village_code, township_code FROM caragana_plots "
                                        "WHERE code LIKE 'CT-%' ORDER BY code")).all()
        seen["uploaded"] = [(r.code, r.village_code, r.township_code) for r in rows]
        fid = rows[0].id

        got = client.get(f"{PLOTS}/{fid}")
        edit = client.patch(f"{PLOTS}/{fid}", json={"properties": {"seedlings": 4321}},
                            headers={"If-Match": got.headers["etag"],
                                     "Content-Type": "application/merge-patch+json"})
        assert edit.status_code == 200, edit.text
        versions = client.get(f"{PLOTS}/{fid}/versions").json()["versions"]
        seen["versions"] = [(v["version"], v["operation"], v["by"]) for v in versions]
        seen["changes"] = versions[-1]["changes"]["attributes"]
        back = client.post(f"{PLOTS}/{fid}/versions/1/restore")
        assert back.status_code == 200, back.text
        seen["restored"] = client.get(f"{PLOTS}/{fid}").json()["properties"]["seedlings"]
        undo = client.post(f"/uploads/{upload_id}/undo", params={"force": "true"})
        assert undo.status_code == 200, undo.text
        seen["undo"] = {k: undo.json()[k] for k in ("removed", "restored", "recreated")}
        with _engine(url).connect() as conn:
            seen["left"] = conn.scalar(sa.text("SELECT count(*) FROM caragana_plots WHERE code LIKE 'CT-%'"))
            seen["history"] = conn.execute(sa.text(
                "SELECT operation, count(*) FROM caragana_plots_history h JOIN (SELECT DISTINCT feature_id "
                "FROM caragana_plots_history WHERE code LIKE 'CT-%') f USING (feature_id) "
                "GROUP BY 1 ORDER BY 1")).all()
            village = conn.scalar(sa.text("SELECT min(code) FROM villages"))
            biggest = conn.execute(sa.text(
                "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT code, area_mu, "
                "ST_PointOnSurface(geom) p FROM caragana_plots) s ORDER BY area_mu DESC, code LIMIT 1")).one()

        page = client.get(PLOTS, params={"filter": f"village_code = '{village}'", "limit": 1000,
                                         "sortby": "code"}).json()
        seen["village_items"] = [f["properties"]["code"] for f in page["features"]]
        tiles = {}
        for z in (10, 16):
            zxy = "/".join(map(str, tile_of(biggest.lon, biggest.lat, z)))
            t = client.get(f"/collections/caragana_plots/tiles/WebMercatorQuad/{zxy}")
            assert t.status_code == 200, t.text
            tiles[z] = sorted((f["properties"].get("code", ""), f["properties"].get("parcels", 0)) for f in
                              mapbox_vector_tile.decode(t.content)["caragana_plots"]["features"])
        seen["tiles"] = tiles
        stats = client.get("/stats/caragana_plots?by=village_code,planted_year")
        assert stats.status_code == 200, stats.text
        seen["stats"] = stats.json()["rows"] if "rows" in stats.json() else stats.json()
        conflicts = client.get("/conflicts/leases_on_subsidence", params={"on": "2026-11-01"})
        assert conflicts.status_code == 200, conflicts.text
        seen["conflicts"] = sorted((f["properties"]["a_code"], f["properties"]["b_code"],
                                    round(f["properties"]["overlap_m2"], 3))
                                   for f in conflicts.json()["features"])
    return seen


def test_what_people_do_answers_as_on_one_server(distributed, plain_url, tmp_path):
    upload = _upload_file(tmp_path, plain_url)
    plain = _walk(plain_url, tmp_path / "plain", upload)
    citus = _walk(distributed, tmp_path / "citus", upload)
    village = plain["uploaded"][0][1]
    assert [t for _, _, t in citus["uploaded"]] == [village[:9]] * 3  # the township went with each row
    assert citus["versions"] == plain["versions"]
    assert [o for _, o, _ in citus["versions"]] == ["insert", "edit"]
    assert citus["changes"] == plain["changes"] == {"seedlings": {"from": 100, "to": 4321}}
    assert citus["restored"] == plain["restored"] == 100
    assert citus["undo"] == plain["undo"] and citus["left"] == plain["left"] == 0
    assert citus["history"] == plain["history"]
    assert citus["village_items"] == plain["village_items"] and citus["village_items"]
    assert citus["tiles"] == plain["tiles"] and all(citus["tiles"].values())
    assert citus["stats"] == plain["stats"]
    assert citus["conflicts"] == plain["conflicts"] and citus["conflicts"]
