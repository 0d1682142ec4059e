"""The shared tile cache: a tile is built once, and a write of any kind shows in the next request."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from urllib.parse import quote

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from layers.demo import load_demo
from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for


def _tile_of(lon: float, lat: float, z: int) -> str:
    n = 2 ** z
    x, y = int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"{z}/{x}/{y}"


@pytest.fixture(scope="module")
def township(new_database, tmp_path_factory):
    """A demo township of its own (these tests write), its engine and a client."""
    with new_database("landeco_test_tilecache") as url:
        load_demo(url)
        engine = engine_for(url.render_as_string(hide_password=False))
        with client_for(url, tmp_path_factory.mktemp("home")) as client:
            yield engine, client


def _plots(r) -> list[dict]:
    return mapbox_vector_tile.decode(r.content)["caragana_plots"]["features"]


def test_a_low_zoom_tile_is_built_once_then_served_from_the_cache(township):
    engine, client = township
    with engine.connect() as conn:
        lon, lat = conn.execute(sa.text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c "
                                        "FROM caragana_plots) s")).one()
    path = f"/collections/caragana_plots/tiles/WebMercatorQuad/{_tile_of(lon, lat, 9)}"
    first, second = client.get(path), client.get(path)
    assert first.headers["x-tile-cache"] == "miss" and second.headers["x-tile-cache"] == "hit"
    assert first.content == second.content and _plots(second)
    every = f"/tiles/WebMercatorQuad/{_tile_of(lon, lat, 9)}"
    assert client.get(every).headers["x-tile-cache"] == "miss"
    assert client.get(every).headers["x-tile-cache"] == "hit"


def test_a_write_in_plain_sql_shows_in_the_next_tile(township):
    engine, client = township
    with engine.connect() as conn:
        pid, lon, lat = conn.execute(sa.text(
            "SELECT id, ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface(geom) p FROM caragana_plots "
            "ORDER BY area_mu DESC LIMIT 1) s")).one()
    path = f"/collections/caragana_plots/tiles/WebMercatorQuad/{_tile_of(lon, lat, 15)}"
    client.get(path)  # built (and kept if slow) ...
    before = {f["properties"]["id"]: f["properties"] for f in _plots(client.get(path))}
    assert before[pid]["survival_rate"] != 0.123
    with engine.begin() as conn:  # ... then changed behind landeco's back, as psql would
        conn.execute(sa.text("UPDATE caragana_plots SET survival_rate = 0.123 WHERE id = :id"), {"id": pid})
    after = client.get(path)
    assert after.headers["x-tile-cache"] == "miss"
    assert {f["properties"]["id"]: f["properties"] for f in _plots(after)}[pid]["survival_rate"] == 0.123
    # a low-zoom tile kept before the change is rebuilt too: its cell's counts stay exact
    low = f"/collections/caragana_plots/tiles/WebMercatorQuad/{_tile_of(lon, lat, 8)}"
    counted = sum(f["properties"].get("parcels") or 1 for f in _plots(client.get(low)))
    assert client.get(low).headers["x-tile-cache"] == "hit"
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM caragana_plots WHERE id = :id"), {"id": pid})
    again = client.get(low)
    assert again.headers["x-tile-cache"] == "miss"
    assert sum(f["properties"].get("parcels") or 1 for f in _plots(again)) == counted - 1


def test_every_layer_table_counts_its_writes(township):
    engine, _ = township
    with engine.connect() as conn:
        triggered = set(conn.execute(sa.text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = 'bump_layer_version'")).scalars())
    assert {layer.table for layer in LAYERS.values()} <= triggered


def test_a_tile_of_the_past_shows_the_layer_as_it_was(township):
    engine, client = township
    with engine.connect() as conn:
        pid, lon, lat, rate = conn.execute(sa.text(
            "SELECT id, ST_X(p), ST_Y(p), survival_rate FROM (SELECT id, survival_rate, "
            "ST_PointOnSurface(geom) p FROM caragana_plots ORDER BY area_mu LIMIT 1) s")).one()
    time.sleep(0.05)
    then = quote(datetime.now(UTC).isoformat())  # "+00:00" in a query string: %2B
    time.sleep(0.05)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE caragana_plots SET survival_rate = 0.321 WHERE id = :id"), {"id": pid})
    for path in (f"/collections/caragana_plots/tiles/WebMercatorQuad/{_tile_of(lon, lat, 16)}",
                 f"/tiles/WebMercatorQuad/{_tile_of(lon, lat, 16)}?collections=caragana_plots"):
        sep = "&" if "?" in path else "?"
        past = client.get(f"{path}{sep}asof={then}")
        assert past.status_code == 200 and past.headers["x-tile-cache"] == "miss"
        assert {f["properties"]["id"]: f["properties"] for f in _plots(past)}[pid]["survival_rate"] == rate
        now = {f["properties"]["id"]: f["properties"] for f in _plots(client.get(path))}
        assert now[pid]["survival_rate"] == 0.321
    # at zoom 8 the cells of the past are grouped afresh: the plot is counted as it was
    low = f"/collections/caragana_plots/tiles/WebMercatorQuad/{_tile_of(lon, lat, 8)}"
    assert client.get(f"{low}?asof={then}").status_code == 200
    bad = client.get(f"{low}?asof=yesterday")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
