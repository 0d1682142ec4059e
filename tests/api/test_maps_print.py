"""Printed maps over HTTP and from the command line; the map's search and measuring routes."""

import io

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from pypdf import PdfReader
from pyproj import Geod
from typer.testing import CliRunner

from api.cli import app as cli

PROBLEM = "application/problem+json"


def _ink(png: bytes) -> float:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return float((pixels != 255).any(axis=1).mean())


@pytest.mark.parametrize("layer", ["subsidence_zones", "grazing_bans", "caragana_plots", "land_leases"])
def test_png_of_each_layer(demo_client, layer):
    r = demo_client.get(f"/maps/{layer}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert 50_000 < len(r.content) < 5_000_000
    assert _ink(r.content) > 0.02


def test_pdf_and_bad_requests(demo_client):
    r = demo_client.get("/maps/land_leases.pdf", params={"lang": "en"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    assert r.headers["content-disposition"] == 'inline; filename="land_leases.pdf"'
    for path, status, code in [("/maps/nope.png", 404, "unknown_layer"),
                               ("/maps/villages.gif", 400, "invalid_parameter"),
                               ("/maps/caragana_plots.png?by=contractor", 400, "invalid_style_field")]:
        r = demo_client.get(path)
        assert (r.status_code, r.headers["content-type"], r.json()["code"]) == (status, PROBLEM, code)


def test_landeco_map_writes_the_file(demo_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", demo_url.render_as_string(hide_password=False))
    runner = CliRunner()
    out = tmp_path / "柠条.png"
    result = runner.invoke(cli, ["map", "caragana_plots", "--out", str(out), "--by", "survival_rate"])
    assert result.exit_code == 0, result.output
    assert _ink(out.read_bytes()) > 0.02
    bad = runner.invoke(cli, ["map", "nope", "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 1 and "unknown_layer" in bad.output
    assert not (tmp_path / "x.png").exists()
    wrong = runner.invoke(cli, ["map", "villages", "--out", str(tmp_path / "x.gif")])
    assert wrong.exit_code == 2


def _pdf_text(body: bytes) -> str:
    assert body.startswith(b"%PDF")
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


@pytest.fixture(scope="module")
def demo(demo_url):
    with sa.create_engine(demo_url).connect() as conn:
        yield conn


def test_overview_pdf_has_title_township_dates_and_legend(demo_client):
    r = demo_client.get("/maps.pdf", params={"on": "2026-11-01"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = _pdf_text(r.content)
    for words in ("鄂托克前旗某镇 · 土地与生态总图", "乡镇：鄂托克前旗某镇", "数据日期：",
                  "地图日期：2026-11-01", "打印时间：", "图例", "北", "柠条地块", "土地租赁", "重度"):
        assert words in text, words
    en = _pdf_text(demo_client.get("/maps.pdf", params={"lang": "en"}).content)
    assert "Township of Otog Front Banner" in en and "Data as of:" in en and "Legend" in en


def test_screen_print_keeps_the_box_and_the_visible_layers_only(demo_client, demo):
    w, s, e, n = demo.execute(sa.text(
        "SELECT ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) FROM "
        "(SELECT ST_Extent(geom) x FROM caragana_plots) g")).one()
    bbox = f"{w},{s},{e},{n}"
    r = demo_client.get("/maps.pdf", params={"bbox": bbox, "layers": "villages,caragana_plots"})
    text = _pdf_text(r.content)
    assert "柠条地块" in text and "土地租赁" not in text and "禁牧" not in text
    png = demo_client.get("/maps.png", params={"bbox": bbox, "layers": "caragana_plots"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG") and _ink(png.content) > 0.02


@pytest.mark.parametrize("params, status, code", [
    ({"bbox": "1,2,3"}, 400, "invalid_bbox"),
    ({"bbox": "107,38,nan,39"}, 400, "invalid_bbox"),
    ({"bbox": "108,38,107,39"}, 400, "invalid_bbox"),
    ({"bbox": "-180,-90,180,90"}, 400, "invalid_bbox"),
    ({"bbox": "107,38,107.1,1e400"}, 400, "invalid_bbox"),
    ({"layers": "caragana_plots,pg_user"}, 400, "invalid_map_layers"),
    ({"layers": "<script>"}, 400, "invalid_map_layers"),
    ({"on": "2026-13-01"}, 400, "invalid_parameter"),
    ({"lang": "fr"}, 400, "invalid_parameter"),
])
def test_screen_print_refuses_hostile_parameters(demo_client, params, status, code):
    r = demo_client.get("/maps.pdf", params=params)
    assert (r.status_code, r.headers["content-type"], r.json()["code"]) == (status, PROBLEM, code)


def test_village_print_pdf_and_png(demo_client, demo):
    code, name = demo.execute(sa.text("SELECT code, name FROM villages ORDER BY code LIMIT 1")).one()
    r = demo_client.get(f"/maps/villages/{code}.pdf")
    assert r.status_code == 200
    text = _pdf_text(r.content)
    assert f"{name} · 土地与生态图" in text and "鄂托克前旗某镇" in text
    png = demo_client.get(f"/maps/villages/{code}.png", params={"lang": "en"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG") and _ink(png.content) > 0.02
    missing = demo_client.get("/maps/villages/NO-SUCH.pdf")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_village")


def test_selection_print(demo_client, demo):
    ids = demo.scalars(sa.text("SELECT id FROM subsidence_zones WHERE severity = 'severe' ORDER BY id")).all()
    r = demo_client.get("/maps/subsidence_zones.pdf", params={"ids": ",".join(map(str, ids))})
    assert r.status_code == 200
    assert f"采煤沉陷区 · 选定的 {len(ids)} 个要素" in _pdf_text(r.content)
    png = demo_client.get("/maps/subsidence_zones.png", params={"ids": str(ids[0])})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    bad = demo_client.get("/maps/subsidence_zones.pdf", params={"ids": "1,x"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_ids")


def test_search_finds_a_plot_by_code_and_a_village_by_name(demo_client, demo):
    code = demo.scalar(sa.text("SELECT code FROM caragana_plots ORDER BY id LIMIT 1"))
    r = demo_client.get("/maps/search", params={"q": code.lower()})
    assert r.status_code == 200
    first = r.json()["results"][0]
    assert (first["layer"], first["code"], first["exact"]) == ("caragana_plots", code, True)
    w, s, e, n = first["bbox"]
    assert w < e and s < n and first["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert first["url"].endswith(f"/maps/caragana_plots/features/{first['id']}")
    vcode, name = demo.execute(sa.text("SELECT code, name FROM villages ORDER BY code LIMIT 1")).one()
    found = demo_client.get("/maps/search", params={"q": name}).json()["results"]
    assert any(f["layer"] == "villages" and f["code"] == vcode for f in found)
    # LIKE wildcards are text, not patterns
    assert demo_client.get("/maps/search", params={"q": "%"}).json()["results"] == []
    for q in ("", " ", "x" * 101):
        assert demo_client.get("/maps/search", params={"q": q}).status_code == 400


def test_measure_is_ellipsoidal_and_in_mu(demo_client):
    ring = [(107.0, 38.0), (107.01, 38.0), (107.01, 38.01), (107.0, 38.01)]
    r = demo_client.get("/maps/measure", params={"coords": ";".join(f"{x},{y}" for x, y in ring)})
    assert r.status_code == 200
    m = r.json()
    geod = Geod(ellps="WGS84")
    area, _ = geod.polygon_area_perimeter([p[0] for p in ring], [p[1] for p in ring])
    assert m["area_m2"] == pytest.approx(abs(area), rel=1e-9)
    assert m["area_mu"] == pytest.approx(abs(area) / (10_000 / 15), rel=1e-9)
    assert m["length_m"] == pytest.approx(geod.line_length([p[0] for p in ring], [p[1] for p in ring]))
    two = demo_client.get("/maps/measure", params={"coords": "107,38;107.01,38"}).json()
    assert two["area_m2"] is None and 870 < two["length_m"] < 890
    for coords in ("107,38;181,38", "107,38;nan,1", "1;2", "", ";".join(["107,38"] * 1001)):
        bad = demo_client.get("/maps/measure", params={"coords": coords})
        assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM, coords


def test_landeco_map_prints_the_overview_a_village_and_a_selection(demo_url, demo, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", demo_url.render_as_string(hide_password=False))
    runner = CliRunner()
    code, name = demo.execute(sa.text("SELECT code, name FROM villages ORDER BY code LIMIT 1")).one()
    out = tmp_path / "village.pdf"
    result = runner.invoke(cli, ["map", "all", "--village", code, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = _pdf_text(out.read_bytes())
    assert f"{name} · 土地与生态图" in text and "乡镇：鄂托克前旗某镇" in text
    overview = tmp_path / "overview.png"
    assert runner.invoke(cli, ["map", "all", "--out", str(overview)]).exit_code == 0
    assert overview.read_bytes().startswith(b"\x89PNG")
    ids = demo.scalars(sa.text("SELECT id FROM land_leases ORDER BY id LIMIT 3")).all()
    sel = tmp_path / "sel.pdf"
    result = runner.invoke(cli, ["map", "land_leases", "--ids", ",".join(map(str, ids)), "--out", str(sel)])
    assert result.exit_code == 0, result.output
    assert "土地租赁 · 选定的 3 个要素" in _pdf_text(sel.read_bytes())
    bad = runner.invoke(cli, ["map", "all", "--bbox", "1,2,3", "--out", str(tmp_path / "x.pdf")])
    assert bad.exit_code == 1 and "invalid_bbox" in bad.output
