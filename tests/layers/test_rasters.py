"""The raster registry: add (checked, stored as a COG, registered), get, list; refusals store nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
import sqlalchemy as sa
from rio_cogeo.cogeo import cog_validate

from gis.raster import write_geotiff
from layers.audit import Who
from layers.rasters import (
    RasterNotFoundError,
    RasterParameterError,
    RasterRefusedError,
    add_raster,
    delete_raster,
    get_raster,
    list_rasters,
)
from layers.settings import Settings
from tests.gis.test_raster import ORIGIN_32648, hand_written_tiff


@pytest.fixture
def rsettings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def clean(engine):
    """No rasters before or after the test (the session's database is shared)."""
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM rasters"))
    yield engine
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM rasters"))


def ndvi_file(folder: Path, name: str = "ndvi.tif", value: float | None = None, origin=ORIGIN_32648,
              crs: str = "EPSG:32648", shape=(100, 120)) -> Path:
    rng = np.random.default_rng(7)
    data = (np.full(shape, value, "float32") if value is not None
            else rng.uniform(0, 0.7, shape).astype("float32"))
    return write_geotiff(folder / name, data, crs=crs, origin=origin, res=30, nodata=-9999)


def _stored(rsettings: Settings) -> list[Path]:
    folder = Path(rsettings.rasters_uri)
    return sorted(folder.iterdir()) if folder.exists() else []


def _count(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM rasters")).scalar()


def test_rasters_uri_defaults_under_storage_and_follows_the_setting(tmp_path):
    assert Settings(home=tmp_path).rasters_uri == str(tmp_path / "storage" / "rasters")
    remote = Settings(home=tmp_path, raster_storage="/vsis3/bucket/rasters/")
    assert remote.rasters_uri == "/vsis3/bucket/rasters"


def test_add_stores_a_cog_and_registers_it(clean, rsettings, tmp_path):
    src = ndvi_file(tmp_path)
    stages: list[str] = []
    r = add_raster(clean, rsettings, src, kind="ndvi", acquired="2022-07-15", source="Landsat 8 OLI",
                   band_meaning="NDVI ×1", who=Who(actor="alice"), on_progress=lambda f, s: stages.append(s))
    assert (r.kind, r.acquired, r.source, r.band_meaning, r.name, r.created_by) == (
        "ndvi", date(2022, 7, 15), "Landsat 8 OLI", "NDVI ×1", "ndvi.tif", "alice")
    assert (r.width, r.height, r.band_count, r.dtype, r.nodata, r.res_x, r.res_y, r.crs) == (
        120, 100, 1, "float32", -9999.0, 30.0, 30.0, "EPSG:32648")
    assert Path(r.uri).parent == Path(rsettings.rasters_uri) and _stored(rsettings) == [Path(r.uri)]
    assert cog_validate(r.uri, quiet=True)[0]
    with rasterio.open(r.uri) as cog, rasterio.open(src) as orig:
        assert np.array_equal(cog.read(1), orig.read(1))
    assert r.bytes == Path(r.uri).stat().st_size and len(r.sha256) == 64
    minx, miny, maxx, maxy = r.bounds_4326
    assert 107.1 < minx < maxx < 107.3 and 38.1 < miny < maxy < 38.3
    assert stages[0] == "checking" and "converting" in stages and stages[-1] == "stored"
    with clean.connect() as c:
        assert get_raster(c, r.id) == r
        assert get_raster(c, str(r.id)) == r
        assert c.execute(sa.text("SELECT action, detail->>'raster_id' FROM audit WHERE action = 'raster.add' "
                                 "ORDER BY id DESC LIMIT 1")).one() == ("raster.add", str(r.id))


def test_list_orders_by_kind_and_date_and_filters(clean, rsettings, tmp_path):
    src = ndvi_file(tmp_path)
    b = add_raster(clean, rsettings, src, kind="ndvi", acquired=date(2021, 7, 15))
    a = add_raster(clean, rsettings, src, kind="ndvi", acquired=date(2019, 7, 15))
    c_ = add_raster(clean, rsettings, src, kind="fvc", acquired=date(2022, 7, 15))
    with clean.connect() as c:
        assert [r.id for r in list_rasters(c)] == [c_.id, a.id, b.id]
        assert [r.id for r in list_rasters(c, kind="ndvi")] == [a.id, b.id]
        with pytest.raises(RasterParameterError):
            list_rasters(c, kind="ndvi' OR 1=1")


def test_unknown_ids_are_not_found(clean):
    with clean.connect() as c:
        for bad in (987654321, "abc", "1.5", 1.0, -1, 0, "9" * 30, None, True):
            with pytest.raises(RasterNotFoundError) as err:
                get_raster(c, bad)
            assert err.value.code == "raster_not_found" and err.value.status == 404


def test_a_path_in_the_file_name_is_dropped(clean, rsettings, tmp_path):
    r = add_raster(clean, rsettings, ndvi_file(tmp_path), kind="fvc", acquired="2020-07-15",
                   name="../../etc/passwd/..\\x.tif")
    assert r.name == "x.tif"
    assert Path(r.uri).parent == Path(rsettings.rasters_uri)


@pytest.mark.parametrize(("kwargs", "parameter"), [
    ({"kind": "lidar"}, "kind"),
    ({"acquired": "2022-02-30"}, "acquired"),
    ({"acquired": "yesterday"}, "acquired"),
    ({"source": "x" * 501}, "source"),
    ({"band_meaning": "a\x00b"}, "band_meaning"),
])
def test_wrong_parameters_are_refused(clean, rsettings, tmp_path, kwargs, parameter):
    with pytest.raises(RasterParameterError) as err:
        add_raster(clean, rsettings, ndvi_file(tmp_path),
                   **{"kind": "ndvi", "acquired": "2022-07-15", **kwargs})
    assert err.value.parameter == parameter and err.value.status == 400
    assert _count(clean) == 0 and _stored(rsettings) == []


def _hostile(tmp_path: Path) -> dict[str, Path]:
    far = ndvi_file(tmp_path, "far.tif", origin=(300_000.0, 3_000_000.0))  # UTM 48N, in Yunnan
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(nocrs, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       transform=rasterio.transform.from_origin(*ORIGIN_32648, 30, 30)) as dst:
        dst.write(np.ones((1, 10, 10), "uint8"))
    noise = np.random.default_rng(3).random((1024, 1024)).astype("float32")
    tiled = write_geotiff(tmp_path / "tiled.tif", noise, crs="EPSG:32648", origin=ORIGIN_32648, res=30,
                          tiled=True)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(tiled.read_bytes()[: tiled.stat().st_size // 3])
    text = tmp_path / "text.tif"
    text.write_text("id,ndvi\n1,0.5\n")
    bands = write_geotiff(tmp_path / "bands.tif", np.zeros((17, 10, 10), "uint8"), crs="EPSG:32648",
                          origin=ORIGIN_32648, res=30)
    return {"raster_outside_township": far, "raster_no_crs": nocrs, "raster_corrupt": truncated,
            "raster_not_tiff": text, "raster_too_many_bands": bands,
            "raster_dimensions_too_large": hand_written_tiff(tmp_path / "huge.tif", 10**9, 10**9)}


def test_hostile_files_are_refused_and_nothing_is_stored(clean, rsettings, tmp_path):
    for code, path in _hostile(tmp_path).items():
        with pytest.raises(RasterRefusedError) as err:
            add_raster(clean, rsettings, path, kind="ndvi", acquired="2022-07-15")
        assert err.value.code == code, (path.name, err.value)
        assert 400 <= err.value.status < 500
        assert _count(clean) == 0 and _stored(rsettings) == [], code


def test_a_file_larger_than_the_setting_is_refused(clean, tmp_path):
    rsettings = Settings(home=tmp_path / "home", raster_max_bytes=1000)
    with pytest.raises(RasterRefusedError) as err:
        add_raster(clean, rsettings, ndvi_file(tmp_path), kind="ndvi", acquired="2022-07-15")
    assert (err.value.code, err.value.status) == ("raster_too_large", 413)
    assert _count(clean) == 0 and _stored(rsettings) == []


def test_a_raster_near_the_loaded_villages_only(clean, rsettings, tmp_path):
    """With villages loaded, the township is their extent (plus about 5 km), not the whole banner."""
    inside_banner_far_from_villages = ndvi_file(tmp_path, "b.tif", origin=(630_000.0, 4_220_000.0))
    with clean.begin() as c:
        c.execute(sa.text("INSERT INTO villages (code, name, kind, geom) VALUES ('t-r', '测试村', 'village', "
                          "ST_Multi(ST_MakeEnvelope(107.15, 38.15, 107.25, 38.25, 4326)))"))
    try:
        with pytest.raises(RasterRefusedError) as err:
            add_raster(clean, rsettings, inside_banner_far_from_villages, kind="ndvi", acquired="2022-07-15")
        assert err.value.code == "raster_outside_township"
        assert add_raster(clean, rsettings, ndvi_file(tmp_path), kind="ndvi", acquired="2022-07-15").id
    finally:
        with clean.begin() as c:
            c.execute(sa.text("DELETE FROM villages WHERE code = 't-r'"))


def test_a_failed_insert_leaves_no_file(clean, rsettings, tmp_path, monkeypatch):
    from layers import rasters

    def boom(*a, **k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(rasters.audit, "record_as", boom)
    with pytest.raises(RuntimeError):
        add_raster(clean, rsettings, ndvi_file(tmp_path), kind="ndvi", acquired="2022-07-15")
    assert _count(clean) == 0 and _stored(rsettings) == []


def test_delete_removes_row_and_file(clean, rsettings, tmp_path):
    r = add_raster(clean, rsettings, ndvi_file(tmp_path), kind="dem", acquired="2022-07-15")
    delete_raster(clean, r.id, who="bob")
    assert _count(clean) == 0 and _stored(rsettings) == []


def test_the_database_refuses_a_wrong_kind(conn):
    with pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text("INSERT INTO rasters (kind, acquired, uri, crs, width, height, band_count, "
                             "footprint) VALUES ('lidar', '2022-01-01', '/x', 'EPSG:4326', 1, 1, 1, "
                             "ST_Multi(ST_MakeEnvelope(107, 38, 107.1, 38.1, 4326)))"))


def test_nan_nodata_and_odd_names_are_kept_safely(clean, rsettings, tmp_path):
    import json
    import math

    src = write_geotiff(tmp_path / "nan.tif", np.full((20, 20), 0.3, "float32"), crs="EPSG:32648",
                        origin=ORIGIN_32648, res=30, nodata=float("nan"))
    r = add_raster(clean, rsettings, src, kind="ndvi", acquired="2022-07-15", name="a\x00b\x1f.tif")
    assert math.isnan(r.nodata) and r.name == "ab.tif"
    body = json.dumps(r.as_json(), allow_nan=False)  # JSON has no NaN: it is said as text
    assert '"nodata": "nan"' in body


def test_old_received_files_are_swept(rsettings, tmp_path):
    import io
    import os

    from layers.rasters import incoming_path, receive_raster

    first = receive_raster(rsettings, io.BytesIO(b"II*\x00"))
    old = incoming_path(rsettings, first)
    os.utime(old, (0, 0))  # 1970: long past job_retention_days
    second = receive_raster(rsettings, io.BytesIO(b"II*\x00"))
    assert not old.exists() and incoming_path(rsettings, second).exists()
