"""The edit page in a real browser: change an attribute, drag a vertex, save, see it in /versions.

The page writes, so it runs against its own server over a throwaway demo database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from api.app import create_app
from layers import accounts
from layers.demo import load_demo
from layers.settings import Settings
from layers.store.database import engine_for
from tests.browser.conftest import ARTIFACTS
from tests.conftest import UNLIMITED, serving

PASSWORD = "bayar-edits-2026"


@pytest.fixture(scope="module")
def edit_server(new_database, tmp_path_factory) -> Iterator[tuple[str, sa.Engine]]:
    with new_database("landeco_test_epage") as url:
        load_demo(url)
        text = url.render_as_string(hide_password=False)
        engine = engine_for(text)
        accounts.add_user(engine=engine, name="bayar", display_name="巴雅尔", roles=["surveyor"],
                          password=PASSWORD)
        settings = Settings(database_url=text, home=tmp_path_factory.mktemp("home"), **UNLIMITED)
        with serving(create_app(settings)) as base:
            yield base, engine


@pytest.fixture
def w(open_watched, edit_server):
    with open_watched(edit_server[0], height=900) as watched:
        yield watched


def _sign_in(w, base: str, path: str) -> None:
    w.page.goto(base + path)
    assert "/login?next=" in w.page.url
    w.page.fill("#username", "bayar")
    w.page.fill("#password", PASSWORD)
    w.page.click("#sign-in")
    w.page.wait_for_url(base + path)


def _plot(engine, offset: int = 0) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT id, code, seedlings, method, area_mu FROM caragana_plots ORDER BY area_mu DESC "
            "LIMIT 1 OFFSET :o"), {"o": offset}).mappings().one())


def _save(w, status: int) -> None:
    w.page.evaluate("document.getElementById('status').removeAttribute('data-status')")
    w.page.click("#save")
    w.page.wait_for_selector(f"#status[data-status='{status}']")


def test_edit_an_attribute_and_a_vertex_then_see_the_version(w, edit_server):
    base, engine = edit_server
    plot = _plot(engine)
    path = f"/maps/caragana_plots/features/{plot['id']}/edit"
    _sign_in(w, base, path)
    page = w.page
    page.wait_for_selector("#edit-map[data-ready='true']")
    assert page.inner_text("h1") == f"编辑柠条地块 #{plot['id']}"
    assert page.input_value("#f-code") == plot["code"]
    assert page.input_value("#f-method") == plot["method"]
    assert "种植方式" in page.inner_text("label[for='f-method']")
    assert int(page.get_attribute("#edit-map", "data-villages")) > 0  # the frames, drawn offline
    page.wait_for_selector("#edit-map[data-neighbours]")  # the layer's other features near it, as context

    # a value out of its range: refused with the upload's check, in Chinese, nothing written
    page.fill("#f-planted_year", "1800")
    _save(w, 422)
    assert "未保存" in page.inner_text("#status")
    problem = page.locator("#problems li[data-code='value_out_of_range']")
    assert "种植年份" in problem.inner_text() and "超出允许的范围" in problem.inner_text()
    page.screenshot(path=str(ARTIFACTS / "edit_page_refused.png"))
    assert _plot(engine)["seedlings"] == plot["seedlings"]

    page.fill("#f-planted_year", "2019")
    page.fill("#f-seedlings", "777")
    vertex = page.locator("#edit-map .marker-icon:not(.marker-icon-middle)").first
    box = vertex.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y + 15, steps=8)
    page.mouse.up()
    _save(w, 200)
    assert page.inner_text("#status") == "已保存。"
    page.screenshot(path=str(ARTIFACTS / "edit_page_saved.png"))
    after = _plot(engine)
    assert after["seedlings"] == 777 and after["area_mu"] != pytest.approx(plot["area_mu"], abs=1e-6)
    versions = page.request.get(f"{base}/collections/caragana_plots/items/{plot['id']}/versions").json()
    last = versions["versions"][-1]
    assert last["by"] == "bayar" and last["changes"]["attributes"]["seedlings"]["to"] == 777
    assert last["changes"]["moved_m"] > 1

    # someone else changes the feature meanwhile: the page's save is refused and says so
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE caragana_plots SET note = '外业补充' WHERE id = :id"),
                     {"id": plot["id"]})
    page.fill("#f-seedlings", "778")
    _save(w, 412)
    assert "其他人修改了该要素" in page.inner_text("#status") and page.is_visible("#reload")
    assert _plot(engine)["seedlings"] == 777
    assert w.outside == [] and not [e for e in w.errors if "412" not in e and "422" not in e]


def test_draw_a_new_feature_in_english(w, edit_server):
    base, engine = edit_server
    _sign_in(w, base, "/maps/caragana_plots/new-feature?lang=en")
    page = w.page
    page.wait_for_selector("#edit-map[data-ready='true']")
    assert page.inner_text("h1") == "New feature: Caragana plots"
    with engine.connect() as conn:  # an empty spot inside a village, as screen points are found below
        lon, lat, village = conn.execute(sa.text(
            "WITH c AS (SELECT v.code, ST_PointOnSurface(v.geom) AS p FROM villages v) "
            "SELECT ST_X(p), ST_Y(p), code FROM c WHERE NOT EXISTS (SELECT 1 FROM caragana_plots t "
            "WHERE ST_DWithin(t.geom::geography, c.p::geography, 400)) ORDER BY code LIMIT 1")).one()
    # centre the map on the spot at a zoom where 40 px are about 75 m
    page.evaluate("([lat, lon]) => window.landecoEditMap.setView([lat, lon], 16, {animate: false})",
                  [lat, lon])
    assert page.evaluate("window.landecoEditMap.getZoom()") == 16
    page.click(".leaflet-pm-icon-polygon")
    box = page.locator("#edit-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    points = [(cx - 20, cy - 20), (cx + 20, cy - 20), (cx + 20, cy + 20), (cx - 20, cy + 20),
              (cx - 20, cy - 20)]
    for px, py in points:
        page.mouse.click(px, py)
    page.fill("#f-code", "DRAWN-1")
    page.fill("#f-village_code", village)
    page.fill("#f-planted_year", "2026")
    page.select_option("#f-method", "enclosure")
    page.click("#save")
    page.wait_for_url("**/features/*/edit?lang=en")
    page.wait_for_selector("#edit-map[data-ready='true']")
    assert page.input_value("#f-code") == "DRAWN-1"
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots WHERE code = 'DRAWN-1'")) == 1
