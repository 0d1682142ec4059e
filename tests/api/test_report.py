"""The work report's figures: each recomputed here on the demo township, in every format.

Each answerable figure is computed again in this file, independently (plain SQL on the
geometries, and geopandas for the caragana), and compared with what ``GET /reports/{period}``
answers; the XLSX is re-read with openpyxl, the PDF's text extracted with pypdf.
"""

from __future__ import annotations

import io
import time
from datetime import datetime
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import geopandas as gpd
import openpyxl
import pytest
import sqlalchemy as sa
from pypdf import PdfReader
from typer.testing import CliRunner

from api.cli import app as cli
from layers.demo import load_demo
from layers.periods import parse_period
from layers.report import build_report
from layers.report_files import to_pdf
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import client_for, job_finished

MU = 10_000 / 15  # m² per 亩
H1 = ("2022-01-01", "2022-06-30")
H2_2021 = ("2021-07-01", "2021-12-31")


@pytest.fixture(scope="module")
def township(new_database):
    """The demo township in a database of this module's own (the livestock tests write to it)."""
    with new_database("landeco_test_report") as url:
        load_demo(url)
        yield url


@pytest.fixture(scope="module")
def engine(township):
    return engine_for(township.render_as_string(hide_password=False))


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home")) as c:
        yield c


@pytest.fixture(scope="module")
def h1(client):
    r = client.get("/reports/2022H1", headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def _fig(report: dict, fid: str) -> dict:
    return next(f for s in report["sections"] for f in s["figures"] if f["id"] == fid)


def _one(engine, sql: str, **params) -> float:
    with engine.connect() as conn:
        return float(conn.scalar(sa.text(sql), params) or 0)


def _area_mu(engine, table: str, where: str, **params) -> float:
    return _one(engine, f"SELECT sum(ST_Area(geom::geography)) / {MU} FROM {table} WHERE {where}", **params)


# -- each figure, recomputed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fid", "kind", "scale", "digits"),
    [
        ("land_acquired", "acquisition", 1, 2),
        ("land_temporary", "temporary_use", 1, 2),
        ("land_leased", "lease", 10_000, 4),
    ],
)
def test_land_figures_are_the_leases_started_in_the_half_year(h1, engine, fid, kind, scale, digits):
    fig = _fig(h1, fid)
    for value, (start, end) in ((fig["value"], H1), (fig["previous"], H2_2021)):
        expected = (
            _area_mu(
                engine,
                "land_leases",
                "kind = :k AND start_date >= :s AND start_date <= :e",
                k=kind,
                s=start,
                e=end,
            )
            / scale
        )
        assert value == pytest.approx(expected, abs=0.6 * 10**-digits)
    n = _one(
        engine,
        "SELECT count(*) FROM land_leases WHERE kind = :k AND start_date BETWEEN :s AND :e",
        k=kind,
        s=H1[0],
        e=H1[1],
    )
    assert fig["count"] == n
    assert fig["change"] == pytest.approx(fig["value"] - fig["previous"], abs=10**-digits)


def test_leases_per_village(h1, engine):
    fig = _fig(h1, "land_temporary")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT v.name, sum(ST_Area(l.geom::geography)) / {MU} FROM land_leases l JOIN villages v "
                "ON v.code = l.village_code WHERE l.kind = 'temporary_use' "
                "AND l.start_date BETWEEN :s AND :e "
                "GROUP BY v.name"
            ),
            {"s": H1[0], "e": H1[1]},
        ).all()
    got = {v["name"]: v["value"] for v in fig["villages"] if v["value"]}
    assert set(got) == {name for name, _ in rows}
    for name, mu in rows:
        assert got[name] == pytest.approx(mu, abs=0.006)


