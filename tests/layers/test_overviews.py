"""Overview cells: low-zoom tiles drawn from them equal tiles grouped from every feature, after any write."""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from layers.demo import load_demo
from layers.overviews import BASE_ZOOM, has_cells
from layers.registry import LAYERS, get_layer
from layers.store.database import engine_for
from layers.tiles import tile_sql


@pytest.fixture(scope="module")
def township(new_database):
    """A demo township of its own: these tests write."""
    with new_database("landeco_test_overviews") as url:
        load_demo(url)
        yield engine_for(url.render_as_string(hide_password=False))


def _tiles_around(conn, layer, zooms=range(3, BASE_ZOOM + 1)):
    lon, lat = conn.execute(sa.text(f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c "
                                    f"FROM {layer.table}) s")).one()
    for z in zooms:
        n = 2 ** z
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (-1, -1)):
            yield z, x + dx, y + dy


def _features(conn, layer, z, x, y, overviews):
    data = conn.execute(sa.text(tile_sql(layer, z, x, y, overviews=overviews))).scalar()
    found = mapbox_vector_tile.decode(data or b"").get(layer.id, {"features": []})["features"]
    return sorted((str(f["geometry"]["coordinates"]), sorted(f["properties"].items())) for f in found)


def _assert_same(conn, layer):
    for z, x, y in _tiles_around(conn, layer):
        kept, grouped = _features(conn, layer, z, x, y, True), _features(conn, layer, z, x, y, False)
        assert kept == grouped, f"{layer.id} {z}/{x}/{y}: cells differ from grouping every feature"


@pytest.mark.parametrize("layer_id", [i for i, la in LAYERS.items() if has_cells(la)])
def test_cells_give_the_tiles_grouping_every_feature_gives(township, layer_id):
    with township.connect() as conn:
        _assert_same(conn, get_layer(layer_id))


def test_cells_follow_every_kind_of_write(township):
    layer = get_layer("caragana_plots")
    with township.begin() as conn:  # plain SQL, as psql would: moved, changed, copied, deleted
        conn.execute(sa.text("UPDATE caragana_plots SET geom = ST_Translate(geom, 0.05, 0.02) "
                             "WHERE id % 7 = 0"))
        conn.execute(sa.text("UPDATE caragana_plots SET method = 'enclosure', seedlings = seedlings + 999 "
                             "WHERE id % 5 = 0"))
        conn.execute(sa.text(
            "INSERT INTO caragana_plots (code, village_code, planted_year, method, seedlings, survival_rate, "
            "contractor, geom) SELECT code || '-copy', village_code, planted_year, method, seedlings, "
            "survival_rate, contractor, ST_Translate(geom, -0.03, 0) FROM caragana_plots WHERE id % 3 = 0"))
        conn.execute(sa.text("DELETE FROM caragana_plots WHERE id % 11 = 0"))
    with township.connect() as conn:
        _assert_same(conn, layer)
        counted = conn.execute(sa.text("SELECT sum(parcels) FROM layer_cells "
                                       "WHERE layer = 'caragana_plots'")).scalar()
        total = conn.execute(sa.text("SELECT count(*) FROM caragana_plots")).scalar()
        assert counted == total  # every plot in exactly one cell


def test_a_write_touching_many_cells_recomputes_them_all_alike(township, monkeypatch):
    """Past WHOLE_ABOVE touched cells the trigger regroups the whole layer, through a temporary table."""
    from layers import overviews

    layer = get_layer("caragana_plots")
    monkeypatch.setattr(overviews, "WHOLE_ABOVE", 0)  # every statement takes the whole-layer path
    with township.connect() as conn:
        trans = conn.begin()  # the function and the writes are rolled back: the module's township stays
        conn.execute(sa.text(overviews.function_sql(layer)))
        conn.execute(sa.text("UPDATE caragana_plots SET geom = ST_Translate(geom, 0.04, 0.01), "
                             "method = 'restoration' WHERE id % 4 = 0"))
        conn.execute(sa.text("DELETE FROM caragana_plots WHERE id % 9 = 0"))
        _assert_same(conn, layer)
        counted, area = conn.execute(sa.text("SELECT sum(parcels), sum(area_m2) FROM layer_cells "
                                             "WHERE layer = 'caragana_plots'")).one()
        total, total_area = conn.execute(sa.text("SELECT count(*), sum(area_m2) FROM caragana_plots")).one()
        assert counted == total and area == pytest.approx(total_area, rel=1e-12)
        trans.rollback()


def test_a_rolled_back_write_leaves_the_cells_as_they_were(township):
    totals = sa.text("SELECT count(*), sum(parcels), sum(area_m2) FROM layer_cells")
    with township.connect() as conn:
        before = conn.execute(totals).one()
    with township.connect() as conn:
        conn.execute(sa.text("DELETE FROM land_leases"))
        conn.rollback()
    with township.connect() as conn:
        assert conn.execute(totals).one() == before


def test_truncate_empties_the_layers_cells(township):
    with township.begin() as conn:
        conn.execute(sa.text("TRUNCATE eco_projects"))
    with township.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM layer_cells "
                                    "WHERE layer = 'eco_projects'")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM layer_cell_codes "
                                    "WHERE layer = 'eco_projects'")).scalar() == 0
