"""Every fixture of ../shared/data/fixtures: imported as far as it can be, or refused with its code.

These files are not all freely licensed, so they are not copied into the repository; the
test runs when the shared folder sits next to the checkout and is skipped otherwise. The
equivalents the other tests generate cover the same faults from a checkout alone.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from layers.importer import ImportOptions, run_import
from layers.store.database import engine_for
from layers.upload_errors import UploadRefusedError

SHARED = Path(__file__).parents[3] / "shared" / "data" / "fixtures"
WORLD = (-180.0, -85.0, 180.0, 85.0)

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fixtures is not present")

#: (folder, dataset) → (refusal code in the township without a CRS named, or None when it is read)
IN_THE_TOWNSHIP = {
    ("DERIVED_otog_cgcs2000_gk108e_gbk_chinese_fieldnames", None): None,
    ("corrupt_header_file_length", None): "crs_missing",
    ("deleted_dbf_records", None): "outside_township",
    ("duplicate_field_names", "dup_column"): "crs_unrecognised",
    ("duplicate_field_names", "state"): "crs_missing",
    ("empty_shapefile", None): "empty_file",
    ("gbk_dbf_cpg_936_wrong_ldid", None): "crs_missing",
    ("gbk_dbf_no_cpg", None): "outside_township",
    ("invalid_self_intersection_shp_only", "multipolygonzm"): "shapefile_incomplete",
    ("invalid_self_intersection_shp_only", "polygon_ring_orientation"): "shapefile_incomplete",
    ("latin1_no_cpg_no_shx", None): "shapefile_incomplete",
    ("missing_dbf_and_fieldless_dbf", "aaa1"): "outside_township",
    ("missing_dbf_and_fieldless_dbf", "aaa2"): "shapefile_incomplete",
    ("missing_shx", None): "shapefile_incomplete",
    ("multipatch_unsupported_type", None): "crs_missing",
    ("multipolygon_holes_z_m", "Polygon"): "crs_missing",
    ("multipolygon_holes_z_m", "PolygonM"): "crs_missing",
    ("multipolygon_holes_z_m", "PolygonZ"): "crs_missing",
    ("non_ascii_filename", None): "empty_file",
    ("null_geometry", None): "outside_township",
    ("ordos_counties_gcj02_no_prj_no_cpg", None): "crs_missing",
    ("polygonm_truncated_field_names", None): "outside_township",
    ("real_parks_dates_multipolygon_holes_osgb", None): "outside_township",
    ("shx_with_gaps", None): "crs_missing",
}


@pytest.fixture(scope="module")
def engine(new_database) -> Iterator[sa.Engine]:
    with new_database("landeco_test_shared") as url:
        yield engine_for(url.render_as_string(hide_password=False))


def _zip(tmp: Path, folder: str) -> Path:
    target = tmp / f"{uuid.uuid4().hex[:6]}.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for part in (SHARED / folder).iterdir():
            zf.write(part, f"{folder}/{part.name}")
    return target


def _check(engine, tmp, folder, dataset=None, region=None, crs=None, layer="villages"):
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            return run_import(conn, _zip(tmp, folder), tmp / uuid.uuid4().hex[:6],
                              ImportOptions(layer, dataset=dataset, crs=crs), write=False, region=region)
        finally:
            trans.rollback()


def test_every_shared_fixture_is_listed():
    stems = {(d.name, s) for d in SHARED.iterdir() for s in {p.stem for p in d.iterdir()}}
    listed = {(f, d or next(s for g, s in stems if g == f)) for f, d in IN_THE_TOWNSHIP}
    assert listed == stems


@pytest.mark.parametrize(("folder", "dataset"), list(IN_THE_TOWNSHIP))
def test_in_the_township(engine, tmp_path, folder, dataset):
    expected = IN_THE_TOWNSHIP[(folder, dataset)]
    if expected is None:
        report = _check(engine, tmp_path, folder, dataset)
        assert report.features > 0
        return
    with pytest.raises(UploadRefusedError) as exc:
        _check(engine, tmp_path, folder, dataset)
    assert exc.value.code == expected and exc.value.status in (400, 413, 415, 422)


def test_cgcs2000_gk_gbk_chinese_field_names(engine, tmp_path):
    report = _check(engine, tmp_path, "DERIVED_otog_cgcs2000_gk108e_gbk_chinese_fieldnames")
    assert report.encoding == {"encoding": "gbk", "source": "cpg"} and report.crs["epsg"] == 4545
    mapping = {m.column: m.field for m in report.mapping}
    assert mapping == {"行政代码": None, "名称": "name", "上级": None, "备注": "note"}
    # a county boundary, not a village: no village code or kind
    found = {(p.field, p.code) for p in report.problems}
    assert found == {("code", "value_missing"), ("kind", "value_missing")}


def test_foreign_fixtures_read_as_far_as_their_faults(engine, tmp_path):
    gbk = _check(engine, tmp_path, "gbk_dbf_no_cpg", region=WORLD)
    assert gbk.encoding == {"encoding": "gb18030", "source": "detected"}
    cp936 = _check(engine, tmp_path, "gbk_dbf_cpg_936_wrong_ldid", region=WORLD, crs="4326")
    assert cp936.encoding == {"encoding": "gbk", "source": "cpg"}
    assert {p.code for p in cp936.problems} >= {"geometry_type_mismatch"}  # a line for a polygon layer
    nulls = _check(engine, tmp_path, "null_geometry", region=WORLD)
    assert [p.index for p in nulls.problems if p.code == "geometry_missing"] == [3]
    tin = _check(engine, tmp_path, "multipatch_unsupported_type", region=WORLD, crs="4326")
    assert [p.code for p in tin.problems if p.field == "geometry"] == ["geometry_unsupported"]
    measured = _check(engine, tmp_path, "polygonm_truncated_field_names", region=WORLD)
    assert "zm_dropped" in {p.code for p in measured.problems}
    parks = _check(engine, tmp_path, "real_parks_dates_multipolygon_holes_osgb", region=WORLD)
    assert parks.crs["epsg"] == 27700 and parks.features == 17
    assert {p.code for p in parks.problems} == {"value_missing"}  # no village kind: nothing else wrong
    with pytest.raises(UploadRefusedError) as exc:
        _check(engine, tmp_path, "multipolygon_holes_z_m", dataset="PolygonZ", region=WORLD, crs="4326")
    assert exc.value.code == "count_mismatch"  # the .dbf has no record for the one shape
    with pytest.raises(UploadRefusedError) as exc:
        _check(engine, tmp_path, "duplicate_field_names", dataset="dup_column", region=WORLD, crs="4326")
    assert exc.value.code == "lonlat_swapped"  # x up to 356.6: not longitudes
    ordos = _check(engine, tmp_path, "ordos_counties_gcj02_no_prj_no_cpg", crs="4490")
    assert len([p for p in ordos.problems if p.code == "outside_township"]) == 6