@pytest.mark.parametrize(
    ("fid", "column"),
    [
        ("households_inventoried", "households_total"),
        ("households_relocated", "households_relocated"),
        ("compensation", "compensation_wan_yuan"),
    ],
)
def test_subsidence_figures_count_by_survey_date(h1, engine, fid, column):
    fig = _fig(h1, fid)
    for value, (start, end) in ((fig["value"], H1), (fig["previous"], H2_2021)):
        expected = _one(
            engine,
            f"SELECT sum({column}) FROM subsidence_zones WHERE surveyed_on BETWEEN :s AND :e",
            s=start,
            e=end,
        )
        assert value == pytest.approx(expected, abs=0.006)
    assert fig["unit"] == {"compensation": "万元"}.get(fid, "户")


def test_caragana_planted_with_geopandas(h1, township):
    """Year precision: the half-year counts its calendar year, against the year before."""
    url = township.render_as_string(hide_password=False)
    plots = gpd.read_postgis(
        "SELECT planted_year, geom FROM caragana_plots", engine_for(url), geom_col="geom"
    )
    projected = plots.to_crs(4545)  # CGCS2000 Gauss-Krüger, CM 108°E: the township lies on it
    by_year = projected.assign(mu=projected.area / MU).groupby("planted_year")["mu"].sum() / 10_000
    fig = _fig(h1, "caragana_planted")
    assert fig["value"] == pytest.approx(by_year[2022], rel=2e-3)
    assert fig["previous"] == pytest.approx(by_year[2021], rel=2e-3)
    assert fig["widened"] and fig["counted"] == "2022" and fig["previous_counted"] == "2021"


def test_fences_projects_and_watersheds_of_the_year(h1, engine):
    fences = _fig(h1, "fences")
    assert fences["previous"] == pytest.approx(
        _one(
            engine, "SELECT sum(ST_Length(geom::geography)) / 10000 FROM fence_lines WHERE built_year = 2021"
        ),
        abs=6e-5,
    )
    assert fences["value"] == pytest.approx(
        _one(
            engine, "SELECT sum(ST_Length(geom::geography)) / 10000 FROM fence_lines WHERE built_year = 2022"
        ),
        abs=6e-5,
    )
    for fid, table in (("eco_projects", "eco_projects"), ("watersheds", "watersheds")):
        fig = _fig(h1, fid)
        assert fig["value"] == pytest.approx(_area_mu(engine, table, "year = 2022") / 10_000, abs=6e-5)
        assert fig["previous"] == pytest.approx(_area_mu(engine, table, "year = 2021") / 10_000, abs=6e-5)


def test_bans_redrawn_in_the_half_year_they_take_effect(client, engine):
    r = client.get("/reports/2024H1?f=json").json()
    fig = _fig(r, "bans_redrawn")
    expected = (
        _area_mu(
            engine, "grazing_bans", "regime = 'full_ban' AND valid_from BETWEEN '2024-01-01' AND '2024-06-30'"
        )
        / 10_000
    )
    assert expected > 0 and fig["value"] == pytest.approx(expected, abs=6e-5)
    assert fig["previous"] == 0  # nothing was delineated in 2023 H2: a computed zero, features listed


def test_change_patches_rectified_count_in_the_half_year_of_their_step(client, engine):
    # the demo takes its patches' steps today (the township's day): they count in this half-year
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    first = today.month <= 6
    key = f"{today.year}H{1 if first else 2}"
    start, end = (f"{today.year}-01-01", f"{today.year}-06-30") if first else (
        f"{today.year}-07-01", f"{today.year}-12-31")
    r = client.get(f"/reports/{key}?f=json").json()
    where = "status = 'rectified' AND status_at BETWEEN CAST(:a AS date) AND CAST(:b AS date)"
    count = _one(engine, f"SELECT count(*) FROM change_patches WHERE {where}", a=start, b=end)
    assert count > 0 and _fig(r, "patches_rectified")["value"] == count
    area = _area_mu(engine, "change_patches", where, a=start, b=end)
    assert _fig(r, "patches_rectified_area")["value"] == pytest.approx(area, rel=1e-6)
    assert _fig(r, "patches_rectified")["previous"] == 0  # nothing was rectified before the demo


