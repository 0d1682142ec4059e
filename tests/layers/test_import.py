"""The importer on surveyor-style files: what arrives in the layer, and what is refused and why."""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import shapely.ops
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.importer import ImportOptions, run_import
from layers.store.database import engine_for
from layers.upload_errors import UploadRefusedError
from tests.data.fixtures import make

FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"
ORDOS = Path(__file__).parents[1] / "data" / "ordos_counties"


@pytest.fixture(scope="module")
def import_url(new_database) -> Iterator[URL]:
    """A migrated throwaway database for this module's imports."""
    with new_database("landeco_test_import") as url:
        yield url


@pytest.fixture
def db(import_url: URL) -> Iterator[sa.Engine]:
    """The engine, with every layer emptied after the test."""
    engine = engine_for(import_url.render_as_string(hide_password=False))
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE caragana_plots, land_leases, subsidence_zones, grazing_bans, villages "
                             "CASCADE"))


def run(engine: sa.Engine, path: Path, tmp: Path, write: bool = True, **options):
    with engine.connect() as conn:
        trans = conn.begin()
        report = run_import(conn, path, tmp / f"work{uuid.uuid4().hex[:6]}",
                            ImportOptions(**{"layer": "caragana_plots", **options}), write=write)
        trans.commit() if report.committed else trans.rollback()
    return report


def codes(engine: sa.Engine, layer: str = "caragana_plots") -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text(f"SELECT code FROM {layer} ORDER BY code")))


def test_gbk_gauss_kruger_zip_imports(db, tmp_path):
    report = run(db, make.caragana_zip(tmp_path, 5), tmp_path)
    d = report.as_dict()
    assert d["encoding"] == {"encoding": "gb18030", "source": "detected"}
    assert d["crs"]["epsg"] == 4545 and d["crs"]["source"] == "prj"
    assert d["dataset"] == "2022年调查/成果/柠条地块.SHP"
    mapping = {m["column"]: (m["field"], m["how"]) for m in d["mapping"]}
    assert mapping["地块编号"] == ("code", "alias")
    assert mapping["验收日期"] == ("inspected_on", "alias")
    assert mapping["负责人"] == (None, "extra")
    assert d["counts"] == {"features": 5, "importable": 5, "refused": 0, "errors": 0, "warnings": 0}
    assert report.written == {"inserted": 5, "updated": 0, "deleted": 0}
    with db.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT code, planted_year, method, seedlings, contractor, inspected_on, extra, area_m2, "
            "ST_X(ST_StartPoint(ST_ExteriorRing(ST_GeometryN(geom, 1)))) AS x, "
            "ST_Y(ST_StartPoint(ST_ExteriorRing(ST_GeometryN(geom, 1)))) AS y "
            "FROM caragana_plots ORDER BY code")).mappings().all()
    assert [r["code"] for r in rows] == [f"NT-{i:04d}" for i in range(5)]
    methods = ["enclosure", "restoration", "replacement", "enclosure", "restoration"]
    assert [r["method"] for r in rows] == methods  # zh label, value and zh label
    assert [r["seedlings"] for r in rows] == [1000, 2000, 3000, 4000, 5000]  # "1,000" … with separators
    assert {r["inspected_on"] for r in rows} == {date(2022, 5, 1)}  # five ways of writing it
    assert rows[0]["contractor"] == "鄂托克前旗绿源生态建设有限公司"
    assert rows[0]["extra"] == {"负责人": "巴图"}
    # 100 m squares in GK are 10 000 m² on the ellipsoid within the projection's scale error
    assert all(abs(r["area_m2"] - 10_000) < 20 for r in rows)
    lon, lat = make.ORIGIN_LONLAT
    assert abs(rows[0]["x"] - lon) < 1e-6 or abs(rows[0]["y"] - lat) < 1e-3


def test_problems_are_reported_per_feature_and_nothing_is_written(db, tmp_path):
    frame = make.caragana_frame(6)
    frame.loc[1, "geometry"] = None
    frame.loc[2, "geometry"] = make.self_intersecting(2, repairable=False)
    frame.loc[3, "geometry"] = make.self_intersecting(3, repairable=True)
    frame.loc[4, "种植方式"] = "随便种"
    frame.loc[5, "验收日期"] = "2022年13月1日"
    report = run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path)
    found = {(p.index, p.code, p.field, p.severity) for p in report.problems}
    assert found == {
        (1, "geometry_missing", "geometry", "error"),
        (2, "geometry_invalid", "geometry", "error"),
        (3, "geometry_repaired", "geometry", "warning"),
        (4, "value_not_allowed", "method", "error"),
        (5, "value_invalid", "inspected_on", "error"),
    }
    assert not report.committed and codes(db) == []


