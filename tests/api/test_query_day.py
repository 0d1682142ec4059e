"""The planner's day through the API: subtotals on the page, statistics and conflicts reachable,
conflicts as XLSX with lessee, project and the ban's regime, the chosen date applied."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook

from tests.conftest import client_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, V1, V2

township = cases.township


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):
    with client_for(township, tmp_path_factory.mktemp("home")) as c:
        yield c


def _table(html: str, cls: str) -> list[list[str]]:
    block = re.search(rf'<table class="subtotals {cls}">(.*?)</table>', html, re.S).group(1)
    body = block.split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>") if "<td" in row]


def test_page_subtotals_by_village_and_category(client):
    r = client.get("/query", params=[("layers", "land_leases"), ("villages", V1), ("villages", V2)])
    assert r.status_code == 200
    villages = _table(r.text, "villages-subtotals")
    counts = {row[1]: int(row[2]) for row in villages}
    assert counts == {v: sum(lease[0] == v for lease in LEASES.values()) for v in (V1, V2)}
    assert {row[0] for row in villages} == {"特布德嘎查", "八一村"}
    cats = {row[0]: int(row[1]) for row in _table(r.text, "categories-subtotals")}
    assert cats == {"光伏": 1, "铁路": 1, "放牧": 1, "采矿": 1, "种植": 1}
    # the table shows the village's name beside its code and the purpose as a word
    assert "<td>特布德嘎查</td><td>150623999001</td><td>光伏</td>" in r.text


def test_stats_and_conflicts_are_linked_with_the_date(client):
    r = client.get("/query", params={"check": "leases_in_grazing_bans", "on": "2020-06-01"})
    assert r.status_code == 200
    assert "/stats/land_leases?by=village_code&format=xlsx&on=2020-06-01" in r.text.replace("&amp;", "&")
    assert 'value="2020-06-01"' in r.text
    link = re.search(r'id="conflict-xlsx" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert "on=2020-06-01" in link
    stats = client.get("/stats/grazing_bans?by=regime&format=xlsx&on=2020-06-01")
    assert "禁牧休牧区统计-按管控方式.xlsx" in unquote(stats.headers["content-disposition"])


def test_conflicts_as_xlsx_name_lessee_project_and_regime(client):
    r = client.get("/conflicts/leases_in_grazing_bans", params={"format": "xlsx", "on": "2020-06-01"})
    assert r.status_code == 200
    assert "租赁地块位于禁牧休牧区-2020-06-01.xlsx" in unquote(r.headers["content-disposition"])
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws.title == "租赁地块位于禁牧休牧区"
    rows = list(ws.values)
    head = list(rows[0])
    assert {"土地租赁 承租方", "土地租赁 项目名称", "土地租赁 用途", "禁牧休牧区 管控方式", "嘎查村",
            "重叠面积（亩）"} <= set(head)
    body = [dict(zip(head, row, strict=True)) for row in rows[1:-1]]
    doc = client.get("/conflicts/leases_in_grazing_bans", params={"on": "2020-06-01"}).json()
    assert len(body) == doc["summary"]["count"] > 0
    lessees = {LEASES[f["properties"]["a_code"]][1] for f in doc["features"]}
    assert {b["土地租赁 承租方"] for b in body} == lessees
    assert {b["禁牧休牧区 管控方式"] for b in body} <= {"禁牧", "休牧", "划区轮牧", "草畜平衡"}
    assert rows[-1][0].startswith("合计")
    assert rows[-1][head.index("重叠面积（亩）")] == pytest.approx(doc["summary"]["area_mu"], abs=0.01)


def test_the_date_changes_the_conflicts(client):
    """B2 (seasonal rest) was in force until 2021: a lease in it counts in 2020, not in 2025."""
    def count(on):
        return client.get("/conflicts/leases_in_grazing_bans", params={"on": on}).json()["summary"]["count"]

    assert count("2020-06-01") > count("2025-06-01")
    page = client.get("/query", params={"check": "leases_in_grazing_bans", "on": "2025-06-01"})
    assert "2025-06-01" in page.text


def test_the_page_names_each_sides_lessee_and_regime_in_words(client):
    r = client.get("/query", params={"check": "leases_in_grazing_bans", "on": "2020-06-01"})
    assert "承租方: 海禾乡村产业发展公司" in r.text and "管控方式: 禁牧" in r.text
    assert "full_ban" not in r.text.split('id="results"')[1].split("</table>")[0]
