"""Hostile values in the data never run in a visitor's browser: every page shows them as text.

A throwaway township whose village names, feature codes, lessees, notes and the rest are
script and markup, served by uvicorn; every page that shows data is opened in Chromium, its
popups and tooltips too. Each page is visited twice: under landeco's Content-Security-Policy
(where a violation fails the test) and with the policy bypassed, so that escaping alone is
shown to be enough.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from api.app import create_app
from layers import accounts
from layers.demo import load_demo
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import UNLIMITED, serving

#: What a surveyor's file or a careless edit could put in any text field.
SURVEYOR_PASSWORD = "hostile-surveyor-pw"
HOSTILE = (
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "</script><script>window.__pwned=1</script>",
    "'-alert(1)-'<svg onload=window.__pwned=1>\u2028",
)


def _hostile(column: str) -> str:
    """SQL giving row ``id`` one of the hostile values, numbered (codes are unique)."""
    cases = " ".join(f"WHEN {i} THEN {_sql(v)}" for i, v in enumerate(HOSTILE))
    return f"{column} = (CASE id % {len(HOSTILE)} {cases} END) || ' #' || id"


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def hostile(new_database, tmp_path_factory) -> Iterator[tuple[str, sa.Connection, object]]:
    """(base URL, connection, app) of a server over a township full of hostile text."""
    with new_database("landeco_test_hostile") as url:
        load_demo(url)
        engine = engine_for(url.render_as_string(hide_password=False))
        extra = json.dumps({HOSTILE[1]: HOSTILE[0]})
        with engine.begin() as conn:
            for table, columns in {"villages": ("name", "note"),
                                   "caragana_plots": ("code", "contractor", "note"),
                                   "land_leases": ("code", "lessee", "project", "contract_no", "note"),
                                   "subsidence_zones": ("code", "name", "mine", "note"),
                                   "grazing_bans": ("code", "name", "document_no", "note")}.items():
                conn.execute(sa.text(f"UPDATE {table} SET {', '.join(_hostile(c) for c in columns)}, "
                                     "extra = CAST(:extra AS jsonb)"), {"extra": extra})
        accounts.add_user(engine=engine, name="hostile-surveyor", roles=["surveyor"],
                          password=SURVEYOR_PASSWORD)
        settings = Settings(database_url=url.render_as_string(hide_password=False),
                            home=tmp_path_factory.mktemp("home"), **UNLIMITED)
        app = create_app(settings)
        with serving(app) as base, engine.connect() as conn:
            yield base, conn, app


@pytest.fixture(params=["csp", "escaping-only"])
def w(request, open_watched, hostile):
    with open_watched(hostile[0], bypass_csp=request.param == "escaping-only") as watched:
        dialogs: list[str] = []

        def dialog(d) -> None:
            dialogs.append(d.message)
            d.dismiss()

        watched.page.on("dialog", dialog)
        watched.dialogs = dialogs
        yield watched


def _harmless(w, shows: tuple[str, ...] = ()) -> None:
    """Nothing ran, no dialog opened, and each of ``shows`` is on the page as text."""
    w.page.wait_for_timeout(150)  # an onerror handler fires after the image fails
    assert w.page.evaluate("() => window.__pwned") is None, w.page.url
    assert w.dialogs == [], w.dialogs
    assert w.page.locator("img[src=x], svg[onload]").count() == 0
    text = w.page.evaluate("() => document.body.textContent")
    for value in shows:
        assert value in text, (value, w.page.url)


def _one(conn: sa.Connection, sql: str):
    return conn.execute(sa.text(sql)).one()


# a click on the first feature whose properties (as the page holds them) mention the payload
_CLICK = """
let hit = null;
map.eachLayer(l => { if (!hit && l.feature && JSON.stringify(l.feature.properties).includes('pwned')
                         && (arg !== 'own popup' || l.getPopup())) hit = l; });
