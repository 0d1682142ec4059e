"""Maps in a real browser: drawn, offline, in Chinese, clickable, toggled."""

from pathlib import Path

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


# -- the ecology staff's day (issue 15): legend, find, measure, date, print, offline ------------

_BOXES = """els => els.map(e => { const r = e.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom, e.textContent]; })"""


def _wait(page, expression: str, timeout: float = 15.0) -> None:
    """Wait until ``expression`` is true (wait_for_function evaluates text: the CSP refuses it)."""
    import time

    end = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.monotonic() < end, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def _pdf_text(body: bytes) -> str:
    import io

    from pypdf import PdfReader

    assert body.startswith(b"%PDF")
    return "".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_ecology_staffs_day(open_watched, live_url, demo, lang):
    from pyproj import Geod

    en = lang == "en"
    q = "?lang=en" if en else ""
    with open_watched(live_url) as w:
        page = w.page
        # open the overview: OpenStreetMap first, unreachable here, so the map says so and goes on
        w.open("/maps" + q)
        page.wait_for_selector("#basemap-notice:not([hidden])")
        notice = page.inner_text("#basemap-notice")
        assert ("without a basemap" in notice) if en else ("无底图" in notice)
        assert w.map_js("return map.hasLayer(window.landecoBasemaps.none) && "
                        "!map.hasLayer(window.landecoBasemaps.osm);")
        checked = page.locator(".leaflet-control-layers-base input:checked + span").inner_text()
        assert ("No basemap" if en else "无底图") in checked

        # the legend: every entry inside the viewport, and it folds away
        # (a raster's entry shows only while its overlay is on, and rasters start off)
        assert page.eval_on_selector_all(".landeco-legend-raster",
                                         "els => els.every(e => e.offsetParent === null)")
        outside_rasters = ":not(.landeco-legend-raster *)"
        boxes = page.eval_on_selector_all(
            f".landeco-legend-name{outside_rasters}, .landeco-legend-item{outside_rasters}", _BOXES)
        assert len(boxes) > 40
        for left, top, right, bottom, text in boxes:
            assert 0 <= left < right <= 1280 and 0 <= top < bottom <= 800, (text, left, top, right, bottom)
        legend_text = page.inner_text(".landeco-legend")
        for layer in LAYERS.values():
            assert (layer.en if en else layer.zh) in legend_text
        width = w.map_js("return map.getSize().x;")
        page.click("#legend-toggle")
        assert not page.locator(".landeco-legend-item").first.is_visible()
        assert w.map_js("return map.getSize().x;") > width, "the map takes the legend's room"
        page.click("#legend-toggle")
        assert page.locator(".landeco-legend-item").first.is_visible()

        # find a plot by its code: the map goes there and outlines it
        code, fid, w_, s_, e_, n_ = demo.execute(sa.text(
            "SELECT code, id, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) "
            "FROM caragana_plots ORDER BY id DESC LIMIT 1")).one()
        page.fill("#map-find-q", code.lower())
        page.press("#map-find-q", "Enter")
        _wait(page, f"document.documentElement.dataset.found === 'caragana_plots:{fid}'")
        lon, lat = w.map_js("const c = map.getCenter(); return [c.lng, c.lat];")
        assert w_ <= lon <= e_ and s_ <= lat <= n_
        assert page.locator('path[stroke="#00e5ff"]').count() == 1, "the plot found is highlighted"
        assert code in page.inner_text("#map-find-results")

        # measure a distance, then an area, in 亩 on the ellipsoid
        clicks = [(120, 300), (420, 300), (420, 600)]  # clear of the title and the layer control
        geod = Geod(ellps="WGS84")

        def click(x, y):
            left, top = w.map_js("const r = map.getContainer().getBoundingClientRect(); "
                                 "return [r.left, r.top];")
            page.mouse.click(left + x, top + y)
            page.wait_for_timeout(400)  # two clicks, not a double click

        page.click("#measure-distance")
        for x, y in clicks[:2]:
            click(x, y)
        _wait(page, "document.getElementById('measure-result').dataset.lengthM")
        lls = [w.map_js("const p = map.containerPointToLatLng(arg); return [p.lng, p.lat];", list(c))
               for c in clicks]
        expected = geod.line_length([p[0] for p in lls[:2]], [p[1] for p in lls[:2]])
        got = float(page.get_attribute("#measure-result", "data-length-m"))
        assert got == pytest.approx(expected, rel=5e-3)
        assert ("Distance" if en else "距离") in page.inner_text("#measure-result")
        page.click("#measure-distance")  # finish
        page.click("#measure-area")
        for x, y in clicks:
            click(x, y)
        _wait(page, "document.getElementById('measure-result').dataset.areaM2")
        area, _ = geod.polygon_area_perimeter([p[0] for p in lls], [p[1] for p in lls])
        got = float(page.get_attribute("#measure-result", "data-area-m2"))
        assert got == pytest.approx(abs(area), rel=5e-3)  # a click lands within a pixel
        mu = f"{got / (10_000 / 15):,.2f}"
        assert mu in page.inner_text("#measure-result") and ("mu" if en else "亩") in page.inner_text(
            "#measure-result")
        page.click("#measure-clear")
        assert page.locator(".leaflet-popup").count() == 0, "measuring clicks open no popup"

        # change the map date
        with page.expect_navigation():
            page.fill("#map-date", "2026-11-01")
            page.dispatch_event("#map-date", "change")
        page.wait_for_selector(".leaflet-control-layers")
        assert "on=2026-11-01" in page.url and page.input_value("#map-date") == "2026-11-01"
        _wait(page, "document.documentElement.dataset.tools === 'ready'")

        # print what is shown: the screen's box, the layers switched on, the date
        leases = "Land leases" if en else "土地租赁"
        page.locator(".leaflet-control-layers-overlays label", has_text=leases).click()
        _wait(page, "!document.getElementById('print-pdf').href.includes('land_leases')")
        href = page.get_attribute("#print-pdf", "href")
        assert "bbox=" in href and "on=2026-11-01" in href and "land_leases" not in href
        with page.expect_download() as download:
            page.click("#print-pdf")
        body = Path(download.value.path()).read_bytes()
        text = _pdf_text(body)
        if en:
            assert "Township of Otog Front Banner · land and ecology overview" in text
            assert "Township: Township of Otog Front Banner" in text and "Map date: 2026-11-01" in text
        else:
            assert "鄂托克前旗某镇 · 土地与生态总图" in text and "乡镇：鄂托克前旗某镇" in text
            assert "地图日期：2026-11-01" in text
        assert ("Land leases" if en else "土地租赁") not in text, "a layer switched off is not printed"
        png = page.request.get(page.get_attribute("#print-png", "href"))
        assert png.status == 200 and png.body().startswith(b"\x89PNG")
        assert all(u.startswith("https://tile.openstreetmap.org/") for u in w.outside)
        assert all("ERR_FAILED" in e for e in w.errors), w.errors


