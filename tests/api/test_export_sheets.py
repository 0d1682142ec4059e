"""Files people open in Excel: words for codes, village names, % shown as %, widths, a totals row.

Re-read as Excel would (openpyxl for XLSX, the csv module for CSV); a hostile lessee name
must stay text. Machine formats keep codes so that they upload back.
"""

from __future__ import annotations

import csv
import io
import zipfile
from urllib.parse import unquote

import pyogrio
import pytest
from openpyxl import load_workbook
from shapely.geometry import box

from layers.export import MEASURE_DBF_NAMES, shapefile_names
from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import PLOTS, V1, V2

HOSTILE = "=HYPERLINK(\"http://evil.example\",\"点我\")"


@pytest.fixture(scope="module")
def client(new_database, tmp_path_factory):
    with new_database("landeco_test_sheets") as url:
        cases.build(url)
        with engine_for(url.render_as_string(hide_password=False)).begin() as conn:
            cases._insert(conn, "land_leases", {"code": "L9", "village_code": V2, "lessee": HOSTILE,
                                                "purpose": "solar", "kind": "lease", "status": "active"},
                          box(107.12, 38.01, 107.13, 38.02))
        with client_for(url, tmp_path_factory.mktemp("home")) as c:
            yield c


def _xlsx(r):
    assert r.status_code == 200, r.text
    return load_workbook(io.BytesIO(r.content))


def test_xlsx_reads_as_words_with_formats_widths_and_totals(client):
    wb = _xlsx(client.get("/export/caragana_plots?format=xlsx"))
    assert wb.sheetnames == ["柠条地块"]
    ws = wb["柠条地块"]
    rows = list(ws.values)
    head = list(rows[0])
    assert head[:3] == ["编号", "嘎查村", "嘎查村代码"]
    assert "苗木成活率（%）" in head and "种植方式" in head and "面积（亩）" in head
    body = rows[1:-1]
    assert [r[0] for r in body] == sorted(PLOTS)
    method = head.index("种植方式")
    assert {r[method] for r in body} == {"划区围封"}  # the word, not `enclosure`
    c1 = dict(zip(head, body[0], strict=True))
    assert c1["嘎查村"] == "特布德嘎查" and c1["嘎查村代码"] == V1
    rate = head.index("苗木成活率（%）")
    cell = ws.cell(row=2, column=rate + 1)
    assert cell.value == pytest.approx(0.8) and cell.number_format.endswith("%")
    area = ws.cell(row=2, column=head.index("面积（亩）") + 1)
    assert area.number_format == "#,##0.00" and area.value == round(area.value, 2)
    total = dict(zip(head, rows[-1], strict=True))
    assert total["编号"] == "合计（3 个）"
    assert total["面积（亩）"] == pytest.approx(sum(r[head.index("面积（亩）")] for r in body), abs=0.02)
    # survival weighted by area over the plots that have one (C3 has none)
    a = {r[0]: r[head.index("面积（亩）")] for r in body}
    expected = (0.8 * a["C1"] + 0.6 * a["C2"]) / (a["C1"] + a["C2"])
    assert total["苗木成活率（%）"] == pytest.approx(expected, rel=1e-3)
    assert ws.cell(row=len(rows), column=1).font.b  # the totals row is bold
    widths = {k: d.width for k, d in ws.column_dimensions.items()}
    assert widths["A"] >= len("合计（3 个）") and widths["B"] >= 2 * len("特布德嘎查")


def test_xlsx_file_name_and_english(client):
    r = client.get("/export/land_leases?format=xlsx")
    assert "土地租赁.xlsx" in unquote(r.headers["content-disposition"])
    en = _xlsx(client.get("/export/land_leases?format=xlsx&lang=en"))
    rows = list(en["Land leases"].values)
    assert rows[0][:3] == ("Code", "Village", "Village code")
    assert "Solar" in {c for r in rows for c in r} and rows[-1][0] == "Total (6 features)"


def test_a_hostile_lessee_stays_text_in_xlsx_and_csv(client):
    rows = list(_xlsx(client.get("/export/land_leases?format=xlsx"))["土地租赁"].values)
    cells = [c for r in rows for c in r if isinstance(c, str) and "HYPERLINK" in c]
    assert cells == ["'" + HOSTILE]
    text = client.get("/export/land_leases?format=csv").content.decode("utf-8-sig")
    lessees = [r[r.index("'" + HOSTILE)] for r in csv.reader(io.StringIO(text)) if "'" + HOSTILE in r]
    assert lessees == ["'" + HOSTILE]
    assert "\n" + HOSTILE not in text and "," + HOSTILE not in text


