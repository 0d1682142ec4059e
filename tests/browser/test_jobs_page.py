"""A job followed in the browser: a progress bar, then the file to download, in Chinese and English."""

from __future__ import annotations

import pytest

from api.app import create_app
from layers.settings import Settings
from tests.conftest import UNLIMITED, serving


@pytest.fixture(scope="module")
def working_url(demo_url, tmp_path_factory):
    """The demo township served with its own job worker (anonymous visitors may export)."""
    settings = Settings(database_url=demo_url.render_as_string(hide_password=False),
                        home=tmp_path_factory.mktemp("home"), inprocess_worker=True, **UNLIMITED)
    with serving(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_export_job_shows_its_progress_and_then_its_file(open_watched, working_url, lang):
    with open_watched(working_url) as w:
        w.page.goto(f"{working_url}/jobs?lang={lang}")
        queued = w.page.evaluate(
            "async (url) => (await fetch(url, {method: 'POST', "
            "headers: {Accept: 'application/json'}})).json()",
            f"{working_url}/jobs/export/land_leases?format=xlsx&lang={lang}")
        w.page.goto(f"{queued['links']['self']}?lang={lang}")
        assert w.page.locator("progress#progress").count() == 1
        w.page.wait_for_selector("#state[data-state=succeeded]", timeout=60_000)
        assert w.page.locator("#state").inner_text() == ("已完成" if lang == "zh" else "done")
        assert w.page.locator("#percent").inner_text() == "100 %"
        assert w.page.locator("#cancel").is_hidden()
        link = w.page.locator("#download")
        assert link.is_visible()
        with w.page.expect_download() as download:
            link.click()
        path = download.value.path()
        with open(path, "rb") as fh:
            assert fh.read(2) == b"PK"  # an XLSX is a zip
        assert download.value.suggested_filename.endswith(".xlsx")
        w.page.goto(f"{working_url}/jobs?lang={lang}")
        row = w.page.locator(f"tr[data-state=succeeded] a:text-is('{queued['id']}')")
        assert row.count() == 1
        assert w.errors == [] and w.outside == []
