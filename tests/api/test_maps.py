"""Map pages: Chinese by default, English on request, own-origin scripts, problems for bad input."""

import re

import pytest
import sqlalchemy as sa

from layers.registry import LAYERS
from layers.store.database import engine_for

PROBLEM = "application/problem+json"


def _outside_urls(page: str) -> set[str]:
    return {u for u in re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
            if u.startswith(("http://", "https://", "//")) and not u.startswith("http://localhost")}


def _decoded(page: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)


def test_overview_has_every_layer_in_chinese_and_loads_nothing_from_outside(demo_client):
    r = demo_client.get("/maps")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = _decoded(r.text)
    for layer in LAYERS.values():
        assert layer.zh in page
    assert "图例" in page and "面积" in page
    assert "/static/vendor/leaflet/leaflet.js" in page
    assert _outside_urls(r.text) == set()
    assert len(r.content) < 2_000_000


def test_english_labels_with_lang_en(demo_client):
    page = _decoded(demo_client.get("/maps", params={"lang": "en"}).text)
    assert "Caragana plots" in page and "Legend" in page and '"Area"' in page
    assert "柠条地块" not in page


def test_vendor_assets_are_served(demo_client):
    for path in ("leaflet/leaflet.js", "leaflet/leaflet.css", "jquery/jquery.min.js",
                 "bootstrap/bootstrap.bundle.min.js", "fontawesome/css/all.min.css",
                 "vectorgrid/Leaflet.VectorGrid.bundled.min.js"):
        assert demo_client.get(f"/static/vendor/{path}").status_code == 200, path


def test_layer_village_and_feature_maps(demo_url, demo_client):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        village, name = conn.execute(sa.text("SELECT code, name FROM villages ORDER BY code LIMIT 1")).one()
        fid, code = conn.execute(sa.text("SELECT id, code FROM land_leases ORDER BY id LIMIT 1")).one()
    page = _decoded(demo_client.get("/maps/caragana_plots", params={"by": "survival_rate"}).text)
    assert "苗木成活率（%）" in page
    page = _decoded(demo_client.get(f"/maps/villages/{village}").text)
    assert name in page
    page = _decoded(demo_client.get(f"/maps/land_leases/features/{fid}").text)
    assert code in page and "土地租赁" in page


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/maps/no_such_layer", 404, "unknown_layer"),
    ("/maps/villages/999999999999", 404, "unknown_village"),
    ("/maps/land_leases/features/999999", 404, "feature_not_found"),
    ("/maps/no_such_layer/features/1", 404, "unknown_layer"),
    ("/maps/caragana_plots?by=contractor", 400, "invalid_style_field"),
    ("/maps?on=2026-13-01", 400, "invalid_parameter"),
    ("/maps?basemap=google", 400, "invalid_parameter"),
])
def test_bad_requests_are_problems(demo_client, path, status, code):
    r = demo_client.get(path)
    assert r.status_code == status and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == code


def test_tianditu_needs_a_key(demo_client, monkeypatch):
    settings = demo_client.app.state.settings
    monkeypatch.setattr(settings, "tianditu_key", "")
    r = demo_client.get("/maps", params={"basemap": "tianditu_vec"})
    assert r.status_code == 400 and r.json()["code"] == "basemap_unavailable"
    monkeypatch.setattr(settings, "tianditu_key", "0123abcd")
    page = _decoded(demo_client.get("/maps").text)
    assert "tk=0123abcd" in page and "天地图影像" in page


def test_selection_map_and_bad_ids(demo_url, demo_client):
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        codes = dict(conn.execute(sa.text("SELECT id, code FROM land_leases ORDER BY id LIMIT 3")).all())
    r = demo_client.get("/maps/land_leases", params={"ids": ",".join(map(str, codes))})
    page = _decoded(r.text)
    assert r.status_code == 200 and "选定的 3 个要素" in page
    assert all(code in page for code in codes.values())
    for bad in ("a,b", "", ",".join(str(i) for i in range(6000))):
        r = demo_client.get("/maps/land_leases", params={"ids": bad})
        assert r.status_code == 400 and r.json()["code"] == "invalid_ids", bad
