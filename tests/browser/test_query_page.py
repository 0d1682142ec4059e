"""The query page in a real browser: form in Chinese, answer as totals, table and map, offline."""

import pytest
import sqlalchemy as sa

from layers.store.database import engine_for


@pytest.fixture(scope="module")
def demo(demo_url):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        yield conn


def _village(demo) -> tuple[str, str, int]:
    """A village with leases in it: code, name and how many leases have area inside it.

    Leases along the boundary whose overlap is only a line (GEOS' predicates may still call
    that an overlap) have nothing inside and are not in the answer.
    """
    return demo.execute(sa.text(
        "SELECT v.code, v.name, count(*) FROM villages v JOIN land_leases l "
        "ON ST_Intersects(l.geom, v.geom) AND ST_Area(ST_Intersection(l.geom, v.geom)::geography) > 0 "
        "GROUP BY v.code, v.name ORDER BY count(*) DESC, v.code LIMIT 1")).one()


def test_village_query_from_the_form(watched, demo):
    code, name, n = _village(demo)
    watched.open("/query")
    assert "按面积和位置查询" in watched.page.inner_text("h1")
    watched.page.check("input[name=layers][value=land_leases]")
    watched.page.check(f"#villages-box input[value='{code}']")
    watched.page.click("#run")
    watched.page.wait_for_selector("#summary")
    row = watched.page.locator("#summary tr[data-layer=land_leases] td").all_inner_texts()
    assert row[0] == "土地租赁" and int(row[1].replace(",", "")) == n
    assert watched.page.locator("#results tbody tr").count() == n
    assert watched.paths() == n  # results drawn; village outlines are not interactive
    href = watched.page.locator(".maplinks a").first.get_attribute("href")
    assert "/maps/land_leases?ids=" in href and len(href.split("ids=")[1].split(",")) == n
    assert watched.page.locator(".downloads a", has_text="GeoPackage").count() == 1
    assert name in watched.page.inner_text("#villages-box")
    assert watched.outside == [] and watched.errors == []


def test_a_drawn_rectangle_is_the_place(watched, demo):
    lon, lat = demo.execute(sa.text(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c FROM land_leases ORDER BY area_mu DESC "
        "LIMIT 1) s")).one()
    watched.open("/query?lang=en")
    assert watched.page.inner_text("h1") == "Query by area and place"
    watched.map_js("map.setView([arg[1], arg[0]], 14, {animate: false}); return true;", [lon, lat])
    watched.page.click("#draw")
    watched.page.locator("#query-map").scroll_into_view_if_needed()  # the button may lie below the fold
    box = watched.page.locator("#query-map").bounding_box()
    watched.page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    watched.page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6)
    assert '"Polygon"' in watched.page.input_value("#geometry")
    watched.page.check("input[name=layers][value=land_leases]")
    watched.page.click("#run")
    watched.page.wait_for_selector("#summary")
    headers = watched.page.locator("#results thead th").all_inner_texts()
    assert "Inside (mu)" in headers
    def column(i):
        return [float(t.replace(",", "")) for t in
                watched.page.locator(f"#results tbody td:nth-child({i})").all_inner_texts()]

    inside, area = column(7), column(6)
    assert inside and all(0 < i <= a + 0.01 for i, a in zip(inside, area, strict=True))
    assert watched.outside == [] and watched.errors == []


def test_bad_input_is_said_on_the_page(watched):
    watched.open("/query?layers=land_leases&area_min=-5")
    assert "invalid_area" in watched.page.inner_text("#problem")


def test_a_conflict_check_is_drawn(watched):
    watched.open("/query")
    watched.page.select_option("select[name=check]", "leases_in_grazing_bans")
    watched.page.click("#run-check")
    watched.page.wait_for_selector("#conflict-summary")
    assert "租赁地块位于禁牧休牧区" in watched.page.inner_text("#conflict-summary")
    n = watched.page.locator("#results tbody tr").count()
    assert n > 0 and watched.paths() == n
    assert watched.outside == [] and watched.errors == []
