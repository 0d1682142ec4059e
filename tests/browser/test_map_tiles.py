"""A layer too big to inline is drawn from the serving layer's vector tiles."""

import pytest
import sqlalchemy as sa

from layers.store.database import engine_for


@pytest.fixture
def tiled(live_app):
    """Every layer above 50 features comes from tiles, for this test only."""
    settings = live_app.state.settings
    live_app.state.settings = settings.model_copy(update={"map_inline_limit": 50})
    yield
    live_app.state.settings = settings


def test_caragana_tiles_are_drawn_and_clickable(tiled, watched, demo_url):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        code, lon, lat = conn.execute(sa.text(
            "SELECT p.code, ST_X(ST_PointOnSurface(p.geom)), ST_Y(ST_PointOnSurface(p.geom)) "
            "FROM caragana_plots p ORDER BY p.area_mu DESC LIMIT 1")).one()
    watched.open("/maps/caragana_plots?basemap=none")
    assert "柠条地块" in watched.page.inner_text(".landeco-legend")
    watched.page.wait_for_function("() => document.documentElement.dataset.tilesLoaded")
    assert watched.page.locator("canvas.leaflet-tile").count() > 0
    assert watched.page.locator("path.leaflet-interactive").count() < 50, "plots are not inlined"
    watched.map_js("map.setView([arg[1], arg[0]], 17, {animate: false}); return true;", [lon, lat])
    watched.page.wait_for_function(
        "() => Number(document.documentElement.dataset.tilesLoaded) > 0 && "
        "document.querySelectorAll('canvas.leaflet-tile').length > 0")
    watched.page.wait_for_timeout(300)
    x, y = watched.map_js("const r = map.getContainer().getBoundingClientRect(); const s = map.getSize();"
                          " return [r.left + s.x / 2, r.top + s.y / 2];")
    watched.page.mouse.click(x, y)
    watched.page.wait_for_selector(".leaflet-popup-content")
    text = watched.page.inner_text(".leaflet-popup-content")
    assert code in text and "亩" in text and "种植年份" in text
    assert watched.errors == [] and watched.outside == []


def test_a_tile_is_fetched_once(tiled, browser, live_url):
    """Panning away and back draws the same tiles from the browser's cache, not the server.

    A page of its own: routing requests (the ``watched`` fixture) turns Chromium's cache off.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    network, cached, errors = [], [], []

    def received(e: dict) -> None:
        if "/tiles/" in e["response"]["url"]:
            (cached if e["response"].get("fromDiskCache") else network).append(e["response"]["url"])

    cdp.on("Network.responseReceived", received)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(live_url + "/maps/caragana_plots?basemap=none")
        page.wait_for_function("() => document.documentElement.dataset.tilesLoaded")
        first = list(network)
        assert first and all("?v=" in u for u in first)

        def move(js: str) -> None:
            page.evaluate("delete document.documentElement.dataset.tilesLoaded")
            page.evaluate("() => { const map = window[Object.keys(window).find(n => n.startsWith('map_'))];"
                          f" {js}\n}}")
            page.wait_for_function("() => document.documentElement.dataset.tilesLoaded")

        move("window._home = [map.getCenter(), map.getZoom()]; const c = map.getCenter();"
             " map.setView([c.lat + 3, c.lng + 3], map.getZoom(), {animate: false});")
        move("map.setView(window._home[0], window._home[1], {animate: false});")
        assert sorted(set(network)) == sorted(network), "a tile went over the network twice"
        assert set(first) <= set(cached), "the tiles drawn again came from the cache"
        assert errors == []
    finally:
        context.close()


def test_tiled_grazing_bans_draw_without_errors(watched, live_app):
    """Re-delineated areas from tiles: the map-date filter runs in the tile style."""
    settings = live_app.state.settings
    live_app.state.settings = settings.model_copy(update={"map_inline_limit": 1})
    try:
        watched.open("/maps/grazing_bans?basemap=none&on=2022-07-01")
        watched.page.wait_for_function("() => document.documentElement.dataset.tilesLoaded")
        assert watched.page.locator("canvas.leaflet-tile").count() > 0
        assert '"valid_from", "valid_to", "2022-07-01"' in watched.page.content()
        assert watched.errors == [] and watched.outside == []
    finally:
        live_app.state.settings = settings
