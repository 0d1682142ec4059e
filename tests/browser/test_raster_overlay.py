"""Raster overlays drawn in Chromium: PNG tiles load, the opacity and the date slider work."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from api.app import create_app
from layers.demo import load_demo
from layers.rasters import add_raster
from layers.settings import Settings
from tests.conftest import UNLIMITED, serving
from tests.raster_samples import CENTRE, write_raster


def _ndvi(shift: float) -> np.ndarray:
    """6 km square: greener towards its centre (by ``shift``), a nodata hole in one corner."""
    yy, xx = np.mgrid[0:600, 0:600]
    dist = np.hypot(xx - 300, yy - 300) / 300
    data = np.clip(0.9 - dist * 0.8 + shift, -0.2, 0.9).astype("float32")
    data[:120, :120] = -9999
    return data


@pytest.fixture(scope="module")
def raster_site(new_database, tmp_path_factory):
    """A server over the demo township with NDVI rasters of 2021 and 2023 on its centre."""
    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("tifs")
    with new_database("landeco_test_rtiles_browser") as url:
        load_demo(url)
        settings = Settings(database_url=url.render_as_string(hide_password=False), home=home, **UNLIMITED)
        engine = sa.create_engine(settings.database_url)
        ids = [add_raster(engine, settings, write_raster(folder / f"{year}.tif", _ndvi(shift), nodata=-9999),
                          kind="ndvi", acquired=f"{year}-07-15", source="test").id
               for year, shift in ((2021, -0.3), (2023, 0.1))]
        engine.dispose()
        with serving(create_app(settings)) as base:
            yield base, ids


def _raster_srcs(page) -> list[str]:
    return page.eval_on_selector_all(".landeco-raster-tiles img.leaflet-tile",
                                     "els => els.map(e => e.getAttribute('src'))")


def test_raster_tiles_draw_and_follow_the_opacity_and_date_controls(open_watched, raster_site):
    base, (old, new) = raster_site
    with open_watched(base) as w:
        w.open(f"/maps?basemap=none&raster={new}")
        w.map_js("map.setView([arg[1], arg[0]], 13, {animate: false}); return true;", list(CENTRE))
        page = w.page
        # PNG tiles of the newest raster load: 256 px images, decoded
        page.wait_for_function("""() => {
            const imgs = [...document.querySelectorAll('.landeco-raster-tiles img.leaflet-tile-loaded')];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth === 256);
        }""")
        srcs = _raster_srcs(page)
        assert srcs and all(f"/rasters/{new}/tiles/WebMercatorQuad/13/" in s for s in srcs), srcs
        # the date in the layer control, on the map and in the legend
        assert "2023-07-15" in page.inner_text(".leaflet-control-layers")
        assert "2023-07-15" in page.inner_text(".landeco-raster-panel")
        legend = page.locator('.landeco-legend-raster[data-raster="raster_ndvi"]')
        assert legend.is_visible()
        assert "2023-07-15" in legend.inner_text() and "茂密植被" in legend.inner_text()
        assert "linear-gradient" in legend.locator(".landeco-ramp").get_attribute("style")
        # opacity: the tile layer follows the slider
        opacity = page.locator(".landeco-raster-opacity")
        assert opacity.input_value() == "75"
        opacity.focus()
        for _ in range(5):
            page.keyboard.press("ArrowLeft")
        assert opacity.input_value() == "50"
        assert page.eval_on_selector(".landeco-raster-tiles", "el => el.style.opacity") == "0.5"
        assert "50%" in page.inner_text(".landeco-raster-panel")
        # the date slider: one step back shows the 2021 raster's tiles
        dates = page.locator(".landeco-raster-dates")
        assert dates.input_value() == "1"
        dates.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            "(old) => { const imgs = [...document.querySelectorAll("
            "'.landeco-raster-tiles img.leaflet-tile-loaded')]; return imgs.length > 0 && imgs.every("
            "i => i.getAttribute('src').includes('/rasters/' + old + '/') && i.naturalWidth === 256); }",
            arg=old)
        assert all(f"/rasters/{old}/tiles/" in s for s in _raster_srcs(page))
        assert "2021-07-15" in page.inner_text(".leaflet-control-layers")
        assert "2021-07-15" in page.inner_text(".landeco-raster-panel")
        assert "2021-07-15" in legend.inner_text()
        assert page.eval_on_selector("html", "el => el.dataset.rasterChosen") == f"raster_ndvi:{old}"
        # switched off in the layer control: the controls and the legend entry go with it
        control = page.locator(".leaflet-control-layers label", has_text="2021-07-15")
        control.click()
        page.wait_for_function("() => !document.querySelector('.landeco-raster-tiles')")
        assert not legend.is_visible()
        assert not page.locator(".landeco-raster-panel").is_visible()
        control.click()  # and back on; for the screenshot, the raster over the village frames alone
        for other in ("禁牧休牧区", "土地租赁", "柠条地块", "采煤沉陷区", "林草重点工程"):
            page.locator(".leaflet-control-layers label", has_text=other).click()
        page.wait_for_function(
            "() => document.querySelectorAll('.landeco-raster-tiles img.leaflet-tile-loaded').length > 0")
        page.wait_for_timeout(300)
        assert w.errors == [] and w.outside == []


def test_raster_overlay_in_english_is_off_by_default(open_watched, raster_site):
    base, _ = raster_site
    with open_watched(base) as w:
        w.open("/maps?basemap=none&lang=en")
        page = w.page
        assert "Vegetation index (NDVI) · 2023-07-15" in page.inner_text(".leaflet-control-layers")
        assert page.locator(".landeco-raster-tiles").count() == 0  # off: no tile asked for
        assert not page.locator(".landeco-raster-panel").is_visible()
        page.locator(".leaflet-control-layers label", has_text="Vegetation index (NDVI)").click()
        page.wait_for_function(
            "() => document.querySelectorAll('.landeco-raster-tiles img.leaflet-tile').length > 0")
        assert "Opacity" in page.inner_text(".landeco-raster-panel")
        assert "dense vegetation" in page.inner_text('.landeco-legend-raster[data-raster="raster_ndvi"]')
        assert w.errors == [] and w.outside == []
