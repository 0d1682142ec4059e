"""The upload page in a real browser: choose a file, read the report in Chinese, see the preview, commit.

The page writes, so it runs against its own uvicorn over a throwaway database, not the demo.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers import accounts
from layers.store.database import engine_for
from tests.api.test_uploads_crash import _port, _serve
from tests.browser.conftest import ARTIFACTS
from tests.data.fixtures import make

SURVEYOR_PASSWORD = "sarula-surveys-2026"


@pytest.fixture(scope="module")
def upload_server(new_database, tmp_path_factory) -> Iterator[tuple[str, URL]]:
    with new_database("landeco_test_upage") as url:
        accounts.add_user(engine=engine_for(url.render_as_string(hide_password=False)), name="sarula",
                          display_name="萨如拉", roles=["surveyor"], password=SURVEYOR_PASSWORD)
        port = _port()
        proc = _serve(url, tmp_path_factory.mktemp("home"), port)
        yield f"http://127.0.0.1:{port}", url
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def w(open_watched, upload_server):
    with open_watched(upload_server[0], height=900, full_page=True) as watched:
        yield watched


def _sign_in(w, base: str, path: str) -> None:
    """Open ``path`` as a visitor: the sign-in form comes first, then the page itself."""
    w.page.goto(base + path)
    assert "/login?next=" in w.page.url and w.page.inner_text("h1") in ("登录", "Sign in")
    w.page.fill("#username", "sarula")
    w.page.fill("#password", SURVEYOR_PASSWORD)
    w.page.click("#sign-in")
    w.page.wait_for_url(base + path)


def test_upload_check_preview_and_commit_in_chinese(w, upload_server, tmp_path):
    base, url = upload_server
    _sign_in(w, base, "/uploads")
    assert w.page.inner_text("#signed-in") == "萨如拉"
    assert w.page.inner_text("h1") == "上传调查数据"
    w.page.set_input_files("#file", str(make.caragana_zip(tmp_path, 4)))
    w.page.select_option("#layer", "caragana_plots")
    w.page.click("#check")
    w.page.wait_for_selector("#report")
    assert "?id=" in w.page.url
    assert w.page.inner_text("#count-features") == "4" and w.page.inner_text("#count-errors") == "0"
    assert "gb18030" in w.page.inner_text("#encoding-used") and "4545" in w.page.inner_text("#crs-used")
    mapping = w.page.inner_text("#mapping")
    # the file's column, the field by its Chinese label (not its id), and an unmatched column
    assert "地块编号" in mapping and "编号" in mapping.split("地块编号", 1)[1] and "负责人" in mapping
    assert "code" not in mapping
    assert w.page.inner_text("#no-problems") == "没有发现问题。"
    w.page.wait_for_selector('#preview-map[data-features="4"]')
    assert w.page.locator("#preview-map path.leaflet-interactive").count() == 4
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots")) == 0
    w.page.click("#commit")
    w.page.wait_for_selector("#written")
    assert w.page.inner_text("#state") == "已导入" and "新增 4" in w.page.inner_text("#written")
    assert w.page.locator("#commit").count() == 0
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots")) == 4
    assert w.outside == [] and w.errors == []


def test_problems_table_and_no_commit_button_in_english(w, upload_server, tmp_path):
    base, _url = upload_server
    frame = make.caragana_frame(3)
    frame["地块编号"] = [f"EN-{i}" for i in range(3)]
    frame.loc[2, "种植方式"] = "乱种"
    frame.loc[1, "geometry"] = None
    _sign_in(w, base, "/uploads?lang=en")
    assert w.page.inner_text("h1") == "Upload a survey file"
    w.page.set_input_files("#file", str(make.caragana_zip(tmp_path, frame=frame)))
    w.page.select_option("#layer", "caragana_plots")
    w.page.click("#check")
    w.page.wait_for_selector("#problems")
    rows = w.page.locator("#problems tr").all_inner_texts()
    assert any("geometry_missing" in r and r.startswith("1") for r in rows)
    assert any("value_not_allowed" in r and "method" in r.lower() and r.startswith("2") for r in rows)
    assert w.page.locator("#commit").count() == 0
    # every feature has a problem: plot 0 overlaps the first test's plot, plot 2 is drawn in red too
    # (plot 1 has no shape to draw)
    w.page.wait_for_selector('#preview-map[data-problems="2"]')
    assert w.page.get_attribute("#preview-map", "data-features") == "0"
    assert w.outside == [] and w.errors == []


def test_refused_file_is_explained(w, upload_server, tmp_path):
    base, _url = upload_server
    _sign_in(w, base, "/uploads")
    (tmp_path / "notes.zip").write_bytes(b"not a zip at all")
    w.page.set_input_files("#file", str(tmp_path / "notes.zip"))
    w.page.select_option("#layer", "caragana_plots")  # no layer is chosen in advance
    w.page.click("#check")
    w.page.wait_for_selector("#refused")
    refused = w.page.inner_text("#refused")
    assert "unsupported_format" in refused and "文件被拒绝" in refused


# -- the surveyor's day: refused, choices kept, fixed, replace shown and confirmed, listed ----------

DAY = {
    "zh": {"q": "", "h1": "上传调查数据", "refused": "文件被拒绝", "file_note": "浏览器无法保留",
           "stake": "替换将删除图层现有的全部 3 个要素", "gone": "其中 3 个不在本文件中",
           "committed": "已导入", "not_committed": "未导入", "nav": "上传", "deleted": "删除 3"},
    "en": {"q": "?lang=en", "h1": "Upload a survey file", "refused": "The file is refused",
           "file_note": "cannot keep a chosen file",
           "stake": "the replace deletes all 3 features of the layer",
           "gone": "3 of them are not in the file", "committed": "committed",
           "not_committed": "Not committed", "nav": "Upload", "deleted": "deleted 3"},
}


def _db(url: URL) -> sa.Engine:
    return engine_for(url.render_as_string(hide_password=False))


def _reset_layer(url: URL) -> None:
    """Three plots already in the layer (which a replace deletes) and one village around them."""
    with _db(url).begin() as conn:
        conn.execute(sa.text("DELETE FROM caragana_plots"))
        for i in range(3):
            conn.execute(sa.text(
                "INSERT INTO caragana_plots (code, planted_year, method, geom) VALUES "
                "(:code, 2019, 'enclosure', ST_Multi(ST_MakeEnvelope(:x, 38.26, :x + 0.001, 38.261, 4326)))"),
                {"code": f"OLD-{i}", "x": 107.45 + i * 0.002})
        conn.execute(sa.text(
            "INSERT INTO villages (code, name, kind, geom) VALUES ('150623101201', '巴彦希勒嘎查', 'gacha', "
            "ST_Multi(ST_MakeEnvelope(107.40, 38.20, 107.52, 38.30, 4326))) ON CONFLICT (code) DO NOTHING"))


def _codes(url: URL) -> list[str]:
    with _db(url).connect() as conn:
        return list(conn.scalars(sa.text("SELECT code FROM caragana_plots ORDER BY code")))


def _shot(w, lang: str, step: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    w.page.screenshot(path=str(ARTIFACTS / f"surveyors_day_{lang}_{step}.png"), full_page=True)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_surveyors_day(w, upload_server, tmp_path, lang):
    base, url = upload_server
    words = DAY[lang]
    _reset_layer(url)
    _sign_in(w, base, "/uploads" + words["q"])
    w.page.goto(base + "/" + words["q"])  # the day starts on the home page
    w.page.click(f"header nav a:text-is('{words['nav']}')")
    w.page.wait_for_selector("#upload-form")
    assert w.page.inner_text("h1") == words["h1"]
    assert w.page.input_value("#layer") == ""  # never the villages by default
    # 1. the surveyor's shapefile has no .prj: refused, with every choice kept
    frame = make.caragana_frame(2)
    no_prj = make.caragana_zip(tmp_path / "a", frame=frame, drop=("prj",))
    w.page.set_input_files("#file", str(no_prj))
    w.page.select_option("#layer", "caragana_plots")
    w.page.select_option("#mode", "replace")
    w.page.fill("#encoding", "gbk")
    w.page.fill("#columns", "负责人=extra")
    w.page.click("#check")
    w.page.wait_for_selector("#refused")
    _shot(w, lang, "1_refused")
    assert words["refused"] in w.page.inner_text("#refused") and "crs" in w.page.inner_text("#refused")
    assert w.page.input_value("#layer") == "caragana_plots" and w.page.input_value("#mode") == "replace"
    assert w.page.input_value("#encoding") == "gbk" and w.page.input_value("#columns") == "负责人=extra"
    note = w.page.inner_text("#file-note")
    assert words["file_note"] in note and "caragana.zip" in note
    # 2. fixed: the CRS named, the file chosen again; the check shows what the replace destroys
    w.page.fill("#crs", "4545")
    w.page.set_input_files("#file", str(no_prj))
    w.page.click("#check")
    w.page.wait_for_selector("#report")
    upload_id = w.page.url.split("id=")[1].split("&")[0]
    assert w.page.inner_text("#count-errors") == "0"
    assert words["stake"] in w.page.inner_text("#at-stake-title")
    assert words["gone"] in w.page.inner_text("#gone")
    listed = w.page.locator("#at-stake-list tr").all_inner_texts()[1:]
    assert [row.split("\t")[0] for row in listed] == ["OLD-0", "OLD-1", "OLD-2"]
    w.page.wait_for_selector('#preview-map[data-features="2"]')
    assert w.page.get_attribute("#preview-map", "data-villages") == "1"
    _shot(w, lang, "2_replace_shows_what_it_destroys")
    # 3. commit without the confirmation: refused, nothing written
    w.page.click("#commit")
    w.page.wait_for_selector("#commit-refused")
    _shot(w, lang, "3_commit_refused")
    assert "confirmation_required" in w.page.inner_text("#commit-refused")
    assert words["not_committed"] in w.page.inner_text("#commit-refused")
    assert _codes(url) == ["OLD-0", "OLD-1", "OLD-2"]
    # 4. confirmed: the layer is replaced
    w.page.check("#confirm")
    w.page.click("#commit")
    w.page.wait_for_selector("#written")
    _shot(w, lang, "4_committed")
    assert w.page.get_attribute("#state", "data-state") == "committed"
    assert words["committed"] in w.page.inner_text("#state")
    assert words["deleted"] in w.page.inner_text("#written")
    assert _codes(url) == ["NT-0000", "NT-0001"]
    # 5. the recent uploads list shows it
    row = w.page.locator(f'#recent tr[data-id="{upload_id}"]')
    assert row.get_attribute("data-state") == "committed" and "caragana.zip" in row.inner_text()
    _shot(w, lang, "5_recent")
    # the refusals are pages answered 422 and 409, which the browser logs; nothing else went wrong
    expected = ("status of 422", "status of 409")
    assert w.outside == [] and [e for e in w.errors if not any(x in e for x in expected)] == []


def test_upload_link_works_from_every_page(w, upload_server):
    base, _url = upload_server
    _sign_in(w, base, "/uploads")
    pages = ["/", "/maps", "/maps/caragana_plots", "/collections?f=html", "/collections/villages?f=html",
             "/collections/caragana_plots/items?f=html", "/query", "/uploads", "/uploads/new",
             "/?lang=en", "/maps?lang=en", "/uploads?lang=en"]
    for path in pages:
        w.page.goto(base + path)
        link = w.page.locator("header nav a[href*='/uploads/new']:not(.lang)")
        assert link.count() == 1, path
        with w.page.expect_navigation():
            link.click()
        assert w.page.url.startswith(base + "/uploads/new"), path
        h1 = "Upload a survey file" if "lang=en" in path else "上传调查数据"
        assert w.page.inner_text("h1") == h1, path


def test_skip_refused_problem_list_and_templates_from_the_page(w, upload_server, tmp_path):
    import geopandas as gpd
    import openpyxl
    from shapely.affinity import translate

    base, url = upload_server
    _reset_layer(url)
    frame = make.caragana_frame(4)
    frame["地块编号"] = ["SK-0", "=1+2", "SK-2", "SK-3"]
    frame.loc[1, "种植方式"] = "乱种"
    frame.loc[3, "geometry"] = translate(make.parcel(0), 10, 10)
    _sign_in(w, base, "/uploads")
    # the template of a layer opens in geopandas with its Chinese columns
    w.page.click("#templates summary")
    with w.page.expect_download() as got:
        w.page.click('#template-caragana_plots a[href$=".gpkg"]')
    assert got.value.suggested_filename == "caragana_plots-template.gpkg"
    saved = tmp_path / got.value.suggested_filename
    got.value.save_as(saved)
    template = gpd.read_file(saved)
    assert list(template.columns)[:4] == ["编号", "嘎查村代码", "种植年份", "种植方式"]
    w.page.set_input_files("#file", str(make.caragana_zip(tmp_path, frame=frame)))
    w.page.select_option("#layer", "caragana_plots")
    w.page.check("#skip-refused")
    w.page.click("#check")
    w.page.wait_for_selector("#report")
    assert w.page.inner_text("#count-refused") == "2" and w.page.inner_text("#count-importable") == "2"
    assert "2" in w.page.inner_text("#left-out")
    w.page.wait_for_selector('#preview-map[data-problems="2"]')
    assert w.page.get_attribute("#preview-map", "data-features") == "2"
    # the problem list for the field team, a formula-looking code kept as text
    with w.page.expect_download() as got:
        w.page.click("#problems-xlsx")
    assert got.value.suggested_filename.endswith(".xlsx")
    with open(got.value.path(), "rb") as fh:
        ws = openpyxl.load_workbook(fh)["问题"]
    rows = {r[0]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    assert rows[1][1] == "'=1+2" and rows[1][2] == "value_not_allowed" and rows[3][2] == "overlap"
    _shot(w, "zh", "skip_refused_checked")
    w.page.click("#commit")
    w.page.wait_for_selector("#written")
    assert "新增 2" in w.page.inner_text("#written") and "2" in w.page.inner_text("#left-out")
    assert _codes(url) == ["OLD-0", "OLD-1", "OLD-2", "SK-0", "SK-2"]
    _shot(w, "zh", "skip_refused_committed")
    assert w.outside == [] and w.errors == []
