"""A planner's day on the query page, in Chinese and in English, in a real browser.

Tick villages (no Ctrl-click), filter by a word (光伏 / Solar), read the subtotals, open the
statistics and a conflict check from the page, download Excel files and change the date.
Screenshots of each step go to tests/artifacts/browser/.
"""

from __future__ import annotations

import io

import httpx
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from layers.store.database import engine_for
from tests.browser.conftest import ARTIFACTS

WORDS = {"zh": {"solar": "光伏", "run": "查询", "excel": "Excel", "all": "全选", "none": "清除",
                "leases": "土地租赁", "stats_sheet": "土地租赁统计", "by_village": "按嘎查村",
                "total": "合计", "check_sheet": "租赁地块位于禁牧休牧区", "purpose": "用途"},
         "en": {"solar": "Solar", "run": "Run query", "excel": "Excel", "all": "All", "none": "None",
                "leases": "Land leases", "stats_sheet": "Land leases statistics", "by_village": "by village",
                "total": "Total", "check_sheet": "Leases inside grazing bans", "purpose": "Purpose"}}


@pytest.fixture(scope="module")
def villages(demo_url) -> list[tuple[str, str]]:
    """The two villages with the most solar leases: (code, name)."""
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT v.code, v.name FROM villages v JOIN land_leases l ON l.village_code = v.code "
            "WHERE l.purpose = 'solar' GROUP BY 1, 2 ORDER BY count(*) DESC, 1 LIMIT 2"))]


def _shot(w, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    w.page.screenshot(path=str(ARTIFACTS / f"query_day_{name}.png"), full_page=True)


def _download(w, selector: str):
    with w.page.expect_download() as d:
        w.page.click(selector)
    download = d.value
    return download.suggested_filename, load_workbook(io.BytesIO(open(download.path(), "rb").read()))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_planners_day(open_watched, live_url, villages, lang):
    t = WORDS[lang]
    codes = [c for c, _ in villages]
    expected = httpx.post(f"{live_url}/query", json={"layers": ["land_leases"], "place": {"villages": codes},
                                                     "where": {"purpose": "solar"}}).json()["summary"]
    with open_watched(live_url, height=1000, full_page=True) as w:
        w.open("/query" + ("?lang=en" if lang == "en" else ""))
        p = w.page
        # villages are ticked, not Ctrl-clicked; All and None work
        p.click("#villages-all")
        boxes = p.locator("#villages-box input")
        assert p.locator("#villages-box input:checked").count() == boxes.count() > 2
        p.click("#villages-none")
        assert p.locator("#villages-box input:checked").count() == 0
        for code in codes:
            p.check(f"#villages-box input[value='{code}']")
        p.check("input[name=layers][value=land_leases]")
        p.fill("input[name=where]", f"purpose={t['solar']}")
        _shot(w, f"{lang}_1_form")
        p.click("#run")
        p.wait_for_selector("#summary")
        row = p.locator("#summary tr[data-layer=land_leases] td").all_inner_texts()
        assert row[0] == t["leases"] and int(row[1].replace(",", "")) == expected["total"]["count"] > 0
        # subtotals per village (the ticked ones) and per purpose (only solar)
        sub = p.locator(".villages-subtotals tbody tr")
        names = {r.split("\t")[0] for r in sub.all_inner_texts()}
        assert names <= {n for _, n in villages} and names
        counted = sum(int(r.split("\t")[2].replace(",", "")) for r in sub.all_inner_texts())
        assert counted == expected["total"]["count"]
        cats = p.locator(".categories-subtotals tbody tr").all_inner_texts()
        assert [c.split("\t")[0] for c in cats] == [t["solar"]]
        # the table shows words: village names and the purpose
        first = p.locator("#results tbody tr").first.inner_text().split("\t")
        assert first[2] in {n for _, n in villages} and first[4] == t["solar"]
        _shot(w, f"{lang}_2_answer")
        # the answer as Excel: a sheet named for the layer, words, a totals row
        name, wb = _download(w, f".downloads a:text-is('{t['excel']}')")
        assert name.endswith(".xlsx") and wb.sheetnames == [t["leases"]]
        rows = list(wb[t["leases"]].values)
        assert rows[-1][0].startswith(t["total"]) and len(rows) == 1 + expected["total"]["count"] + 1
        purpose = rows[0].index(t["purpose"])
        assert {r[purpose] for r in rows[1:-1]} == {t["solar"]}
        # statistics from the page
        link = p.locator("#stats-links a[href*='/stats/land_leases?by=village_code&format=xlsx']")
        assert link.inner_text() == t["by_village"]
        name, wb = _download(w, "#stats-links a[href*='/stats/land_leases?by=village_code&format=xlsx']")
        assert wb.active.title == t["stats_sheet"] and list(wb.active.values)[-1][0] == t["total"]
        # a conflict check on a chosen date, downloaded as Excel; then another date
        p.select_option("select[name=check]", "leases_in_grazing_bans")
        p.fill("#on", "2020-06-01")
        p.click("#run-check")
        p.wait_for_selector("#conflict-summary")
        assert "2020-06-01" in p.inner_text("#conflict-summary")
        n_2020 = p.locator("#results tbody tr").count()
        _shot(w, f"{lang}_3_conflicts_2020")
        name, wb = _download(w, "#conflict-xlsx")
        assert "2020-06-01" in name and wb.active.title == t["check_sheet"]
        assert len(list(wb.active.values)) == 1 + n_2020 + 1
        assert p.input_value("#on") == "2020-06-01"  # the page keeps the chosen date
        p.fill("#on", "2026-06-01")
        p.click("#run-check")
        p.wait_for_selector("#conflict-summary")
        assert "2026-06-01" in p.inner_text("#conflict-summary")
        _shot(w, f"{lang}_4_conflicts_2026")
        assert w.outside == [] and w.errors == []
