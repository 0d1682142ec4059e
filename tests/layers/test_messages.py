"""The message catalogue: every code landeco can answer an upload with is said in Chinese and English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from layers.importer import Problem, Report, problem
from layers.messages import HINTS, MESSAGES, area_text, hint, language, localise_report, message, quote, title

ROOT = Path(__file__).parents[2]


def _codes_raised() -> set[str]:
    """Every code an ``InputError`` or an import problem is made with, read from the sources."""
    found = set()
    for path in [*ROOT.glob("gis/*.py"), ROOT / "layers" / "importer.py"]:
        text = path.read_text("utf-8")
        found |= set(re.findall(r'InputError\(\s*"([a-z_]+)"', text))
        found |= set(re.findall(r'problem\([^,]+,\s*"([a-z_]+)"', text))
        found |= set(re.findall(r'GeometryProblem\([^,]+,\s*"([a-z_]+)"', text))
    return found


def test_every_code_is_said_in_both_languages():
    codes = _codes_raised()
    assert len(codes) > 30
    missing = sorted(c for c in codes if c not in MESSAGES)
    assert missing == []
    for code, texts in MESSAGES.items():
        assert set(texts) == {"zh", "en"}, code
    for code in HINTS:
        assert code in MESSAGES


def test_messages_with_parameters():
    assert message("code_exists", "en", code="NT-1") == \
        "code 'NT-1' is already in the layer (use mode upsert to replace it)"
    assert message("code_exists", "zh", code="NT-1").startswith("编号「NT-1」已在图层中")
    assert message("overlap_existing", "zh", other_code="A", area_m2=1333.33) == \
        "与图层中已有的要素 A 重叠 2.00 亩（1,333 m²）"
    assert message("overlap_existing", "en", other_code="A", area_m2=20) == \
        "overlaps 'A', already in the layer, by 0.03 mu (20 m²)"
    assert message("value_invalid", "zh", value="abc", type="date").startswith("「abc」不是日期")
    # a parameter missing: the English words given, else the code; never an exception
    assert message("code_exists", "zh", default="as said") == "as said"
    assert message("no_such_code", "zh") == "no_such_code"
    assert hint("crs_missing", "zh") and "4545" in hint("crs_missing", "zh")
    assert hint("encoding_mismatch", "en", suggested="gb18030").endswith("The text looks like gb18030")
    assert title("upload_refused", "zh") == "文件被拒绝" and title("x", "zh", 404) == "未找到"
    assert title("x", "en", 404, default="Unknown layer") == "Unknown layer"
    assert title("x", "zh", 400, default="Upload refused") == "文件被拒绝"
    assert area_text(666.67, "zh") == "1.00 亩（667 m²）"


@pytest.mark.parametrize(("lang", "accept", "expected"), [
    (None, None, "zh"), ("en", None, "en"), ("zh", "en", "zh"), ("fr", "en-GB,en;q=0.9", "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"), (None, "fr,en;q=0.5", "en"), (None, "en;q=0.2,zh;q=0.9", "zh"),
    (None, "en;q=bogus", "zh"), (None, "x" * 10_000, "zh")])
def test_language(lang, accept, expected):
    assert language(lang, accept) == expected


def test_quote_makes_file_content_safe():
    assert quote("</script>") == "</script>"  # HTML is escaped where rendered, not here
    assert quote("a\x00b\u202ec\u2066") == "a\\x00b\\u202ec\\u2066"
    long = quote("长" * 10_000)
    assert len(long) == 81 and long.endswith("…")
    assert quote(b"\xff\xfe") == "\ufffd\ufffd"


def test_a_report_in_either_language():
    report = Report(layer="caragana_plots", mode="upsert", file="f.zip")
    report.encoding = {"encoding": "gb18030", "source": "detected"}
    report.crs = {"epsg": 4545, "name": "CGCS2000 / 3-degree Gauss-Kruger CM 108E", "source": "prj"}
    report.add(problem(3, "value_missing", "planted_year", field_label="Year planted", no_column=False))
    report.add(problem(4, "value_not_allowed", "method", value=quote("乱种\u202e"), choices="a, b"))
    report.add(Problem(None, "some_future_code", "said in English", None, "warning"))
    report.written = {"inserted": 1, "updated": 2, "deleted": 0}
    d = report.as_dict(preview=False)
    assert d["problems"][0]["message"] == "Year planted is required" and d["problems"][0]["params"]
    zh = localise_report(d, "zh")
    assert zh["lang"] == "zh" and zh["problems"][0]["message"] == "种植年份必须填写"
    assert zh["problems"][0]["field_label"] == "种植年份" and zh["problems"][0]["code"] == "value_missing"
    assert zh["problems"][1]["message"] == "「乱种\\u202e」不是可选的值：a, b"
    assert zh["problems"][2]["message"] == "said in English"  # a code the catalogue lacks keeps its words
    assert zh["encoding"]["text"] == "GB18030（根据文件内容检测）" and "文件所写" in zh["crs"]["text"]
    assert zh["written_text"] == "新增 1、更新 2、删除 0"
    en = report.as_dict(preview=False, lang="en")
    assert en["problems"][0]["message"] == "Year planted is required"
    assert en["written_text"].startswith("inserted 1")
    assert d["problems"][0]["message"] == "Year planted is required"  # the original is not changed