def test_each_figure_links_to_the_features_behind_it(client, h1):
    fig = _fig(h1, "land_temporary")
    assert fig["how"]["cql2"].startswith("kind = 'temporary_use' AND start_date >= DATE('2022-01-01')")
    # the links show the layers as they were when the report was computed
    assert f"asof={quote(h1['generated_at'], safe='')}" in fig["links"]["query"]
    query = urlsplit(fig["links"]["query"])
    got = client.get(f"{query.path}?{query.query}", headers={"Accept": "application/geo+json"})
    assert got.status_code == 200, got.text
    assert got.json()["numberMatched"] == fig["count"]
    the_map = urlsplit(fig["links"]["map"])
    assert client.get(f"{the_map.path}?{the_map.query}").status_code == 200
    assert (
        the_map.query.startswith("ids=") and len(the_map.query.split("&")[0][4:].split(",")) == fig["count"]
    )


def test_what_the_data_cannot_answer_is_listed_never_a_number(h1):
    missing = [f for s in h1["sections"] for f in s["figures"] if not f["answerable"]]
    words = {f["wording_zh"] for f in missing}
    assert {"解决企地矛盾X余起", "修建乡村砂石路X公里", "协调就业X人"} <= words
    assert any("粮食作物" in w for w in words)
    for f in missing:
        assert f["value"] is None and f["needs"], f["id"]
    assert set(h1["answered"]) >= {
        "land_acquired",
        "land_temporary",
        "land_leased",
        "households_relocated",
        "compensation",
        "caragana_planted",
        "fences",
        "eco_projects",
        "bans_redrawn",
    }


# -- formats -----------------------------------------------------------------------------------


