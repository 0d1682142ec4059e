"""The staff home page and the OGC API – Features pages in a real browser: Chinese, offline, usable."""

from urllib.parse import quote

import pytest

from layers.registry import LAYERS

ITEMS = "/collections/caragana_plots/items"
#: The features Leaflet draws on the items map (canvas: no SVG paths to count).
DRAWN = ("() => { let n = 0; window.landecoItemsMap.eachLayer(l => {"
         " if (l instanceof L.Path) n += 1; }); return n; }")
#: Whether the items map shows every drawn feature whole.
IN_VIEW = ("() => { const m = window.landecoItemsMap; let b = null; m.eachLayer(l => {"
           " if (l instanceof L.Path) b = b ? b.extend(l.getBounds()) : L.latLngBounds(l.getBounds()); });"
           " return b !== null && m.getBounds().contains(b); }")
#: Basemap tiles are the one thing /maps asks from outside (api/maps.py); here they fail.
OSM = "https://tile.openstreetmap.org/"


def _goto(w, path: str) -> int:
    """Open ``path`` as a browser would and return the HTTP status of the page."""
    response = w.page.goto(w.base + path)
    w.page.wait_for_load_state("load")
    return response.status


def _follow(w, link) -> tuple[int, str]:
    """Click ``link`` and return the status and address of the page it opens."""
    with w.page.expect_navigation(wait_until="load") as nav:
        link.click()
    return nav.value.status, w.page.url


def _rows(w) -> int:
    return w.page.locator("table.features tbody tr").count()


def _matched(w, filter_text: str) -> int:
    """What the JSON API says the same filter matches."""
    r = w.page.request.get(f"{w.base}{ITEMS}?f=json&limit=1&filter={quote(filter_text)}")
    assert r.status == 200
    return r.json()["numberMatched"]


def test_a_visitor_sees_no_upload_tile_and_a_sign_in_link(watched):
    """Uploading needs a surveyor (tests/browser/test_uploads_page.py signs one in)."""
    assert _goto(watched, "/") == 200
    assert watched.page.locator("#go-uploads").count() == 0
    assert watched.page.inner_text("#sign-in-link") == "登录"


@pytest.mark.parametrize(("tile", "label", "path", "shown", "text"), [
    ("#go-maps", "地图", "/maps", ".landeco-legend", "柠条地块"),
    ("#go-query", "查询统计", "/query", "h1", "按面积和位置查询"),
    ("#go-collections", "图层数据", "/collections?f=html", "h1", "图层"),
    ("#go-api", "接口文档", "/api.html", ".swagger-ui .info .title", "landeco"),
])
def test_each_link_of_the_chinese_home_page_opens(watched, tile, label, path, shown, text):
    assert _goto(watched, "/") == 200
    assert watched.page.inner_text("h1") == "鄂托克前旗 · 土地与生态管理"
    link = watched.page.locator(tile)
    assert link.locator("strong").inner_text() == label
    status, url = _follow(watched, link)
    assert status == 200 and url == watched.base + path
    watched.page.wait_for_selector(shown)  # drawn by the page's scripts on /maps and /api.html
    assert text in watched.page.inner_text(shown)
    watched.page.wait_for_timeout(200)  # let late requests (tiles, the OpenAPI document) be made
    if path == "/maps":
        assert all(u.startswith(OSM) for u in watched.outside), watched.outside
        assert all("ERR_FAILED" in e for e in watched.errors), watched.errors
    else:
        assert watched.outside == [] and watched.errors == []


def test_english_home_page(watched):
    assert _goto(watched, "/?lang=en") == 200
    assert watched.page.inner_text("h1") == "Land and ecology of the township"
    tiles = [t.strip() for t in watched.page.locator(".tiles strong").all_inner_texts()]
    # uploading needs a surveyor
    assert tiles == ["Maps", "Query", "Half-year report", "Layers", "API documentation"]
    for layer in LAYERS.values():
        assert watched.page.locator(".tiles ~ ul a", has_text=layer.en).count() == 1
    status, url = _follow(watched, watched.page.locator("#go-collections"))
    assert status == 200 and "lang=en" in url
    assert watched.page.inner_text("h1") == "Layers"
    assert watched.outside == [] and watched.errors == []