def test_the_home_pages_map_link_works_without_the_internet(watched, demo):
    """No network at all (every outside request aborted): the map says so and draws every layer."""
    watched.page.goto(watched.base + "/")
    watched.page.click("#go-maps")
    watched.page.wait_for_selector("#basemap-notice:not([hidden])")
    assert "无底图" in watched.page.inner_text("#basemap-notice")
    assert watched.paths() > _count(demo, "villages")
    assert watched.page.locator(".landeco-village-label").count() == _count(demo, "villages")
    assert all("ERR_FAILED" in e for e in watched.errors), watched.errors


def test_print_links_on_village_and_selection_pages(watched, demo):
    code = demo.scalar(sa.text("SELECT code FROM villages ORDER BY code LIMIT 1"))
    watched.open(f"/maps/villages/{code}?basemap=none")
    href = watched.page.get_attribute("#print-pdf", "href")
    assert f"/maps/villages/{code}.pdf?" in href and "bbox=" in href and "layers=" in href
    body = watched.page.request.get(href).body()
    assert body.startswith(b"%PDF")
    ids = demo.scalars(sa.text("SELECT id FROM subsidence_zones ORDER BY id LIMIT 2")).all()
    watched.open(f"/maps/subsidence_zones?basemap=none&ids={ids[0]},{ids[1]}")
    href = watched.page.get_attribute("#print-png", "href")
    assert "/maps/subsidence_zones.png?" in href and f"ids={ids[0]}%2C{ids[1]}" in href
    png = watched.page.request.get(href)
    assert png.status == 200 and png.body().startswith(b"\x89PNG")
    assert watched.errors == [] and watched.outside == []
