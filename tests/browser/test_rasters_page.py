"""The raster pages in a real browser: the list, one raster's footprint on a map, the form (signed in)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from layers import accounts
from layers.store.database import engine_for
from tests.api.test_uploads_crash import _port, _serve
from tests.layers.test_rasters import ndvi_file

PASSWORD = "bayar-rasters-2026"


def test_the_list_and_a_raster_with_its_footprint(watched, live_url):
    watched.page.goto(f"{live_url}/rasters?f=html")
    assert watched.page.inner_text("h1") == "栅格数据"
    rows = watched.page.locator("#rasters tr[data-kind]")
    assert rows.count() == 8  # the demo's NDVI and cover of four summers
    watched.page.select_option("#kind", "ndvi")
    watched.page.click("#filter button")
    watched.page.wait_for_url("**kind=ndvi**")
    assert watched.page.locator("#rasters tr[data-kind=ndvi]").count() == 4
    assert watched.page.locator("#rasters tr[data-kind=fvc]").count() == 0
    watched.page.locator("#rasters tr[data-kind=ndvi] a").last.click()
    watched.page.wait_for_selector("#footprint-map path.leaflet-interactive")
    assert watched.page.inner_text("#acquired") == "2022-07-15"
    assert "归一化植被指数" in watched.page.inner_text("#kind")
    assert watched.outside == [] and watched.errors == []


@pytest.fixture(scope="module")
def raster_server(new_database, tmp_path_factory) -> Iterator[tuple[str, URL]]:
    with new_database("landeco_test_rpage") as url:
        accounts.add_user(engine=engine_for(url.render_as_string(hide_password=False)), name="bayar",
                          roles=["surveyor"], password=PASSWORD)
        port = _port()
        proc = _serve(url, tmp_path_factory.mktemp("home"), port)
        yield f"http://127.0.0.1:{port}", url
        proc.terminate()
        proc.wait(timeout=30)


def test_a_surveyor_adds_a_raster_and_a_refusal_is_explained(open_watched, raster_server, tmp_path):
    base, _ = raster_server
    with open_watched(base, height=900, full_page=True) as w:
        w.page.goto(base + "/rasters/new")
        w.page.fill("#username", "bayar")
        w.page.fill("#password", PASSWORD)
        w.page.click("#sign-in")
        w.page.wait_for_url(base + "/rasters/new")
        far = ndvi_file(tmp_path, "far.tif", origin=(300_000.0, 3_000_000.0))
        w.page.set_input_files("#file", str(far))
        w.page.select_option("#kind", "ndvi")
        w.page.fill("#acquired", "2022-07-15")
        w.page.fill("#source", "Landsat 8")
        w.page.click("#add")
        w.page.wait_for_selector("#refused")
        assert w.page.inner_text("#refused-code") == "raster_outside_township"
        assert "栅格不在本镇范围内" in w.page.inner_text("#refused")
        assert w.page.input_value("#source") == "Landsat 8"  # the choices are kept
        w.page.set_input_files("#file", str(ndvi_file(tmp_path)))
        w.page.click("#add")
        w.page.wait_for_selector("#footprint-map path.leaflet-interactive")
        assert "/rasters/" in w.page.url and w.page.inner_text("#acquired") == "2022-07-15"
        # the refusal's page came with its status (422), which the browser logs; nothing else
        assert [e for e in w.errors if "status of 422" not in e] == [] and w.outside == []
