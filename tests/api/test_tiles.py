"""Vector tiles over HTTP: MVT a decoder reads, 204, 304, caching, gzip, problems, TileJSON."""

import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from layers.registry import LAYERS
from layers.store.database import engine_for

PROBLEM = "application/problem+json"
MVT = "application/vnd.mapbox-vector-tile"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2 ** z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


@pytest.fixture(scope="module")
def biggest(demo_url):
    """The demo's largest caragana plot: code, area, and a point inside it."""
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        return conn.execute(sa.text(
            "SELECT id, code, round(area_mu::numeric, 2)::float8 AS area_mu, ST_X(p) AS lon, ST_Y(p) AS lat "
            "FROM (SELECT *, ST_PointOnSurface(geom) p FROM caragana_plots "
            "ORDER BY area_mu DESC LIMIT 1) s")).one()


def _path(z, x, y, layer="caragana_plots"):
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}"


def test_a_tile_is_an_mvt_with_the_plot_and_its_attributes(demo_client, biggest):
    r = demo_client.get(_path(*tile_of(biggest.lon, biggest.lat, 16)))
    assert r.status_code == 200 and r.headers["content-type"] == MVT
    tile = mapbox_vector_tile.decode(r.content)
    feats = {f["properties"]["code"]: f for f in tile["caragana_plots"]["features"]}
    p = feats[biggest.code]["properties"]
    assert p["id"] == biggest.id and p["area_mu"] == biggest.area_mu
    assert {"village_code", "planted_year", "method", "survival_rate"} <= set(p)
    assert feats[biggest.code]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_empty_tile_is_204(demo_client):
    r = demo_client.get(_path(12, 0, 0))
    assert r.status_code == 204 and r.content == b""
    assert demo_client.get("/tiles/WebMercatorQuad/12/0/0").status_code == 204


def test_if_none_match_gives_304_and_cache_headers(demo_client, biggest):
    path = _path(*tile_of(biggest.lon, biggest.lat, 14))
    r = demo_client.get(path)
    etag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"]
    again = demo_client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert demo_client.get(path, headers={"If-None-Match": f'W/"other", {etag}'}).status_code == 304
    assert demo_client.get(path, headers={"If-None-Match": 'W/"other"'}).status_code == 200
    # a map's versioned URL may be kept: a new version is a new URL
    assert "immutable" in demo_client.get(path, params={"v": "1"}).headers["cache-control"]


def test_gzip_when_accepted(demo_client, biggest):
    path = _path(*tile_of(biggest.lon, biggest.lat, 13))
    zipped = demo_client.get(path, headers={"Accept-Encoding": "gzip"})
    plain = demo_client.get(path, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.content == plain.content  # the client unzips to the same tile
    assert zipped.headers["etag"] == plain.headers["etag"]
    assert int(zipped.headers["content-length"]) < len(plain.content)


@pytest.mark.parametrize(("path", "status", "code"), [
    (_path("x", 0, 0), 400, "invalid_tile"),
    (_path(25, 0, 0), 400, "invalid_tile"),
    (_path(-1, 0, 0), 400, "invalid_tile"),
    (_path(3, 8, 0), 404, "tile_out_of_range"),
    (_path(3, 0, 9), 404, "tile_out_of_range"),
    (_path(3, 0, 0, layer="parcels"), 404, "unknown_layer"),
    ("/collections/caragana_plots/tiles/WorldCRS84Quad/0/0/0", 404, "unknown_tile_matrix_set"),
    ("/collections/caragana_plots/tiles/WorldCRS84Quad/tilejson.json", 404, "unknown_tile_matrix_set"),
    ("/tiles/WebMercatorQuad/3/8/0", 404, "tile_out_of_range"),
    ("/tiles/WebMercatorQuad/3/0/0?collections=villages,parcels", 404, "unknown_layer"),
])
def test_bad_addresses_are_problems(demo_client, path, status, code):
    r = demo_client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM and r.json()["code"] == code


def test_tilejson_points_at_tiles_that_hold_the_layer(demo_client, biggest):
    doc = demo_client.get("/collections/caragana_plots/tiles/WebMercatorQuad/tilejson.json").json()
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    assert 0 <= doc["minzoom"] < doc["maxzoom"] <= 24
    west, south, east, north = doc["bounds"]
    assert west <= biggest.lon <= east and south <= biggest.lat <= north
    [vl] = doc["vector_layers"]
    assert vl["id"] == "caragana_plots" and {"id", "code", "area_mu", "planted_year"} <= set(vl["fields"])
    z, x, y = tile_of(biggest.lon, biggest.lat, 15)
    url = doc["tiles"][0].replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
    tile = mapbox_vector_tile.decode(demo_client.get(url).content)
    assert biggest.code in {f["properties"]["code"] for f in tile["caragana_plots"]["features"]}


def test_tileset_list_and_metadata_link_to_the_tiles(demo_client, biggest):
    listing = demo_client.get("/collections/caragana_plots/tiles").json()
    [ts] = listing["tilesets"]
    assert ts["dataType"] == "vector" and ts["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    links = {ln["rel"]: ln["href"] for ln in ts["links"]}
    meta = demo_client.get(links["self"]).json()
    assert meta["layers"][0]["id"] == "caragana_plots"
    z, x, y = tile_of(biggest.lon, biggest.lat, 15)
    url = (links["item"].replace("{tileMatrix}", str(z)).replace("{tileCol}", str(x))
           .replace("{tileRow}", str(y)))
    assert demo_client.get(url).status_code == 200
    assert demo_client.get(links["describedby"]).json()["tilejson"] == "3.0.0"


def test_multi_layer_tile_holds_every_layer(demo_client, biggest):
    z, x, y = tile_of(biggest.lon, biggest.lat, 6)
    r = demo_client.get(f"/tiles/WebMercatorQuad/{z}/{x}/{y}")
    assert r.status_code == 200 and r.headers["content-type"] == MVT
    tile = mapbox_vector_tile.decode(r.content)
    assert set(tile) == set(LAYERS) and all(layer["features"] for layer in tile.values())
    some = demo_client.get(f"/tiles/WebMercatorQuad/{z}/{x}/{y}",
                           params={"collections": "villages,land_leases"})
    assert set(mapbox_vector_tile.decode(some.content)) == {"villages", "land_leases"}
    doc = demo_client.get("/tiles/WebMercatorQuad/tilejson.json").json()
    assert [vl["id"] for vl in doc["vector_layers"]] == list(LAYERS)
    assert demo_client.get("/tiles/WebMercatorQuad").json()["links"]


def test_a_tile_over_the_time_limit_is_503(demo_client, biggest, monkeypatch):
    import api.tiles

    monkeypatch.setattr(api.tiles, "tile_settings", lambda timeout: ("SET LOCAL statement_timeout = 1",
                                                                     "SELECT pg_sleep(0.05)"))
    # zoom 17: a quick tile, never kept in the tile cache, so it is built (and times out) here
    r = demo_client.get(f"/tiles/WebMercatorQuad/{'/'.join(map(str, tile_of(biggest.lon, biggest.lat, 17)))}")
    assert r.status_code == 503 and r.json()["code"] == "query_timeout"
