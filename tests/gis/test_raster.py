"""GeoTIFFs checked from their headers and converted to COGs (gis.raster, no database)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from gis.errors import InputError
from gis.raster import RasterLimits, inspect, tiff_header, to_cog, write_geotiff

#: Top-left corner of a small raster over the demo township in EPSG:32648 (UTM 48N), metres.
ORIGIN_32648 = (688_000.0, 4_232_000.0)


def _ndvi(tmp_path: Path, name: str = "ndvi.tif", shape=(200, 300), **kw) -> Path:
    rng = np.random.default_rng(1)
    data = rng.uniform(-0.1, 0.8, size=shape).astype("float32")
    return write_geotiff(tmp_path / name, data, crs="EPSG:32648", origin=ORIGIN_32648, res=30, **kw)


def hand_written_tiff(path: Path, width: int, height: int, *, samples: int = 1, bits: int = 32,
                      big_endian: bool = False) -> Path:
    """A TIFF whose first directory claims ``width`` × ``height`` pixels and holds no pixel at all."""
    o = ">" if big_endian else "<"
    tags = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1),
            (273, 4, 8), (277, 3, samples), (278, 4, height), (279, 4, 0), (339, 3, 3)]
    body = (b"MM" if big_endian else b"II") + struct.pack(o + "HI", 42, 8) + struct.pack(o + "H", len(tags))
    for tag, ftype, value in tags:
        packed = struct.pack(o + ("H" if ftype == 3 else "I"), value).ljust(4, b"\0")
        body += struct.pack(o + "HHI", tag, ftype, 1) + packed
    path.write_bytes(body + struct.pack(o + "I", 0))
    return path


def test_inspect_reads_the_grid_and_places_it_in_lonlat(tmp_path):
    info = inspect(_ndvi(tmp_path, nodata=-9999))
    assert (info.width, info.height, info.band_count, info.dtype) == (300, 200, 1, "float32")
    assert info.crs == "EPSG:32648" and info.nodata == -9999
    assert (info.res_x, info.res_y) == (30.0, 30.0)
    assert info.bounds == (688_000.0, 4_232_000.0 - 6000, 688_000.0 + 9000, 4_232_000.0)
    minx, miny, maxx, maxy = info.footprint.bounds
    assert 107.1 < minx < maxx < 107.3 and 38.1 < miny < maxy < 38.3  # the demo township
    assert info.pixel_bytes == 300 * 200 * 4


def test_a_header_claiming_a_billion_by_a_billion_pixels_is_refused_before_gdal(tmp_path):
    path = hand_written_tiff(tmp_path / "huge.tif", 10**9, 10**9)
    assert tiff_header(path) == (10**9, 10**9, 1, 32)
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_dimensions_too_large"
    assert err.value.extra["pixel_bytes"] == 4 * 10**18


def test_a_big_endian_header_is_read_too(tmp_path):
    assert tiff_header(hand_written_tiff(tmp_path / "mm.tif", 70_000, 80_000, big_endian=True, bits=16)) == (
        70_000, 80_000, 1, 16)


def test_too_many_bands_are_refused(tmp_path):
    path = write_geotiff(tmp_path / "bands.tif", np.zeros((5, 10, 10), "uint8"), crs="EPSG:32648",
                         origin=ORIGIN_32648, res=30)
    with pytest.raises(InputError) as err:
        inspect(path, RasterLimits(max_bands=4))
    assert err.value.code == "raster_too_many_bands"
    assert inspect(path, RasterLimits(max_bands=5)).band_count == 5


def test_pixel_bytes_are_limited(tmp_path):
    path = _ndvi(tmp_path)  # 300 × 200 float32: 240 000 bytes
    with pytest.raises(InputError) as err:
        inspect(path, RasterLimits(max_pixel_bytes=239_999))
    assert err.value.code == "raster_dimensions_too_large"
    inspect(path, RasterLimits(max_pixel_bytes=240_000))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 a zip", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
                                     b"not a tiff at all"])
def test_not_a_tiff(tmp_path, content):
    path = tmp_path / "x.tif"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_not_tiff"


def test_a_header_cut_short_is_corrupt(tmp_path):
    path = tmp_path / "cut.tif"
    path.write_bytes(_ndvi(tmp_path).read_bytes()[:6])
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_corrupt"


def test_a_directory_pointing_past_the_end_is_corrupt(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\x00" + struct.pack("<I", 10_000_000))
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_corrupt"


def test_a_truncated_tiff_is_found_out_when_its_pixels_are_converted(tmp_path):
    src = _ndvi(tmp_path, shape=(1024, 1024), tiled=True)
    data = src.read_bytes()
    # GDAL writes the directory first, then the tiles: keep the header, lose most tiles
    with rasterio.open(src) as ds:
        assert ds.block_shapes[0] == (256, 256)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 3])
    try:
        inspect(cut)  # the header alone may still read
    except InputError as err:
        assert err.code == "raster_corrupt"
        return
    with pytest.raises(InputError) as err:
        to_cog(cut, tmp_path / "out.tif")
    assert err.value.code == "raster_corrupt"


def test_no_crs(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       transform=rasterio.transform.from_origin(*ORIGIN_32648, 30, 30)) as dst:
        dst.write(np.ones((1, 10, 10), "uint8"))
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_no_crs"


def test_no_georeferencing(tmp_path):
    path = tmp_path / "nogeo.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       crs="EPSG:32648") as dst:
        dst.write(np.ones((1, 10, 10), "uint8"))
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_not_georeferenced"


def test_rotated_grid(tmp_path):
    path = tmp_path / "rot.tif"
    transform = rasterio.Affine(30, 5, ORIGIN_32648[0], 5, -30, ORIGIN_32648[1])
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       crs="EPSG:32648", transform=transform) as dst:
        dst.write(np.ones((1, 10, 10), "uint8"))
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_rotated"


def test_complex_samples_are_refused(tmp_path):
    path = write_geotiff(tmp_path / "c.tif", np.zeros((10, 10), "complex64"), crs="EPSG:32648",
                         origin=ORIGIN_32648, res=30)
    with pytest.raises(InputError) as err:
        inspect(path)
    assert err.value.code == "raster_dtype_unsupported"


def test_a_geographic_raster_has_its_footprint_as_is(tmp_path):
    path = write_geotiff(tmp_path / "ll.tif", np.zeros((10, 20), "int16"), crs="EPSG:4326",
                         origin=(107.0, 38.3), res=0.01)
    info = inspect(path)
    assert info.crs == "EPSG:4326"
    assert np.allclose(info.footprint.bounds, (107.0, 38.2, 107.2, 38.3))


def test_cgcs2000_gauss_kruger_footprint(tmp_path):
    # EPSG:4545: CGCS2000 3-degree Gauss-Krüger, central meridian 108°E, no zone prefix
    path = write_geotiff(tmp_path / "gk.tif", np.zeros((10, 10), "float32"), crs="EPSG:4545",
                         origin=(425_000.0, 4_235_000.0), res=30)
    minx, miny, _, _ = inspect(path).footprint.bounds
    assert 107.1 < minx < 107.2 and 38.2 < miny < 38.3


def test_to_cog_writes_a_valid_cog_with_the_same_pixels(tmp_path):
    src = _ndvi(tmp_path, shape=(1100, 900), nodata=-9999)
    out = tmp_path / "cog.tif"
    seen: list[float] = []
    to_cog(src, out, on_progress=seen.append)
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid, errors
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert np.array_equal(a.read(), b.read())
        assert b.crs == a.crs and b.transform == a.transform and b.nodata == -9999
        assert b.overviews(1)  # overviews for drawing at low zoom
        assert b.block_shapes[0] == (512, 512)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_damaged_files_are_refused_with_a_code_never_a_crash(tmp_path):
    """Bytes flipped in the header or the tiles, files cut short: a stored COG or an InputError."""
    src = _ndvi(tmp_path, shape=(300, 300), nodata=-9999, tiled=True)
    data = src.read_bytes()
    rng = np.random.default_rng(42)
    codes = set()
    for i in range(150):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(0, 2000 if rng.random() < 0.7 else len(damaged)))
            damaged[pos] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            damaged = damaged[: int(rng.integers(8, len(damaged)))]
        path = tmp_path / f"d{i}.tif"
        path.write_bytes(bytes(damaged))
        try:
            inspect(path)
            to_cog(path, tmp_path / f"out{i}.tif")
        except InputError as err:
            codes.add(err.code)
    assert "raster_corrupt" in codes and codes <= {
        "raster_corrupt", "raster_no_crs", "raster_not_tiff", "raster_too_many_bands",
        "raster_dtype_unsupported", "raster_dimensions_too_large", "raster_not_georeferenced",
        "raster_rotated", "raster_outside_township"}
