"""Maps in a real browser: drawn, offline, in Chinese, clickable, toggled."""

import pytest
import sqlalchemy as sa

from layers.registry import LAYERS
from layers.store.database import engine_for

ZOOM_TO = "map.setView([arg[1], arg[0]], 16, {animate: false}); return true;"
CENTRE = ("const r = map.getContainer().getBoundingClientRect(); const s = map.getSize();"
          " return [r.left + s.x / 2, r.top + s.y / 2];")


@pytest.fixture(scope="module")
def demo(demo_url):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        yield conn


def _count(demo, table: str, where: str = "TRUE", **params) -> int:
    return demo.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"), params)


def _plot(demo):
    """A caragana plot outside every lease, with a point inside it."""
    return demo.execute(sa.text(
        "SELECT p.code, p.planted_year, ST_X(ST_PointOnSurface(p.geom)), ST_Y(ST_PointOnSurface(p.geom)) "
        "FROM caragana_plots p WHERE NOT EXISTS (SELECT 1 FROM land_leases l "
        "WHERE ST_Intersects(l.geom, p.geom)) ORDER BY p.id LIMIT 1")).one()


def _click_centre(w):
    x, y = w.map_js(CENTRE)
    w.page.mouse.click(x, y)
    w.page.wait_for_selector(".leaflet-popup-content")
    return w.page.inner_text(".leaflet-popup-content")


def test_overview_draws_every_feature_offline_with_a_chinese_legend(watched, demo):
    watched.open("/maps?basemap=none&on=2026-11-01")
    legend = watched.page.inner_text(".landeco-legend")
    for layer in LAYERS.values():
        assert layer.zh in legend
    assert "90 天内到期" in legend and "休牧（休牧期外）" in legend
    in_force = _count(demo, "grazing_bans", "valid_from <= '2026-11-01' AND valid_to >= '2026-11-01'")
    expected = sum(_count(demo, t) for t in LAYERS if t != "grazing_bans") + in_force
    assert watched.paths() == expected
    assert watched.page.locator(".landeco-village-label").count() == _count(demo, "villages")
    assert "km" in watched.page.inner_text(".leaflet-control-scale")
    assert watched.outside == [] and watched.errors == []


def test_a_click_opens_the_popup_of_that_plot(watched, demo):
    code, year, lon, lat = _plot(demo)
    watched.open("/maps?basemap=none")
    watched.map_js(ZOOM_TO, [lon, lat])
    text = _click_centre(watched)
    assert code in text and str(year) in text and "种植年份" in text and "亩" in text
    link = watched.page.locator(".leaflet-popup-content a", has_text="要素地图")
    link.click()
    watched.page.wait_for_selector(".landeco-map-title")
    assert code in watched.page.inner_text(".landeco-map-title"), "the link opens the plot's own map"
    assert watched.errors == [] and watched.outside == []


def test_the_layer_control_toggles_a_layer_and_its_legend(watched, demo):
    watched.open("/maps?basemap=none")
    before = watched.paths()
    plots = _count(demo, "caragana_plots")
    watched.page.locator(".leaflet-control-layers-overlays label", has_text="柠条地块").click()
    assert watched.paths() == before - plots
    assert not watched.page.locator('.landeco-legend-layer:has-text("柠条地块")').is_visible()
    watched.page.locator(".leaflet-control-layers-overlays label", has_text="柠条地块").click()
    assert watched.paths() == before
    assert watched.page.locator('.landeco-legend-layer:has-text("柠条地块")').is_visible()


def test_without_network_the_basemap_fails_quietly_and_the_layers_stay(watched, demo):
    watched.open("/maps")  # OpenStreetMap first: its tiles cannot load here
    watched.page.wait_for_timeout(300)
    assert watched.outside, "the basemap was asked for"
    assert all(u.startswith("https://tile.openstreetmap.org/") for u in watched.outside)
    assert watched.paths() > 0
    assert all("ERR_FAILED" in e for e in watched.errors), watched.errors


def test_english_map(watched):
    watched.open("/maps/caragana_plots?lang=en&basemap=none&by=survival_rate")
    legend = watched.page.inner_text(".landeco-legend")
    assert "Caragana plots" in legend and "Survival rate" in legend and "Villages" in legend
    assert watched.errors == []


def test_village_map_shows_its_parcels_only(watched, demo):
    code, name = demo.execute(sa.text(
        "SELECT v.code, v.name FROM villages v JOIN caragana_plots p ON p.village_code = v.code "
        "GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1")).one()
    watched.open(f"/maps/villages/{code}?basemap=none&on=2026-11-01")
    assert name in watched.page.inner_text(".landeco-map-title")
    own = sum(_count(demo, t, "village_code = :c", c=code) for t in LAYERS
              if t not in ("villages", "grazing_bans"))
    own += _count(demo, "grazing_bans", "village_code = :c AND valid_from <= '2026-11-01' "
                  "AND valid_to >= '2026-11-01'", c=code)
    assert watched.paths() == own + _count(demo, "villages")
    zoom = watched.map_js("return map.getZoom();")
    assert zoom >= 11, "zoomed to the village"
    assert watched.errors == [] and watched.outside == []


def test_feature_map_zooms_to_the_feature_and_its_popup(watched, demo):
    fid, code, lon, lat = demo.execute(sa.text(
        "SELECT id, code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM land_leases "
        "ORDER BY id LIMIT 1")).one()
    watched.open(f"/maps/land_leases/features/{fid}?basemap=none")
    assert code in watched.page.inner_text(".landeco-map-title")
    assert watched.paths() == 1 + _count(demo, "villages")
    watched.map_js("map.setView([arg[1], arg[0]], map.getZoom(), {animate: false}); return true;", [lon, lat])
    text = _click_centre(watched)
    assert code in text and "承租方" in text
    assert watched.errors == [] and watched.outside == []


def test_selection_map_draws_the_selected_features_only(watched, demo):
    ids = demo.scalars(sa.text("SELECT id FROM subsidence_zones WHERE severity = 'severe' ORDER BY id")).all()
    watched.open(f"/maps/subsidence_zones?basemap=none&ids={','.join(map(str, ids))}")
    assert f"选定的 {len(ids)} 个要素" in watched.page.inner_text(".landeco-map-title")
    assert watched.paths() == len(ids) + _count(demo, "villages")
    assert watched.errors == [] and watched.outside == []