def test_csv_for_excel_has_bom_words_percent_and_totals(client):
    r = client.get("/export/caragana_plots?format=csv&geometry=none")
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert "柠条地块.csv" in unquote(r.headers["content-disposition"])
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    head = rows[0]
    c1 = dict(zip(head, rows[1], strict=True))
    assert c1["种植方式"] == "划区围封" and c1["嘎查村"] == "特布德嘎查" and c1["苗木成活率（%）"] == "80.0%"
    assert rows[-1][0] == "合计（3 个）"
    float(c1["面积（亩）"])  # a plain number Excel reads, two decimals
    assert len(c1["面积（亩）"].split(".")[1]) == 2


def test_a_query_xlsx_has_one_chinese_sheet_per_layer(client):
    r = client.post("/query?format=xlsx", json={"layers": ["land_leases", "caragana_plots"],
                                               "place": {"villages": [V1]}})
    wb = _xlsx(r)
    assert wb.sheetnames == ["土地租赁", "柠条地块"]
    head = [c.value for c in wb["土地租赁"][1]]
    assert "范围内面积（亩）" in head
    assert "查询结果.xlsx" in unquote(r.headers["content-disposition"])


def test_machine_formats_keep_codes(client, tmp_path):
    r = client.get("/export/caragana_plots?format=gpkg")
    (tmp_path / "c.gpkg").write_bytes(r.content)
    frame = pyogrio.read_dataframe(tmp_path / "c.gpkg")
    assert set(frame["method"]) == {"enclosure"} and "village_name" not in frame.columns


def test_shapefile_names_follow_one_rule(client, tmp_path):
    r = client.get("/export/caragana_plots?format=shp")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        zf.extractall(tmp_path)
    frame = pyogrio.read_dataframe(tmp_path / "caragana_plots.shp")
    names = [c for c in frame.columns if c != "geometry"]
    assert names == [n.upper() for n in names]  # all upper case: no `XZQDM` beside `code`
    assert {"CODE", "XZQDM", "YEAR", "METHOD", "SURVIVAL", "CONTRACTOR", "AREA_MU"} <= set(names)
    assert set(frame["METHOD"]) == {"enclosure"}


@pytest.mark.parametrize("layer_id", sorted(LAYERS))
def test_every_layer_has_distinct_dbf_names_the_importer_reads_back(layer_id):
    layer = LAYERS[layer_id]
    names = shapefile_names(layer)
    fields = [f.name for f in layer.all_fields]
    assert all(len(names[n].encode()) <= 10 and names[n].isascii() for n in names)
    assert len(set(names.values())) == len(names)
    back = layer.file_columns()
    assert all(back[names[n]].name == n for n in fields)  # the importer maps each back
    assert set(MEASURE_DBF_NAMES.values()).isdisjoint(back)


def test_sheet_names_are_safe():
    from gis.sheets import safe_text, sheet_name

    assert sheet_name("a/b:c*d?[e]") == "a_b_c_d__e_"
    assert sheet_name("土地租赁", ["土地租赁"]) == "土地租赁(2)"
    assert [safe_text(x) for x in ("+1", "@x", "-", "\tx", "ok")] == ["'+1", "'@x", "'-", "'\tx", "ok"]


@pytest.mark.parametrize("fmt, suffix", [("shp", ".zip"), ("gpkg", ".gpkg")])
def test_an_exported_file_reads_back_into_its_layer(client, tmp_path, fmt, suffix):
    """Every column of an exported shapefile or GeoPackage maps to its field (a dry run)."""
    from layers.importer import ImportOptions, run_import

    path = tmp_path / f"caragana_plots{suffix}"
    path.write_bytes(client.get(f"/export/caragana_plots?format={fmt}").content)
    settings = client.app.state.settings
    with engine_for(settings.database_url).connect() as conn, conn.begin():
        report = run_import(conn, path, tmp_path, ImportOptions("caragana_plots", mode="upsert"), write=False)
    mapped = {m.field for m in report.mapping if m.field and m.how != "extra"}
    assert mapped >= {f.name for f in LAYERS["caragana_plots"].all_fields}
    assert report.features == len(PLOTS) and report.errors == 0, report.problems


def test_a_csv_of_several_layers_says_which_layer_each_row_is(client):
    r = client.post("/query?format=csv&geometry=none", json={"layers": ["land_leases", "caragana_plots"]})
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["图层", "编号"]
    layers = [row[0] for row in rows[1:]]
    assert layers == ["土地租赁"] * 7 + ["柠条地块"] * 4  # six leases and three plots, each with its totals
    totals = [row[1] for row in rows[1:] if row[1].startswith("合计")]
    assert totals == ["合计（6 个）", "合计（3 个）"]
