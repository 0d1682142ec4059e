"""A feature's zonal statistics as a small chart in its map popup, in Chromium."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from api.app import create_app
from layers.settings import Settings
from layers.zonal import run_zonal
from tests.conftest import UNLIMITED, serving
from tests.layers.test_zonal import township, year_value  # noqa: F401  (the township and its rasters)

ZOOM_TO = "map.setView([arg[1], arg[0]], 16, {animate: false}); return true;"
CENTRE = ("const r = map.getContainer().getBoundingClientRect(); const s = map.getSize();"
          " return [r.left + s.x / 2, r.top + s.y / 2];")


@pytest.fixture(scope="module")
def zonal_url(township, tmp_path_factory):  # noqa: F811
    """The app serving the township, with both NDVI rasters summarized over the caragana plots."""
    engine = township["engine"]
    for key in ("ndvi_2020", "ndvi_2022"):
        run_zonal(engine, raster_id=township["rasters"][key].id, layer="caragana_plots")
    settings = Settings(database_url=township["url"].render_as_string(hide_password=False),
                        home=tmp_path_factory.mktemp("home"), **UNLIMITED)
    with serving(create_app(settings)) as url:
        yield url


def test_the_popup_of_a_plot_draws_its_ndvi_by_date(open_watched, zonal_url, township):  # noqa: F811
    with township["engine"].connect() as conn:
        fid, year, lon, lat = conn.execute(sa.text(
            "SELECT p.id, p.planted_year, ST_X(ST_PointOnSurface(p.geom)), ST_Y(ST_PointOnSurface(p.geom)) "
            "FROM caragana_plots p WHERE NOT EXISTS (SELECT 1 FROM caragana_plots o WHERE o.id <> p.id "
            "AND ST_DWithin(o.geom::geography, p.geom::geography, 100)) ORDER BY p.id LIMIT 1")).one()
    with open_watched(zonal_url) as w:
        w.open("/maps/caragana_plots?basemap=none")
        w.map_js(ZOOM_TO, [lon, lat])
        x, y = w.map_js(CENTRE)
        w.page.mouse.click(x, y)
        w.page.wait_for_selector(".leaflet-popup-content .landeco-zonal", timeout=15_000)
        assert w.page.get_attribute("html", "data-zonal") == f"caragana_plots:{fid}"
        caption = w.page.inner_text(".landeco-zonal-caption[data-kind='ndvi']")
        assert "归一化植被指数" in caption and "2022-07-15" in caption
        assert f"{year_value(year) + 0.05:.2f}" in caption  # the latest mean, as drawn
        chart = w.page.locator(".landeco-zonal svg.landeco-zonal-chart")
        assert chart.locator("polyline").count() == 1 and chart.locator("circle").count() == 2
        tips = chart.locator("circle title").all_text_contents()
        assert any(t.startswith("2020-07-15") for t in tips) and any(t.startswith("2022-07-15") for t in tips)
        assert w.errors == [] and w.outside == []