def test_repaired_feature_imports_with_its_area(db, tmp_path):
    frame = make.caragana_frame(2)
    frame.loc[1, "geometry"] = make.self_intersecting(1, repairable=True)
    report = run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path)
    assert report.committed and [p.code for p in report.problems] == ["geometry_repaired"]
    with db.connect() as conn:
        assert conn.scalar(sa.text("SELECT bool_and(ST_IsValid(geom)) FROM caragana_plots"))


def test_overlaps_in_the_file_and_with_the_layer_are_refused(db, tmp_path):
    assert run(db, make.caragana_zip(tmp_path / "a", 2), tmp_path).committed
    frame = make.caragana_frame(4)
    frame["地块编号"] = [f"NEW-{i}" for i in range(4)]
    frame.loc[3, "geometry"] = frame.loc[2, "geometry"].buffer(10)
    report = run(db, make.caragana_zip(tmp_path / "b", frame=frame), tmp_path)
    found = {(p.index, p.code) for p in report.problems}
    assert (0, "overlap_existing") in found and (1, "overlap_existing") in found
    assert (3, "overlap") in found
    assert codes(db) == ["NT-0000", "NT-0001"]


def test_modes_insert_upsert_replace(db, tmp_path):
    run(db, make.caragana_zip(tmp_path / "a", 3), tmp_path)
    again = run(db, make.caragana_zip(tmp_path / "b", 3), tmp_path)
    assert {p.code for p in again.problems} == {"code_exists"} and not again.committed
    frame = make.caragana_frame(4)
    frame["种植年份"] = 2021
    up = run(db, make.caragana_zip(tmp_path / "c", frame=frame), tmp_path, mode="upsert")
    assert up.written == {"inserted": 1, "updated": 3, "deleted": 0}
    with db.connect() as conn:
        assert set(conn.scalars(sa.text("SELECT planted_year FROM caragana_plots"))) == {2021}
    rep = run(db, make.caragana_zip(tmp_path / "d", 2), tmp_path, mode="replace")
    assert rep.written == {"inserted": 2, "updated": 0, "deleted": 4}
    assert codes(db) == ["NT-0000", "NT-0001"]


def test_dry_run_writes_nothing(db, tmp_path):
    report = run(db, make.caragana_zip(tmp_path, 3), tmp_path, write=False)
    assert report.ok and not report.committed and codes(db) == []


def test_no_prj_is_refused_unless_the_crs_is_named(db, tmp_path):
    shp = make.write_shapefile(make.caragana_frame(2), tmp_path / "src")
    zipped = make.zip_shapefile(shp, tmp_path / "x.zip", drop=("prj",))
    with pytest.raises(UploadRefusedError) as exc:
        run(db, zipped, tmp_path)
    assert exc.value.code == "crs_missing" and exc.value.status == 422
    assert run(db, zipped, tmp_path, crs="EPSG:4545").committed


def test_easting_with_zone_number_is_explained(db, tmp_path):
    frame = make.caragana_frame(2)
    frame["geometry"] = frame.geometry.translate(36_000_000, 0)
    with pytest.raises(UploadRefusedError) as exc:
        run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path)
    assert exc.value.code == "easting_has_zone_number"
    assert exc.value.extra()["suggested_epsg"] == 4524  # CGCS2000 3-degree GK zone 36


def test_swapped_lon_lat_is_explained(db, tmp_path):
    frame = make.caragana_frame(2, crs=4490)
    frame["geometry"] = frame.geometry.map(lambda g: shapely.ops.transform(lambda x, y: (y, x), g))
    with pytest.raises(UploadRefusedError) as exc:
        run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path)
    assert exc.value.code == "lonlat_swapped"


def test_file_far_from_the_township_is_refused(db, tmp_path):
    frame = make.caragana_frame(2, crs=4490)
    frame["geometry"] = frame.geometry.translate(10, 0)
    with pytest.raises(UploadRefusedError) as exc:
        run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path)
    assert exc.value.code == "outside_township"


