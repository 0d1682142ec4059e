"""Tile statements: checked addresses, the attributes maps need, features where they belong."""

import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from layers.mapdata import village_names
from layers.registry import LAYERS, get_layer
from layers.store.database import engine_for
from layers.symbology import MapContext, style_fields, symbology
from layers.tiles import (
    BUFFER,
    EXTENT,
    InvalidTileError,
    TileAddress,
    TileOutOfRangeError,
    UnknownTileMatrixSetError,
    multi_tile_sql,
    parse_tile,
    tile_columns,
    tile_sql,
)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile holding a point."""
    n = 2 ** z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


@pytest.fixture(scope="module")
def demo(demo_url):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        yield conn


def _tile(conn: sa.Connection, sql: str) -> dict:
    data = conn.exec_driver_sql(sql).scalar()
    return mapbox_vector_tile.decode(bytes(data)) if data else {}


@pytest.mark.parametrize(("z", "x", "y", "error"), [
    ("a", "0", "0", InvalidTileError), ("1.5", "0", "0", InvalidTileError),
    ("-1", "0", "0", InvalidTileError),
    ("25", "0", "0", InvalidTileError), ("1", "2", "0", TileOutOfRangeError),
    ("1", "0", "-1", TileOutOfRangeError), ("0", "0", "1", TileOutOfRangeError),
])
def test_bad_addresses_are_refused(z, x, y, error):
    with pytest.raises(error) as exc:
        parse_tile("WebMercatorQuad", z, x, y)
    assert 400 <= exc.value.status < 500


def test_only_web_mercator_quad():
    assert parse_tile("WebMercatorQuad", "24", str(2 ** 24 - 1), "0") == TileAddress(24, 2 ** 24 - 1, 0)
    with pytest.raises(UnknownTileMatrixSetError):
        parse_tile("WorldCRS84Quad", 0, 0, 0)


@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_tiles_carry_what_the_map_styles_and_shows(layer_id, demo):
    """Every property the map's tile style, filter and popup read is in the tile."""
    layer = get_layer(layer_id)
    cols = tile_columns(layer)
    needed = {"id", "code", *style_fields(layer)}
    if layer.has_village:
        needed.add("village_code")
    for by in (None, *style_fields(layer)):
        sym = symbology(layer, MapContext(lang="zh", by=by), {})
        needed |= set(sym.tile_labels(village_names(demo)))
        needed.add(sym.tile_style().field)
    assert needed <= set(cols)
    assert "note" not in cols and "extra" not in cols and "geom" not in cols


def test_a_detail_tile_holds_every_feature_it_touches_with_its_attributes(demo):
    lon, lat = demo.execute(sa.text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p "
                                    "FROM caragana_plots ORDER BY area_mu DESC LIMIT 1) s")).one()
    z, x, y = tile_of(lon, lat, 15)
    tile = _tile(demo, tile_sql(get_layer("caragana_plots"), z, x, y))
    assert list(tile) == ["caragana_plots"]
    layer = tile["caragana_plots"]
    assert layer["extent"] == EXTENT
    rows = {r.id: r for r in demo.execute(sa.text(
        "SELECT id, code, village_code, planted_year, method, round(area_mu::numeric, 2)::float8 AS area_mu "
        "FROM caragana_plots WHERE ST_Intersects(geom, ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326))"),
        {"z": z, "x": x, "y": y})}
    got = {f["properties"]["id"]: f for f in layer["features"]}
    assert set(rows) <= set(got) and rows
    for fid, row in rows.items():
        f = got[fid]
        assert f["id"] == fid
        p = f["properties"]
        assert (p["code"], p["village_code"], p["planted_year"], p["method"], p["area_mu"]) == (
            row.code, row.village_code, row.planted_year, row.method, row.area_mu)
        assert "parcels" not in p
    for f in layer["features"]:
        coords = f["geometry"]["coordinates"]
        flat = list(_points(coords))
        assert all(-BUFFER <= c <= EXTENT + BUFFER for pt in flat for c in pt)


