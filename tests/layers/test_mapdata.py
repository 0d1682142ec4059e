"""Map features from PostGIS: scopes, the delineation in force, inline or tiles."""

from datetime import date

import pytest
import sqlalchemy as sa

from layers.mapdata import (
    MapScope,
    UnknownFeatureError,
    UnknownVillageError,
    map_bounds,
    map_layers,
    scope_for,
)
from layers.registry import LAYERS, get_layer
from layers.store.database import engine_for
from layers.symbology import MapContext


@pytest.fixture(scope="module")
def demo(demo_url):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        yield conn


def _by_key(layers):
    return {m.key: m for m in layers}


def test_overview_inlines_every_feature_with_display_values(demo):
    layers = _by_key(map_layers(demo, list(LAYERS), MapContext(on=date(2026, 11, 1))))
    assert next(iter(layers)) == "villages"
    for layer_id in ("subsidence_zones", "caragana_plots", "land_leases"):
        count = demo.scalar(sa.text(f"SELECT count(*) FROM {layer_id}"))
        features = layers[layer_id].geojson["features"]
        assert len(features) == count > 0
        props = features[0]["properties"]
        assert props["area_mu"].endswith(" 亩") and "_style" in props and "geom" not in props


def test_grazing_bans_show_the_delineation_in_force(demo):
    def ids(on):
        layer = _by_key(map_layers(demo, ["grazing_bans"], MapContext(on=on)))["grazing_bans"]
        return {f["id"] for f in layer.geojson["features"]}

    in_force = set(demo.scalars(sa.text("SELECT id FROM grazing_bans WHERE valid_from <= '2026-05-01' "
                                        "AND valid_to >= '2026-05-01'")))
    assert ids(date(2026, 5, 1)) == in_force
    assert ids(date(2021, 5, 1)) and ids(date(2021, 5, 1)).isdisjoint(in_force)


def test_village_scope_keeps_that_villages_parcels_only(demo):
    code = demo.scalar(sa.text("SELECT village_code FROM caragana_plots GROUP BY 1 ORDER BY count(*) DESC"))
    name = demo.scalar(sa.text("SELECT name FROM villages WHERE code = :c"), {"c": code})
    layers = map_layers(demo, list(LAYERS), MapContext(), scope=scope_for(demo, village=code))
    plots = _by_key(layers)["caragana_plots"].geojson["features"]
    assert plots and all(f["properties"]["village_name"].startswith(name) for f in plots)
    assert len(_by_key(layers)["villages"].geojson["features"]) == len(demo.scalars(
        sa.text("SELECT id FROM villages")).all()), "every frame stays for orientation"
    (south, west), (north, east) = map_bounds(demo, MapScope(village=code))
    (s0, w0), (n0, e0) = map_bounds(demo, MapScope())
    assert s0 <= south < north <= n0 and w0 <= west < east <= e0 and (north - south) < (n0 - s0)


def test_feature_scope_and_unknown_scopes(demo):
    fid = demo.scalar(sa.text("SELECT min(id) FROM land_leases"))
    layers = _by_key(map_layers(demo, ["land_leases"], MapContext(),
                                scope=scope_for(demo, feature=(get_layer("land_leases"), fid))))
    assert [f["id"] for f in layers["land_leases"].geojson["features"]] == [fid]
    with pytest.raises(UnknownVillageError):
        scope_for(demo, village="000000000000")
    with pytest.raises(UnknownFeatureError):
        scope_for(demo, feature=(get_layer("land_leases"), -1))


def test_layers_over_the_limit_come_from_tiles(demo):
    url = "/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}"
    layers = _by_key(map_layers(demo, ["caragana_plots", "subsidence_zones"], MapContext(), tiles_url=url,
                                inline_limit=100))
    plots = layers["caragana_plots"]
    assert plots.geojson is None
    # versioned (count and last change): the browser may keep the tiles of this URL
    assert plots.tiles_url.startswith("/collections/caragana_plots/tiles/WebMercatorQuad/{z}/{x}/{y}?v=")
    assert plots.tile_style.field == "planted_year" and plots.tile_style.colors
    assert "area_mu" in plots.tile_labels and "village_code" in plots.tile_labels
    assert layers["subsidence_zones"].geojson is not None, "small layers stay inline"
    assert layers["villages"].geojson is not None


def test_a_selection_maps_exactly_those_features_even_beyond_the_inline_limit(demo):
    ids = tuple(demo.scalars(sa.text("SELECT id FROM caragana_plots ORDER BY id DESC LIMIT 7")))
    scope = MapScope(selection=("caragana_plots", ids))
    layers = _by_key(map_layers(demo, ["caragana_plots", "land_leases"], MapContext(), scope=scope,
                                tiles_url="/t/{layer}/{z}/{x}/{y}", inline_limit=3))
    assert {f["id"] for f in layers["caragana_plots"].geojson["features"]} == set(ids)
    assert layers["land_leases"].geojson["features"] == []
    (south, west), (north, east) = map_bounds(demo, scope)
    inside = demo.scalar(sa.text(
        "SELECT bool_and(ST_Within(geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))) FROM caragana_plots "
        "WHERE id = ANY(:ids)"), {"w": west, "s": south, "e": east, "n": north, "ids": list(ids)})
    assert inside


def test_a_tiled_village_map_draws_that_villages_tiles_only(demo):
    code = demo.scalar(sa.text("SELECT village_code FROM caragana_plots LIMIT 1"))
    layers = _by_key(map_layers(demo, ["caragana_plots"], MapContext(), scope=MapScope(village=code),
                                tiles_url="/t/{layer}/{z}/{x}/{y}", inline_limit=1))
    assert layers["caragana_plots"].tile_filter == ("village_code", code)