def test_utf8_with_cpg_and_encoding_override(db, tmp_path):
    shp = make.write_shapefile(make.caragana_frame(2), tmp_path / "src", encoding="UTF-8", cpg=True)
    report = run(db, make.zip_shapefile(shp, tmp_path / "u.zip", upper=False), tmp_path)
    assert report.encoding == {"encoding": "utf-8", "source": "cpg"} and report.committed
    shp = make.write_shapefile(make.caragana_frame(2), tmp_path / "src2")
    report = run(db, make.zip_shapefile(shp, tmp_path / "g.zip"), tmp_path, encoding="GBK", mode="upsert")
    assert report.encoding == {"encoding": "gbk", "source": "override"}
    with db.connect() as conn:
        contractor = conn.scalar(sa.text("SELECT contractor FROM caragana_plots LIMIT 1"))
    assert contractor == "鄂托克前旗绿源生态建设有限公司"


def test_several_shapefiles_must_be_chosen(db, tmp_path):
    a = make.write_shapefile(make.caragana_frame(2), tmp_path / "a", name="一组")
    b = make.write_shapefile(make.caragana_frame(3), tmp_path / "b", name="二组")
    target = tmp_path / "two.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for shp in (a, b):
            for part in shp.parent.iterdir():
                zf.write(part, part.name)
    with pytest.raises(UploadRefusedError) as exc:
        run(db, target, tmp_path)
    assert exc.value.code == "dataset_ambiguous"
    assert sorted(exc.value.extra()["candidates"]) == ["一组.shp", "二组.shp"]
    assert run(db, target, tmp_path, dataset="二组").features == 3


def test_geopackage_layer_choice_and_geojson(db, tmp_path):
    gpkg = tmp_path / "survey.gpkg"
    make.caragana_frame(2).to_file(gpkg, layer="plots", driver="GPKG")
    make.caragana_frame(1).to_file(gpkg, layer="other", driver="GPKG")
    with pytest.raises(UploadRefusedError) as exc:
        run(db, gpkg, tmp_path)
    assert exc.value.code == "dataset_ambiguous"
    assert run(db, gpkg, tmp_path, dataset="plots").committed
    geojson = tmp_path / "plots.geojson"
    frame = make.caragana_frame(4, crs=4326).iloc[2:]
    frame.to_file(geojson, driver="GeoJSON")
    report = run(db, geojson, tmp_path)
    assert report.committed and report.crs["epsg"] == 4326 and codes(db)[-1] == "NT-0003"


def test_kmz(db, tmp_path):
    kml = tmp_path / "doc.kml"
    make.caragana_frame(2, crs=4326).to_file(kml, driver="KML")
    kmz = tmp_path / "plots.kmz"
    with zipfile.ZipFile(kmz, "w") as zf:
        zf.write(kml, "doc.kml")
    report = run(db, kmz, tmp_path, write=False)
    assert report.features == 2 and report.format == "KML"


def test_real_ordos_counties_need_a_crs_and_only_one_lies_in_the_banner(db, tmp_path):
    target = tmp_path / "ordos.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for part in ORDOS.iterdir():
            zf.write(part, part.name)
    with pytest.raises(UploadRefusedError) as exc:
        run(db, target, tmp_path, layer="villages")
    assert exc.value.code == "crs_missing"
    report = run(db, target, tmp_path, write=False, layer="villages", crs="4490")
    assert report.encoding == {"encoding": "utf-8", "source": "detected"}
    outside = {p.index for p in report.problems if p.code == "outside_township"}
    assert len(outside) == 6 and 5 not in outside  # 鄂托克前旗 (5) is inside
    # county files carry no village code or kind: refused per feature, with the reason
    missing = {(p.index, p.field) for p in report.problems if p.code == "value_missing"}
    assert (5, "code") in missing and (5, "kind") in missing
    assert {m.column: m.field for m in report.mapping}["name"] == "name"


def test_codes_twice_in_the_file_and_unknown_villages(db, tmp_path):
    frame = make.caragana_frame(3)
    frame.loc[2, "地块编号"] = "NT-0000"
    frame["嘎查村代码"] = ["150623101201", None, None]
    report = run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path)
    found = {(p.index, p.code, p.field) for p in report.problems}
    assert found == {(2, "code_duplicate", "code"), (0, "village_unknown", "village_code")}
    assert codes(db) == []


def test_a_broken_row_rule_falls_back_and_is_reported(db, tmp_path):
    frame = make.caragana_frame(3).drop(columns=["种植年份", "种植方式", "苗木数量", "成活率", "验收日期"])
    frame["承租方"] = "内蒙古光伏有限公司"
    frame["用途"] = "光伏"
    frame["方式"] = "租赁"
    frame["状态"] = "履约中"
    frame["起始日期"] = ["2020-01-01", "2021-01-01", "2022-01-01"]
    frame["终止日期"] = ["2030-01-01", "2020-06-01", "2032-01-01"]  # feature 1 ends before it starts
    report = run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path, layer="land_leases")
    assert [(p.index, p.code) for p in report.problems] == [(1, "rule_broken")]
    assert not report.committed and codes(db, "land_leases") == []
    frame.loc[1, "终止日期"] = "2031-01-01"
    report = run(db, make.caragana_zip(tmp_path / "ok", frame=frame), tmp_path, layer="land_leases")
    assert report.committed and codes(db, "land_leases") == ["NT-0000", "NT-0001", "NT-0002"]