if (!hit) return false;
hit.fire('click', {latlng: hit.getBounds ? hit.getBounds().getCenter() : hit.getLatLng()}, true);
return true;
"""


def _popup_text(w) -> str:
    w.page.wait_for_selector(".leaflet-popup-content")
    return w.page.inner_text(".leaflet-popup-content")


def test_home_and_layer_pages(w, hostile):
    for path in ("/", "/collections?f=html", "/collections/land_leases?f=html",
                 "/collections/land_leases/queryables?f=html"):
        w.page.goto(w.base + path)
        _harmless(w)


def test_overview_map_labels_and_popups(w, hostile):
    _, conn, _ = hostile
    names = [r[0] for r in conn.execute(sa.text("SELECT name FROM villages ORDER BY id LIMIT 4"))]
    w.open("/maps?basemap=none")
    _harmless(w, tuple(names))  # the village labels
    assert w.map_js(_CLICK)
    assert "pwned" in _popup_text(w)
    _harmless(w)


@pytest.mark.parametrize("layer", ["land_leases", "caragana_plots", "subsidence_zones", "grazing_bans"])
def test_layer_map_popup_shows_the_values_as_text(w, hostile, layer):
    _, conn, _ = hostile
    code, note = _one(conn, f"SELECT code, note FROM {layer} ORDER BY id LIMIT 1")
    w.page.goto(f"{w.base}/maps/{layer}?basemap=none")
    w.page.wait_for_selector(".leaflet-control-layers")
    w.map_js(f"""map.eachLayer(l => {{ if (l.feature && l.feature.id === {json.dumps(
        conn.scalar(sa.text(f"SELECT id FROM {layer} ORDER BY id LIMIT 1")))}) {{
        l.fire('click', {{latlng: l.getBounds().getCenter()}}, true); }} }});""")
    popup = _popup_text(w)
    assert code in popup and note in popup, popup
    _harmless(w)


def test_village_and_feature_maps_carry_the_names_in_their_titles(w, hostile):
    _, conn, _ = hostile
    code, name = _one(conn, "SELECT code, name FROM villages ORDER BY id LIMIT 1")
    w.open(f"/maps/villages/{code}?basemap=none")
    assert w.page.inner_text(".landeco-map-title").startswith(name)
    assert w.page.title().startswith(name)
    _harmless(w, (name,))
    fid, fcode = _one(conn, "SELECT id, code FROM land_leases WHERE id % 4 = 2 ORDER BY id LIMIT 1")
    w.open(f"/maps/land_leases/features/{fid}?basemap=none")
    assert fcode in w.page.inner_text(".landeco-map-title")
    _harmless(w, (fcode,))


def test_items_table_tooltip_and_one_item(w, hostile):
    _, conn, _ = hostile
    w.page.goto(f"{w.base}/collections/land_leases/items?f=html&limit=8")
    w.page.wait_for_function("() => window.landecoItemsMap !== undefined")
    codes = [r[0] for r in conn.execute(sa.text("SELECT code FROM land_leases ORDER BY id LIMIT 8"))]
    _harmless(w, tuple(codes))
    w.page.evaluate("""() => { let done = false; window.landecoItemsMap.eachLayer(l => {
        if (!done && l.feature) { l.openTooltip(l.getBounds().getCenter()); done = true; } }); }""")
    w.page.wait_for_selector(".leaflet-tooltip")
    assert w.page.inner_text(".leaflet-tooltip") in codes
    _harmless(w)
    fid, lessee = _one(conn, "SELECT id, lessee FROM land_leases WHERE id % 4 = 3 ORDER BY id LIMIT 1")
    w.page.goto(f"{w.base}/collections/land_leases/items/{fid}?f=html")
    w.page.wait_for_function("() => window.landecoItemsMap !== undefined")
    _harmless(w, (lessee,))
    # a filter that fails echoes the hostile text back as text
    w.page.goto(f"{w.base}/collections/land_leases/items?f=html&filter=" + HOSTILE[2].replace("#", "%23"))
    _harmless(w)


def test_query_page_with_a_result_and_with_a_conflict_check(w, hostile):
    _, conn, _ = hostile
    code, name = _one(conn, "SELECT v.code, v.name FROM villages v WHERE EXISTS (SELECT 1 FROM land_leases l "
                            "WHERE l.village_code = v.code) ORDER BY v.id LIMIT 1")
    w.page.goto(f"{w.base}/query?layers=land_leases&villages={code}")
    w.page.wait_for_selector("#summary")
    w.page.wait_for_function("() => window.map_query !== undefined")
    lease = w.page.inner_text("#results tbody tr td:nth-child(2)")
    assert "pwned" in lease
    _harmless(w, (name, lease))
    assert w.map_js(_CLICK.replace("map.eachLayer", "window.map_query.eachLayer"), "own popup")
    assert "pwned" in _popup_text(w)
    _harmless(w)
    w.page.goto(f"{w.base}/query?check=leases_on_subsidence")
    w.page.wait_for_selector("#conflict-summary")
    assert "pwned" in w.page.inner_text("#results")
    _harmless(w)
    assert w.map_js(_CLICK.replace("map.eachLayer", "window.map_query.eachLayer"), "own popup")
    assert "pwned" in _popup_text(w)
    _harmless(w)


def test_upload_report_of_a_hostile_file(w, hostile):
    ring = [[107.2, 38.2], [107.201, 38.2], [107.201, 38.201], [107.2, 38.201], [107.2, 38.2]]
    props = {"code": HOSTILE[0], "village_code": HOSTILE[2], "method": HOSTILE[1], HOSTILE[1]: HOSTILE[3],
             "note": HOSTILE[3]}
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}]}
    w.page.goto(w.base + "/login?next=/uploads")  # uploading needs a surveyor
    w.page.fill("#username", "hostile-surveyor")
    w.page.fill("#password", SURVEYOR_PASSWORD)
    w.page.click("#sign-in")
    w.page.wait_for_url(w.base + "/uploads")
    w.page.set_input_files("#file", files=[{"name": '"><img src=x onerror=window.__pwned=1>.geojson',
                                           "mimeType": "application/geo+json",
                                           "buffer": json.dumps(fc).encode()}])
    w.page.select_option("#layer", "caragana_plots")
    w.page.click("#check")
    w.page.wait_for_selector("#report")
    w.page.wait_for_selector("#preview-map[data-features]", state="attached")  # its script ran
    # a column name, and the file's (browsers send its quote as %22)
    _harmless(w, (HOSTILE[1], "<img src=x onerror=window.__pwned=1>.geojson"))
    assert HOSTILE[1] in w.page.inner_text("#mapping")
    assert "pwned" in w.page.inner_text("#problems")  # the refused values, quoted


def test_vector_tile_popup_shows_the_values_as_text(w, hostile):
    _, conn, app = hostile
    code, lon, lat = _one(conn, "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                                "FROM caragana_plots ORDER BY area_mu DESC LIMIT 1")
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"map_inline_limit": 0})  # every layer from tiles
    try:
        w.open("/maps/caragana_plots?basemap=none")
        w.page.wait_for_function("() => document.documentElement.dataset.tilesLoaded")
        w.map_js("map.setView([arg[1], arg[0]], 17, {animate: false}); return true;", [lon, lat])
        w.page.wait_for_function("() => Number(document.documentElement.dataset.tilesLoaded) > 0 && "
                                 "document.querySelectorAll('canvas.leaflet-tile').length > 0")
        w.page.wait_for_timeout(300)
        x, y = w.map_js("const r = map.getContainer().getBoundingClientRect(); const s = map.getSize();"
                        " return [r.left + s.x / 2, r.top + s.y / 2];")
        w.page.mouse.click(x, y)
        assert code in _popup_text(w)
        _harmless(w)
    finally:
        app.state.settings = settings
