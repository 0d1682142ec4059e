"""DBF encodings: the .cpg wins, else strict UTF-8, else GB18030 for Chinese, else the LDID."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gis.encoding import EncodingChoice, detect_dbf_encoding, detect_text_encoding, normalise
from gis.errors import InputError
from gis.readers import batches, open_upload
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
    assert choice.encoding in ("cp1252", "cp437", "cp850")
    assert choice.source in ("ldid", "detected", "fallback")


def test_override_and_names():
    assert detect_dbf_encoding(ORDOS / "ordos_counties.dbf", override="UTF8").source == "override"
    with pytest.raises(InputError) as wrong:  # UTF-8 Chinese read as GBK would be mojibake
        detect_dbf_encoding(ORDOS / "ordos_counties.dbf", override="GBK")
    assert wrong.value.code == "encoding_mismatch"
    assert [normalise(n) for n in ("936", "CP936", "utf8", "UTF-8", "GB18030")] == \
        ["gbk", "gbk", "utf-8", "utf-8", "gb18030"]
    with pytest.raises(InputError) as exc:
        normalise("klingon")
    assert exc.value.code == "unknown_encoding"


# --- the bytes decide: a declaration is verified, never trusted (issue 15) ---

def _shp(tmp_path: Path, encoding: str, cpg: str | None, n: int = 3) -> Path:
    folder = tmp_path / encoding.lower()
    shp = make.write_shapefile(make.caragana_frame(n), folder, name="p", encoding=encoding)
    if cpg is not None:
        shp.with_suffix(".cpg").write_text(cpg, "ascii")
    return shp


def _detect(shp: Path, override: str | None = None):
    cpg = shp.with_suffix(".cpg")
    return detect_dbf_encoding(shp.with_suffix(".dbf"), cpg if cpg.exists() else None, override)


@pytest.mark.parametrize(("encoding", "cpg", "expected"), [
    ("UTF-8", "UTF-8", ("utf-8", "cpg", None)),
    ("UTF-8", None, ("utf-8", "detected", None)),
    ("GBK", None, ("gb18030", "detected", None)),
    ("GBK", "936", ("gbk", "cpg", None)),
    ("GBK", "UTF-8", ("gb18030", "detected", "utf-8")),  # a lying .cpg: the bytes are GBK
    ("UTF-8", "936", ("utf-8", "detected", "gbk")),  # a lying .cpg: the bytes are UTF-8
    ("GBK", "1252", ("gb18030", "detected", "cp1252")),  # a Western .cpg on Chinese text
])
def test_the_bytes_decide(tmp_path, encoding, cpg, expected):
    choice = _detect(_shp(tmp_path, encoding, cpg))
    assert (choice.encoding, choice.source, choice.declared) == expected


def test_an_override_the_bytes_contradict_is_refused(tmp_path):
    gbk = _shp(tmp_path, "GBK", None)
    with pytest.raises(InputError) as exc:
        _detect(gbk, "utf-8")
    assert exc.value.code == "encoding_mismatch" and exc.value.extra["encoding"] == "utf-8"
    assert exc.value.extra.get("field_name") or exc.value.extra.get("column")
    utf8 = _shp(tmp_path, "UTF-8", None)
    for wrong in ("gbk", "latin-1"):
        with pytest.raises(InputError) as exc:
            _detect(utf8, wrong)
        assert exc.value.code == "encoding_mismatch" and exc.value.extra["suggested"] == "utf-8"
    with pytest.raises(InputError) as exc:
        _detect(gbk, "cp1252")  # decodes, but Chinese would become mojibake
    assert exc.value.code == "encoding_mismatch" and exc.value.extra["suggested"] == "gb18030"
    assert _detect(gbk, "gbk") == EncodingChoice("gbk", "override")


def _poke(dbf: Path, record: int, field: int, raw: bytes) -> None:
    """Overwrite the start of one text value of ``dbf``."""
    data = bytearray(dbf.read_bytes())
    header_len, record_len = struct.unpack("<HH", data[8:12])
    offset = 1 + sum(data[32 + 32 * i + 16] for i in range(field))
    at = header_len + record * record_len + offset
    data[at:at + len(raw)] = raw
    dbf.write_bytes(bytes(data))


def test_undecodable_text_is_refused_naming_where(tmp_path):
    shp = _shp(tmp_path, "GBK", None)
    _poke(shp.with_suffix(".dbf"), 1, 2, b"\xff\xff\xfe\x80")  # neither UTF-8 nor GB18030
    with pytest.raises(InputError) as exc:
        _detect(shp)
    assert exc.value.code == "encoding_undetermined"
    assert exc.value.extra["feature"] == 1 and exc.value.hint


def test_a_value_cut_mid_character_loses_only_the_half_character(tmp_path):
    frame = make.caragana_frame(2)
    frame["施工单位"] = ["绿源" * 20, "短"]
    shp = make.write_shapefile(frame, tmp_path / "u", name="p", encoding="UTF-8")
    dbf = shp.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    header_len = struct.unpack("<H", data[8:10])[0]
    names = [bytes(data[32 + 32 * i:43 + 32 * i]).split(b"\0")[0] for i in range((header_len - 33) // 32)]
    field = next(i for i, n in enumerate(names) if n.startswith("施工".encode()))
    width = data[32 + 32 * field + 16]
    value = "绿源".encode() * 40
    _poke(dbf, 0, field, (b"a" + value)[:width] if width % 3 == 0 else value[:width])  # ends mid-character
    upload = open_upload(make.zip_shapefile(shp, tmp_path / "cut.zip"), tmp_path / "work")
    assert (upload.encoding.encoding, upload.encoding.cut_values) == ("utf-8", 1)
    batch = next(batches(upload))
    value = list(batch.columns.values())[field][0]
    assert value.strip("a") == "绿源" * ((width - 1) // 6) + ("绿" if ((width - 1) // 3) % 2 else "")
    assert next(iter(batch.columns)) == "地块编"  # the name cut at 10 bytes, its half character dropped


def test_text_files_utf8_gbk_and_garbage(tmp_path):
    good = tmp_path / "a.geojson"
    good.write_text('{"type": "FeatureCollection", "features": [], "name": "柠条地块"}', "utf-8")
    assert detect_text_encoding(good) == EncodingChoice("utf-8", "format")
    gbk = tmp_path / "b.geojson"
    gbk.write_bytes('{"type": "FeatureCollection", "name": "柠条地块划区围封"}'.encode("gbk"))
    assert detect_text_encoding(gbk) == EncodingChoice("gb18030", "detected")
    with pytest.raises(InputError) as exc:
        detect_text_encoding(gbk, "utf-8")
    assert exc.value.code == "encoding_mismatch"
    with pytest.raises(InputError) as exc:
        detect_text_encoding(good, "gbk")
    assert exc.value.code == "encoding_mismatch" and exc.value.extra["suggested"] == "utf-8"
    junk = tmp_path / "c.geojson"
    junk.write_bytes(b'{"name": "\xff\xfe\x80\x80"}')
    with pytest.raises(InputError) as exc:
        detect_text_encoding(junk)
    assert exc.value.code == "encoding_undetermined"