def test_a_check_reports_overlaps_beside_other_errors(db, tmp_path):
    frame = make.caragana_frame(3)
    frame.loc[0, "种植方式"] = "乱种"
    frame.loc[2, "geometry"] = frame.loc[1, "geometry"].buffer(5)
    report = run(db, make.caragana_zip(tmp_path, frame=frame), tmp_path, write=False)
    assert {(p.index, p.code) for p in report.problems} == {(0, "value_not_allowed"), (2, "overlap")}
    assert "NT-0001" in next(p.message for p in report.problems if p.code == "overlap")


def test_the_overlap_look_up_keeps_old_batches_as_wkb_and_parses_only_what_a_chunk_meets(monkeypatch):
    """Memory stays bounded on a million parcels: old batches give up their trees, not their overlaps."""
    import shapely

    from layers import importer

    monkeypatch.setattr(importer, "OVERLAP_KEEP_PARSED", 2)
    squares = [shapely.box(108 + i * 0.01, 38, 108.005 + i * 0.01, 38.005) for i in range(6)]
    found = importer._Overlaps()
    found.add(np.array(squares[:2]), ["a0", "a1"])
    found.add(np.array(squares[2:4]), ["b2", "b3"])
    assert found.seen[0].tree is None and found.seen[0].wkb is not None and found.seen[1].tree is not None
    found.add(np.array([squares[0].buffer(0.001)]), ["c0"])  # overlaps a0, parsed again
    assert found.pairs == [("c0", "a0")] and not found.overflow
    assert found.reparsed == 1  # only a0's box meets the chunk's box: a1 stays unparsed

    monkeypatch.setattr(importer, "OVERLAP_REPARSE_MAX", 0)
    found.add(np.array([squares[1].buffer(0.001)]), ["d1"])
    assert found.overflow and found.pairs == []  # the database looks instead


@pytest.mark.parametrize("write", [True, False], ids=["direct", "staged"])
@pytest.mark.parametrize("limits", [(), ("OVERLAP_KEEP_PARSED",), ("OVERLAP_CANDIDATES_MAX",),
                                    ("OVERLAPS_IN_PYTHON_MAX",),
                                    ("OVERLAP_KEEP_PARSED", "OVERLAP_REPARSE_MAX")],
                         ids=["found-while-reading", "earlier-batches-parsed-again", "too-many-pairs",
                              "too-many-features", "too-much-parsed-again"])
def test_overlaps_across_batches_are_found_alike_while_reading_and_by_the_database(db, tmp_path, monkeypatch,
                                                                                 write, limits):
    """The file's overlaps are looked for batch by batch in Python, or by the database past a limit.

    Both report the same: features overlapping ones of earlier batches and of their own batch,
    and nothing for the touching plots (their reprojected edges meet in slivers only). With no
    room to keep earlier batches parsed, they are parsed again from their WKB where needed.
    """
    from layers import importer

    for limit in limits:  # no room kept parsed, or past a limit: the database finds them itself
        monkeypatch.setattr(importer, limit, 0)
    frame = make.caragana_frame(7)  # batches of 2: [0 1] [2 3] [4 5] [6]
    frame.loc[6, "geometry"] = frame.loc[0, "geometry"].buffer(5)  # 0 whole, 1 by a 5 m strip
    frame.loc[5, "geometry"] = frame.loc[4, "geometry"].buffer(5)  # 4 whole, 3 by a 5 m strip
    path = make.caragana_zip(tmp_path, frame=frame)
    with db.connect() as conn:
        trans = conn.begin()
        report = run_import(conn, path, tmp_path / "work", ImportOptions(layer="caragana_plots"), write=write,
                            batch_size=2)
        trans.rollback()
    overlaps = sorted((p.index, p.code, p.params["other_code"]) for p in report.problems)
    assert overlaps == [(5, "overlap", "NT-0003"), (5, "overlap", "NT-0004"), (6, "overlap", "NT-0000"),
                        (6, "overlap", "NT-0001")]
    assert not report.committed and report.refused == 2