def test_collections_page_lists_the_five_layers_in_chinese(watched):
    assert _goto(watched, "/collections?f=html") == 200
    assert watched.page.inner_text("h1") == "图层"
    titles = watched.page.locator("table.collections tbody tr td:first-child").all_inner_texts()
    assert titles == [layer.zh for layer in LAYERS.values()]
    ids = watched.page.locator("table.collections tbody tr td:nth-child(2)").all_inner_texts()
    assert ids == list(LAYERS)
    assert watched.outside == [] and watched.errors == []


def test_items_page_draws_every_row_on_its_map_offline(watched):
    assert _goto(watched, f"{ITEMS}?f=html") == 200
    watched.page.wait_for_function("() => window.landecoItemsMap !== undefined")
    rows = _rows(watched)
    assert rows > 0
    assert f"本页 {rows} 个" in watched.page.inner_text("p.summary")
    assert watched.page.evaluate(DRAWN) == rows
    assert watched.page.evaluate(IN_VIEW), "the map is fitted to the features"
    assert watched.outside == [] and watched.errors == []


def test_the_next_page_link_shows_the_following_rows(watched):
    assert _goto(watched, f"{ITEMS}?f=html&limit=50") == 200
    first = watched.page.locator("table.features tbody td:first-child").all_inner_texts()
    status, _ = _follow(watched, watched.page.locator("a[rel=next]", has_text="下一页"))
    assert status == 200
    assert "从第 51 个起" in watched.page.inner_text("p.summary")
    second = watched.page.locator("table.features tbody td:first-child").all_inner_texts()
    assert second and not set(first) & set(second)
    assert watched.page.evaluate(DRAWN) == len(second)
    assert watched.page.locator("a[rel=prev]", has_text="上一页").count() == 1
    assert watched.outside == [] and watched.errors == []


def test_the_filter_box_narrows_the_table_to_what_the_api_matches(watched):
    assert _goto(watched, f"{ITEMS}?f=html&limit=1000") == 200
    before = _rows(watched)
    matched = _matched(watched, "area_mu > 100")
    assert 0 < matched < before, "the demo has plots on both sides of 100 mu"
    watched.page.fill("input[name=filter]", "area_mu > 100")
    status, url = _follow(watched, watched.page.locator("form.items-filter button[type=submit]"))
    assert status == 200 and "filter=" in url
    watched.page.wait_for_function("() => window.landecoItemsMap !== undefined")
    assert _rows(watched) == matched
    assert f"共 {matched} 个要素" in watched.page.inner_text("p.summary")
    assert watched.page.evaluate(DRAWN) == matched
    assert watched.page.input_value("input[name=filter]") == "area_mu > 100"
    heads = watched.page.locator("table.features thead th").all_inner_texts()
    column = heads.index("面积（亩）") + 1
    areas = watched.page.locator(f"table.features tbody td:nth-child({column})").all_inner_texts()
    assert len(areas) == matched and all(float(a) >= 100 for a in areas)
    assert watched.outside == [] and watched.errors == []


def test_a_bad_filter_is_explained_on_the_page(watched):
    assert _goto(watched, f"{ITEMS}?f=html") == 200
    watched.page.fill("input[name=filter]", "area_mu >> 100")
    status, _ = _follow(watched, watched.page.locator("form.items-filter button[type=submit]"))
    assert status == 400, "a problem with the input, not a server error"
    alert = watched.page.inner_text("[role=alert]")
    assert "这个查询有问题" in alert and "cannot parse the filter" in alert
    assert watched.page.inner_text("[role=alert] code") == "area_mu >> 100"
    assert watched.page.inner_text("[role=alert] mark") == ">", "the second > is pointed at"
    assert watched.page.input_value("input[name=filter]") == "area_mu >> 100", "kept for correcting"
    assert _rows(watched) == 0
    assert watched.outside == []
    assert not [e for e in watched.errors if "400 (Bad Request)" not in e], watched.errors
