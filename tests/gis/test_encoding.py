"""DBF encodings: the .cpg wins, else strict UTF-8, else GB18030 for Chinese, else the LDID."""

from __future__ import annotations

from pathlib import Path

import pytest

from gis.encoding import detect_dbf_encoding, normalise
from gis.errors import InputError
from tests.data.fixtures import make

FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"
ORDOS = Path(__file__).parents[1] / "data" / "ordos_counties"


def test_cpg_936_wins_over_a_wrong_ldid():
    d = FIXTURES / "gbk_cpg_936"
    choice = detect_dbf_encoding(d / "file_cp936.dbf", d / "file_cp936.cpg")
    assert (choice.encoding, choice.source) == ("gbk", "cpg")


def test_utf8_without_cpg_is_detected():
    choice = detect_dbf_encoding(ORDOS / "ordos_counties.dbf")
    assert (choice.encoding, choice.source) == ("utf-8", "detected")


def test_gbk_without_cpg_is_detected_as_gb18030(tmp_path):
    shp = make.write_shapefile(make.caragana_frame(3), tmp_path)
    choice = detect_dbf_encoding(shp.with_suffix(".dbf"))
    assert (choice.encoding, choice.source) == ("gb18030", "detected")


def test_latin1_is_not_mistaken_for_chinese():
    choice = detect_dbf_encoding(FIXTURES / "latin1_no_shx" / "latin1.dbf")
    assert choice.encoding in ("cp1252", "cp437", "cp850") and choice.source in ("ldid", "detected")


def test_override_and_names():
    assert detect_dbf_encoding(ORDOS / "ordos_counties.dbf", override="GBK").source == "override"
    assert [normalise(n) for n in ("936", "CP936", "utf8", "UTF-8", "GB18030")] == \
        ["gbk", "gbk", "utf-8", "utf-8", "gb18030"]
    with pytest.raises(InputError) as exc:
        normalise("klingon")
    assert exc.value.code == "unknown_encoding"
