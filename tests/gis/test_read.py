"""Reading uploads: fixtures from other projects' test suites, geometry checks, value coercion."""

from __future__ import annotations

import shutil
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from gis.coerce import to_date, to_integer, to_monthday, to_real, to_text
from gis.errors import InputError
from gis.geometry import check_geometries
from gis.readers import batches, open_upload
from tests.data.fixtures import make

FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"


def _zip(tmp: Path, folder: Path) -> Path:
    target = tmp / f"{folder.name}.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for part in folder.iterdir():
            zf.write(part, f"data/{part.name}")
    return target


@pytest.mark.parametrize("text", ["2022-05-01", "2022/5/1", "2022年5月1日", "20220501", "2022.5.1",
                                  "２０２２－０５－０１", "2022-05-01 00:00:00", "2022 年 5 月 1 日"])
def test_dates_as_surveyors_write_them(text):
    assert to_date(text) == date(2022, 5, 1)


def test_values():
    assert to_date(20220501) == date(2022, 5, 1) and to_date(np.datetime64("2022-05-01")) == date(2022, 5, 1)
    assert to_date("") is None and to_date(None) is None
    for bad in ("2022-13-01", "yesterday", "2022/02/30"):
        with pytest.raises(ValueError):
            to_date(bad)
    assert to_real("1,234.5") == 1234.5 and to_real("１２３") == 123 and to_real(" 7 ") == 7
    assert to_integer("1,200") == 1200 and to_integer(1200.0) == 1200
    for bad in ("12.5", "1,23", "abc"):
        with pytest.raises(ValueError):
            to_integer(bad)
    assert to_monthday("4月1日") == "04-01" and to_monthday("4-1") == "04-01"
    with pytest.raises(ValueError):
        to_monthday("2-30")
    assert to_text(101.0) == "101" and to_text("  巴图 ") == "巴图" and to_text(float("nan")) is None


def test_geometry_checks():
    square = Polygon([(0, 0), (100, 0), (100, 100), (0, 100)])
    knot = make.self_intersecting(0, repairable=True)
    bowtie = make.self_intersecting(0, repairable=False)
    geoms = np.array([square, None, Point(1, 1), knot, bowtie, Polygon()], dtype=object)
    out, problems = check_geometries(geoms, "MULTIPOLYGON")
    assert [(p.index, p.code, p.severity) for p in sorted(problems, key=lambda p: p.index)] == [
        (1, "geometry_missing", "error"), (2, "geometry_type_mismatch", "error"),
        (3, "geometry_repaired", "warning"), (4, "geometry_invalid", "error"),
        (5, "geometry_missing", "error")]
    assert out[0].geom_type == "MultiPolygon" and out[0].area == 10_000
    assert out[3].geom_type == "MultiPolygon" and out[3].is_valid
    assert abs(out[3].area - 10_000) / 10_000 < 0.001
    assert out[1] is None and out[2] is None and out[4] is None


def test_line_checks_accept_lines_and_refuse_the_rest():
    line = shapely.LineString([(107.0, 38.0), (107.01, 38.0)])
    geoms = np.array([line, shapely.MultiLineString([line]), shapely.LineString([(107, 38), (107, 38)]),
                      Point(107, 38).buffer(0.01), None], dtype=object)
    out, problems = check_geometries(geoms, "MULTILINESTRING")
    assert [g.geom_type if g is not None else None for g in out] == [
        "MultiLineString", "MultiLineString", None, None, None]
    codes = {p.index: (p.code, p.message) for p in problems}
    assert codes[2][0] == "geometry_invalid"  # one point twice is not a line
    assert codes[3] == ("geometry_type_mismatch", "a Polygon cannot go into a layer of lines")
    assert codes[4][0] == "geometry_missing"


def test_multipatch_is_reported_per_feature(tmp_path):
    up = open_upload(_zip(tmp_path, FIXTURES / "multipatch"), tmp_path / "w")
    [batch] = list(batches(up))
    _out, problems = check_geometries(batch.geoms, "MULTIPOLYGON", batch.unreadable)
    assert [(p.index, p.code) for p in problems] in ([(0, "geometry_unsupported")],
                                                     [(0, "geometry_type_mismatch")])


def test_shp_alone_and_missing_shx_are_refused(tmp_path):
    with pytest.raises(InputError) as exc:
        open_upload(_zip(tmp_path, FIXTURES / "ring_orientation"), tmp_path / "w1")
    assert exc.value.code == "shapefile_incomplete" and exc.value.extra["missing"] == ["shx", "dbf"]
    with pytest.raises(InputError) as exc:
        open_upload(_zip(tmp_path, FIXTURES / "latin1_no_shx"), tmp_path / "w2")
    assert exc.value.code == "shapefile_incomplete" and exc.value.extra["missing"] == ["shx"]


def test_trailing_garbage_after_the_shp_is_tolerated(tmp_path):
    up = open_upload(_zip(tmp_path, FIXTURES / "corrupt_too_long"), tmp_path / "w")
    assert up.count == 10 and up.geometry_type == "LineString"
    assert sum(len(b.geoms) for b in batches(up, size=3)) == 10


def test_cp936_text_arrives_intact(tmp_path):
    up = open_upload(_zip(tmp_path, FIXTURES / "gbk_cpg_936"), tmp_path / "w")
    assert (up.encoding.encoding, up.encoding.source) == ("gbk", "cpg")
    [batch] = list(batches(up))
    assert list(batch.columns["TEST"]) == ["测试中文"]


def test_batches_cover_every_feature_once(tmp_path):
    up = open_upload(make.grid_zip(tmp_path, 2_500), tmp_path / "w")
    seen = [b.start for b in batches(up, size=1_000)]
    assert seen == [0, 1_000, 2_000]
    codes = np.concatenate([b.columns["DKBH"] for b in batches(up, size=700)])
    assert len(codes) == 2_500 and len(set(codes)) == 2_500


def test_duplicate_and_truncated_utf8_column_names(tmp_path):
    shp = make.write_shapefile(make.caragana_frame(2), tmp_path / "src", encoding="UTF-8", cpg=True)
    up = open_upload(make.zip_shapefile(shp, tmp_path / "u.zip"), tmp_path / "w")
    # 10-byte DBF names cut 地块编号 inside 号: the stray byte is dropped, not a crash
    assert "地块编" in up.columns
    dup = tmp_path / "dup"
    shutil.copytree(tmp_path / "src", dup)
    dbf = (dup / "柠条地块.dbf").read_bytes()
    (dup / "柠条地块.dbf").write_bytes(dbf.replace("施工单".encode(), "种植年".encode(), 1))
    up = open_upload(make.zip_shapefile(dup / "柠条地块.shp", tmp_path / "d.zip"), tmp_path / "w2")
    [batch] = list(batches(up))
    assert "种植年" in batch.columns and "种植年_2" in batch.columns
    assert shapely.get_num_geometries(batch.geoms[0]) == 1