def test_browsers_get_the_page_in_chinese_and_english(client, h1):
    page = client.get("/reports/2022H1", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "2022年上半年" in text and "收储土地X亩" in text and "以草定畜" in text
    assert "解决企地矛盾X余起" in text and "数据无法回答的指标" in text
    value = _fig(h1, "land_temporary")["value"]
    assert f'id="figure-land_temporary" data-value="{value}"' in text
    home = client.get("/", headers={"Accept": "text/html"}).text
    assert 'id="go-report"' in home and "半年工作报告数据" in home
    en = client.get("/reports/2022H1?f=html&lang=en").text
    assert "2022 H1" in en and "Land acquired" in en and "Not answerable from the data" in en


def test_the_workbook_has_a_sheet_per_section_numbers_as_numbers(client, h1):
    r = client.get("/reports/2022H1?f=xlsx")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    for title in (
        "一（一）工业经济发展",
        "一（三）民生与生态建设",
        "三（一）绿色低碳提升工程",
        "草畜平衡",
        "按嘎查村",
        "无法回答的指标",
    ):
        assert title in wb.sheetnames
    ws = wb["一（一）工业经济发展"]
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    assert header[:2] == ("嘎查村代码", "嘎查村")
    assert {"收储土地（亩）", "租赁土地（万亩）", "兑付补偿安置资金（万元）"} <= set(header)
    col = header.index("协调临时用地（亩）")
    fig = _fig(h1, "land_temporary")
    total = next(r for r in rows if r[0] == "合计")
    previous = next(r for r in rows if r[0] == "上期合计")
    assert total[1] == "本期（2022年上半年）" and previous[1] == "上期（2021年下半年）"
    assert isinstance(total[col], float) and total[col] == fig["value"] and previous[col] == fig["previous"]
    by_village = {r[1]: r[col] for r in rows[1:rows.index(total)]}
    expected = {v["name"]: v["value"] for v in fig["villages"]}
    assert by_village == {name: expected.get(name, 0) for name in by_village}  # none there: 0 亩 counted
    assert set(expected) <= set(by_village)
    # how each figure is computed, then what the data cannot answer: the report's own words
    words = [r[0] for r in rows]
    assert "协调临时用地X亩" in words and "解决企地矛盾X余起" in words
    how = next(r for r in rows if r[0] == "协调临时用地X亩")
    assert how[3] == fig["how"]["cql2"]
    missing = next(r for r in rows if r[0] == "解决企地矛盾X余起")
    assert missing[2] == "系统中没有记录该数据的图层" and missing[3]  # what data would answer it; no number
    caragana = wb["一（三）民生与生态建设"]
    crows = list(caragana.iter_rows(values_only=True))
    ccol = crows[0].index("分区分片种植柠条（万亩）")
    counted = next(r for r in crows if r[0] == "统计口径")
    assert counted[ccol] == "2022"  # known to the year: the half-year counts its year

def test_the_pdf_text_holds_the_chinese_figures(engine, township):
    settings = Settings(database_url=township.render_as_string(hide_password=False))
    with engine.connect() as conn:
        report = build_report(conn, settings, parse_period("2022H1"))
        started = time.perf_counter()
        body = to_pdf(conn, report)
        seconds = time.perf_counter() - started
    reader = PdfReader(io.BytesIO(body))
    first = reader.pages[0]
    assert (
        abs(float(first.mediabox.width) - 595.44) < 1 and abs(float(first.mediabox.height) - 841.68) < 1
    )  # A4
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "2022年上半年工作报告数据" in text
    assert "协调临时用地X亩" in text and "种植柠条X万亩" in text and "以草定畜" in text
    value = _fig(report, "land_temporary")["value"]
    assert f"{value:,}" in text
    assert f"第 1 页 / 共 {len(reader.pages)} 页" in text
    assert f"数据日期 {report['data_as_of']}" in text
    assert "按嘎查村" in text  # the charts' Chinese titles are text too
    fonts = {
        str(f)
        for p in reader.pages
        for f in (p["/Resources"]["/Font"] or {}).values()
        for f in [f.get_object()["/BaseFont"]]
    }
    assert any("NotoSansCJK" in f for f in fonts), fonts
    assert seconds < 60


def test_a_pdf_is_a_job_with_a_file(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home"), inprocess_worker=True) as working:
        r = working.get("/reports/2022H1?f=pdf", headers={"Accept": "application/json"})
        assert r.status_code == 202, r.text
        job = job_finished(working, r.headers["location"], timeout=120)
        assert job["state"] == "succeeded", job
        got = working.get(job["links"]["result"])
        assert got.headers["content-type"] == "application/pdf"
        assert "协调临时用地X亩" in PdfReader(io.BytesIO(got.content)).pages[1].extract_text()
        browser = working.get(
            "/reports/2022H1?f=pdf", headers={"Accept": "text/html"}, follow_redirects=False
        )
        assert browser.status_code == 303 and "/jobs/" in browser.headers["location"]


@pytest.mark.parametrize(
    "period", ["2022H3", "2022Q5", "nope", "2022-02-30..2022-03-01", "2022-07-01..2022-01-01", "1800", "٢٠٢٢"]
)
def test_bad_periods_are_a_problem(client, period):
    r = client.get(f"/reports/{period}", headers={"Accept": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_period"


def test_the_command_writes_each_format(township, monkeypatch, tmp_path):
    monkeypatch.setenv("LANDECO_DATABASE_URL", township.render_as_string(hide_password=False))
    runner = CliRunner()
    for fmt in ("xlsx", "html", "json"):
        out = tmp_path / f"r.{fmt}"
        r = runner.invoke(cli, ["report", "--period", "2022H1", "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert out.stat().st_size > 1000
    assert "收储土地X亩" in (tmp_path / "r.html").read_text("utf-8")
    r = runner.invoke(cli, ["report", "--from", "2022-01-01", "--to", "2022-06-30", "--lang", "en"])
    assert r.exit_code == 0 and '"key": "2022-01-01..2022-06-30"' in r.output
    r = runner.invoke(cli, ["report", "--period", "2022H5"])
    assert r.exit_code == 1 and "invalid_period" in r.output


# -- livestock and carrying capacity -----------------------------------------------------------


def _capacity(engine, code: str, day: str, settings: Settings) -> float:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT regime, sum(area_mu) FROM grazing_bans WHERE village_code = :c AND valid_from <= :d "
                "AND valid_to >= :d GROUP BY regime"
            ),
            {"c": code, "d": day},
        ).all()
    return sum(mu * settings.forage_yield_kg_per_mu[regime] * 0.35 / (1.8 * 365) for regime, mu in rows)


def test_livestock_upload_and_villages_over_capacity(client, engine, h1):
    pastoral = [v for v in h1["carrying_capacity"]["villages"] if v["capacity_su"]]
    assert len(pastoral) >= 2
    heavy, light = pastoral[0], pastoral[1]
    cap = _capacity(engine, heavy["code"], "2022-06-30", Settings())
    assert heavy["capacity_su"] == pytest.approx(cap, abs=0.06)
    # the heavy one carries twice its capacity in cattle and sheep; the light one a tenth
    cattle = int(cap * 2 / 5)
    sheet = (
        "嘎查村代码,年份,绵羊,山羊,牛,马,骆驼,备注\n"
        f"{heavy['code']},2022,0,0,{cattle},0,0,春季统计\n"
        f"{light['code']},2022,{int(light['capacity_su'] / 10)},0,0,0,0,\n"
    )
    r = client.post("/livestock", files={"file": ("counts.csv", sheet.encode("gbk"), "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["written"] == 2
    report = client.get("/reports/2022H1?f=json").json()["carrying_capacity"]
    assert report["over"] == [heavy["code"]]
    row = next(v for v in report["villages"] if v["code"] == heavy["code"])
    assert row["livestock_su"] == pytest.approx(cattle * 5) and row["status"] == "over"
    assert row["excess_su"] == pytest.approx(cattle * 5 - cap, abs=0.1)
    page = client.get("/reports/2022H1?f=html").text
    assert f'<tr id="capacity-{heavy["code"]}" class="over" data-status="over">' in page
    assert f'<tr id="capacity-{light["code"]}" class="" data-status="within">' in page
    wb = openpyxl.load_workbook(io.BytesIO(client.get("/reports/2022H1?f=xlsx").content))
    ws = wb["草畜平衡"]
    marked = {r[0].value: r[0].fill.fgColor.rgb for r in ws.iter_rows(min_row=2) if r[0].value}
    assert marked[heavy["code"]].endswith("FDE0DD") and not marked[light["code"]].endswith("FDE0DD")
    # a second upload replaces the village's count of that year
    again = client.post(
        "/livestock",
        files={"file": ("c.csv", f"village_code,year,sheep\n{heavy['code']},2022,1\n", "text/csv")},
    )
    assert again.json() == {
        "written": 1,
        "inserted": 0,
        "updated": 1,
        "years": [2022],
        "villages": [heavy["code"]],
    }
    assert client.get("/reports/2022H1?f=json").json()["carrying_capacity"]["over"] == []


def test_livestock_xlsx_with_village_names(client, h1):
    village = h1["carrying_capacity"]["villages"][0]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["嘎查村", "年份", "羊单位", "备注"])
    ws.append([village["name"], 2021, 1234.5, '=HYPERLINK("x")'])
    buf = io.BytesIO()
    wb.save(buf)
    r = client.post("/livestock", files={"file": ("counts.xlsx", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 200, r.text
    listed = client.get("/livestock?year=2021").json()["counts"]
    assert [(c["village_code"], c["sheep_units"], c["created_by"]) for c in listed] == [
        (village["code"], 1234.5, "test-surveyor")
    ]


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        ("village_code,year,sheep\nNOPE,2022,5\n", {"unknown_village"}),
        ("village_code,year,sheep\n{v},1800,5\n", {"invalid_year"}),
        ("village_code,year,sheep\n{v},2022,-5\n", {"invalid_count"}),
        ("village_code,year,sheep\n{v},2022,2.5\n", {"invalid_count"}),
        ("village_code,year,sheep\n{v},2022,NaN\n", {"invalid_count"}),
        ("village_code,year,sheep\n{v},2023,5\n{v},2023,6\n", {"duplicate_row"}),
        ("village_code,year,sheep,pigs\n{v},2023,5,3\n", {"unknown_column"}),
        ("village_code,sheep\n{v},5\n", {"missing_column"}),
        ("village_code,year,sheep\n{v},2023,\n", {"no_count"}),
        ("village_code,year,sheep_units\n{v},2023,1e999\n", {"invalid_sheep_units"}),
    ],
)
def test_bad_livestock_files_write_nothing(client, h1, body, codes):
    v = h1["carrying_capacity"]["villages"][0]["code"]
    before = client.get("/livestock").json()["counts"]
    good_row = f"{v},2030,7\n" if body.startswith("village_code,year,sheep\n") else ""
    text = body.format(v=v) + good_row
    r = client.post("/livestock", files={"file": ("bad.csv", text.encode(), "text/csv")})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "livestock_file_invalid"
    assert {p["code"] for p in problem["problems"]} == codes
    assert all(p["row"] for p in problem["problems"])
    assert client.get("/livestock").json()["counts"] == before


@pytest.mark.parametrize(
    ("name", "data"),
    [("x.csv", b""), ("x.xlsx", b"PK\x03\x04broken"), ("x.docx", b"hello"), ("x.csv", b"\x00\x01\x02" * 10)],
)
def test_unreadable_livestock_files(client, name, data):
    r = client.post("/livestock", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 400 and r.json()["code"] == "livestock_file_unreadable"


def test_livestock_upload_needs_an_account(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home"), surveyor=False) as anonymous:
        r = anonymous.post("/livestock", files={"file": ("x.csv", b"village_code,year,sheep\n", "text/csv")})
        assert r.status_code == 401


def test_livestock_command(township, monkeypatch, tmp_path, h1):
    monkeypatch.setenv("LANDECO_DATABASE_URL", township.render_as_string(hide_password=False))
    v = h1["carrying_capacity"]["villages"][0]["code"]
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(f"village_code,year,goats\n{v},2019,90\n", "utf-8")
    bad.write_text(f"village_code,year,goats\n{v},2019,-1\n", "utf-8")
    runner = CliRunner()
    r = runner.invoke(cli, ["livestock", "upload", str(good)])
    assert r.exit_code == 0 and "1 counts written" in r.output, r.output
    r = runner.invoke(cli, ["livestock", "upload", str(bad)])
    assert r.exit_code == 1 and "invalid_count" in r.output
    r = runner.invoke(cli, ["livestock", "list", "--year", "2019"])
    assert '"goats": 90' in r.output


@pytest.mark.parametrize("period", ["1990", "1990H1", "1990Q1", "2100Q4", "1990-01-01..1990-01-01"])
def test_the_edges_of_the_years_answer(client, period):
    r = client.get(f"/reports/{period}?f=json")
    assert r.status_code == 200, r.text
    assert r.json()["period"]["key"] == period


def test_the_documented_example_counts_read_cleanly(engine):
    from pathlib import Path

    from layers.livestock import parse_livestock

    path = Path(__file__).resolve().parents[2] / "docs" / "livestock-example.csv"
    with engine.connect() as conn:
        rows = parse_livestock(conn, path.read_bytes(), path.name)
    assert [(r.village_code, r.year) for r in rows] == [
        ("150623101202", 2022), ("150623101204", 2022), ("150623101205", 2022)]
    assert rows[0].counts == {"sheep": 2600, "goats": 1400, "cattle": 120, "horses": 15, "camels": 4}