def _points(coords):
    if coords and isinstance(coords[0], (int, float)):
        yield coords
    else:
        for c in coords:
            yield from _points(c)


def test_small_features_become_cells_at_low_zoom_and_none_is_lost(demo):
    """Below the detail zoom, features of a few pixels are counted into cells, not dropped."""
    z, x, y = tile_of(107.2, 38.2, 10)
    tile = _tile(demo, tile_sql(get_layer("caragana_plots"), z, x, y))
    feats = tile["caragana_plots"]["features"]
    cells = [f for f in feats if "parcels" in f["properties"]]
    single = [f for f in feats if "parcels" not in f["properties"]]
    assert cells, "the demo's plots are a few pixels at zoom 10"
    assert all(f["properties"]["method"] and f["properties"]["planted_year"] for f in cells)
    centred = demo.scalar(sa.text(
        "SELECT count(*) FROM caragana_plots, ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) e "
        "WHERE geom && e AND ST_Contains(e, ST_SetSRID(ST_Centroid(Box2D(geom)::geometry), 4326))"),
        {"z": z, "x": x, "y": y})
    assert sum(f["properties"]["parcels"] for f in cells) + len(single) >= centred


def test_multi_layer_tile_has_one_layer_per_collection(demo):
    (x0, y0, x1, y1) = demo.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                            "FROM (SELECT ST_Extent(geom) e FROM villages) s")).one()
    z, x, y = tile_of((x0 + x1) / 2, (y0 + y1) / 2, 6)  # the whole township in one tile
    tile = _tile(demo, multi_tile_sql(None, z, x, y))
    assert set(tile) == set(LAYERS)
    for layer_id, layer in tile.items():
        assert layer["features"], layer_id
    two = _tile(demo, multi_tile_sql([get_layer("villages"), get_layer("land_leases")], z, x, y))
    assert set(two) == {"villages", "land_leases"}


@pytest.mark.parametrize("z", [6, 10, 14])
def test_the_tile_citus_is_sent_equals_the_one_server_tile(demo, z):
    """On Citus the rows go through a materialized CTE first; the encoded tile is the same."""
    lon, lat = demo.execute(sa.text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p "
                                    "FROM caragana_plots ORDER BY id LIMIT 1) s")).one()
    z, x, y = tile_of(lon, lat, z)
    plots = get_layer("caragana_plots")
    def built(sql: str) -> bytes:
        return bytes(demo.exec_driver_sql(sql).scalar() or b"")

    one = built(tile_sql(plots, z, x, y))
    assert one and built(tile_sql(plots, z, x, y, materialize=True)) == one
    assert built(multi_tile_sql(None, z, x, y, materialize=True)) == built(multi_tile_sql(None, z, x, y))


def test_an_empty_tile_is_empty_bytes(demo):
    assert demo.exec_driver_sql(tile_sql(get_layer("caragana_plots"), 12, 0, 0)).scalar() in (b"", None)
    assert demo.exec_driver_sql(multi_tile_sql(None, 12, 0, 0)).scalar() in (b"", None)


def test_tiled_bans_carry_their_validity_and_the_map_filters_on_the_map_date(demo):
    from datetime import date

    from layers.mapdata import map_layers

    on = date(2022, 7, 1)
    [_, bans] = map_layers(demo, ["grazing_bans"], MapContext(lang="zh", on=on),
                           tiles_url="/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}", inline_limit=1)
    assert bans.tiles_url and bans.tile_valid == ("valid_from", "valid_to", "2022-07-01")
    row = demo.execute(sa.text("SELECT ST_X(p), ST_Y(p), valid_from::text, valid_to::text FROM ("
                               "SELECT ST_PointOnSurface(geom) p, valid_from, valid_to FROM grazing_bans "
                               "WHERE valid_from IS NOT NULL ORDER BY id LIMIT 1) s")).one()
    tile = _tile(demo, tile_sql(get_layer("grazing_bans"), *tile_of(row[0], row[1], 14)))
    props = [f["properties"] for f in tile["grazing_bans"]["features"]]
    assert any(p.get("valid_from") == row[2] and p.get("valid_to") == row[3] for p in props)
