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
    assert "地块编号" in mapping and "code" in mapping and "负责人" in mapping
    assert w.page.inner_text("#no-problems") == "没有发现问题。"
    w.page.wait_for_selector('#preview-map[data-features="4"]')
    assert w.page.locator("#preview-map path.leaflet-interactive").count() == 4
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots")) == 0
    w.page.click("#commit")
    w.page.wait_for_selector("#written")
    assert w.page.inner_text("#state") == "已导入" and "inserted 4" in w.page.inner_text("#written")
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
    assert any("value_not_allowed" in r and "method" in r and r.startswith("2") for r in rows)
    assert w.page.locator("#commit").count() == 0
    w.page.wait_for_selector('#preview-map[data-features="1"]')
    assert w.outside == [] and w.errors == []


def test_refused_file_is_explained(w, upload_server, tmp_path):
    base, _url = upload_server
    _sign_in(w, base, "/uploads")
    (tmp_path / "notes.zip").write_bytes(b"not a zip at all")
    w.page.set_input_files("#file", str(tmp_path / "notes.zip"))
    w.page.click("#check")
    w.page.wait_for_selector("#refused")
    refused = w.page.inner_text("#refused")
    assert "unsupported_format" in refused and "文件被拒绝" in refused
