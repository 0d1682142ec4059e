"""The upload page in a real browser: choose a file, read the report in Chinese, see the preview, commit.

The page writes, so it runs against its own uvicorn over a throwaway database, not the demo.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.database import engine_for
from tests.api.test_uploads_crash import _port, _serve
from tests.data.fixtures import make

ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "browser"


@pytest.fixture(scope="module")
def upload_server(new_database, tmp_path_factory) -> Iterator[tuple[str, URL]]:
    with new_database("landeco_test_upage") as url:
        port = _port()
        proc = _serve(url, tmp_path_factory.mktemp("home"), port)
        yield f"http://127.0.0.1:{port}", url
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def page(browser, upload_server, request):
    base, _url = upload_server
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    p = context.new_page()
    p.outside, p.errors = [], []

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            p.outside.append(r.request.url)
            r.abort()

    p.route("**/*", route)
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.errors.append(f"uncaught: {e}"))
    yield p
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        p.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


def test_upload_check_preview_and_commit_in_chinese(page, upload_server, tmp_path):
    base, url = upload_server
    page.goto(f"{base}/uploads")
    assert page.inner_text("h1") == "上传调查数据"
    page.set_input_files("#file", str(make.caragana_zip(tmp_path, 4)))
    page.select_option("#layer", "caragana_plots")
    page.click("#check")
    page.wait_for_selector("#report")
    assert "?id=" in page.url
    assert page.inner_text("#count-features") == "4" and page.inner_text("#count-errors") == "0"
    assert "gb18030" in page.inner_text("#encoding-used") and "4545" in page.inner_text("#crs-used")
    mapping = page.inner_text("#mapping")
    assert "地块编号" in mapping and "code" in mapping and "负责人" in mapping
    assert page.inner_text("#no-problems") == "没有发现问题。"
    page.wait_for_selector('#preview-map[data-features="4"]')
    assert page.locator("#preview-map path.leaflet-interactive").count() == 4
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots")) == 0
    page.click("#commit")
    page.wait_for_selector("#written")
    assert page.inner_text("#state") == "已导入" and "inserted 4" in page.inner_text("#written")
    assert page.locator("#commit").count() == 0
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots")) == 4
    assert page.outside == [] and page.errors == []


def test_problems_table_and_no_commit_button_in_english(page, upload_server, tmp_path):
    base, _url = upload_server
    frame = make.caragana_frame(3)
    frame["地块编号"] = [f"EN-{i}" for i in range(3)]
    frame.loc[2, "种植方式"] = "乱种"
    frame.loc[1, "geometry"] = None
    page.goto(f"{base}/uploads?lang=en")
    assert page.inner_text("h1") == "Upload a survey file"
    page.set_input_files("#file", str(make.caragana_zip(tmp_path, frame=frame)))
    page.select_option("#layer", "caragana_plots")
    page.click("#check")
    page.wait_for_selector("#problems")
    rows = page.locator("#problems tr").all_inner_texts()
    assert any("geometry_missing" in r and r.startswith("1") for r in rows)
    assert any("value_not_allowed" in r and "method" in r and r.startswith("2") for r in rows)
    assert page.locator("#commit").count() == 0
    page.wait_for_selector('#preview-map[data-features="1"]')
    assert page.outside == [] and page.errors == []


def test_refused_file_is_explained(page, upload_server, tmp_path):
    base, _url = upload_server
    page.goto(f"{base}/uploads")
    (tmp_path / "notes.zip").write_bytes(b"not a zip at all")
    page.set_input_files("#file", str(tmp_path / "notes.zip"))
    page.click("#check")
    page.wait_for_selector("#refused")
    assert "unsupported_format" in page.inner_text("#refused") and "文件被拒绝" in page.inner_text("#refused")
