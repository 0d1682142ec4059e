"""Raster tiles: colours at known places, nodata and outside transparent, legends."""

import numpy as np
import pytest

from gis.raster_tiles import EMPTY_PNG, legend, ramp_for, render_tile, tile_touches, value_range
from tests.raster_samples import CENTRE, lonlat_of, rgba, tile_pixel, write_raster

GREEN, BROWN = (0, 68, 27, 255), (140, 81, 10, 255)  # NDVI 0.9 and −0.2


def _ndvi(tmp_path, crs):
    """2 km square: west half NDVI 0.9, east half −0.2, the northern quarter nodata."""
    data = np.full((200, 200), -0.2, dtype="float32")
    data[:, :100] = 0.9
    data[:50, :] = -9999
    return str(write_raster(tmp_path / "ndvi.tif", data, crs=crs, nodata=-9999))


def _colour_at(uri, kind, crs, dx, dy, z=15, **kw):
    lon, lat = lonlat_of(crs, CENTRE, dx, dy)
    x, y, col, row = tile_pixel(lon, lat, z)
    png = render_tile(uri, kind, z, x, y, **kw)
    assert png is not None
    return tuple(int(v) for v in rgba(png)[row, col])


@pytest.mark.parametrize("crs", ["EPSG:32648", "EPSG:4545"])
def test_ndvi_tile_has_the_ramp_colours_where_the_values_are(tmp_path, crs):
    uri = _ndvi(tmp_path, crs)
    assert _colour_at(uri, "ndvi", crs, -500, -300) == GREEN
    assert _colour_at(uri, "ndvi", crs, 500, -300) == BROWN
    assert _colour_at(uri, "ndvi", crs, -500, 800)[3] == 0  # nodata (northern quarter)
    assert _colour_at(uri, "ndvi", crs, 1500, 0)[3] == 0  # east of the raster, same neighbourhood


def test_a_tile_partly_outside_is_transparent_there_and_opaque_inside(tmp_path):
    uri = _ndvi(tmp_path, "EPSG:32648")
    lon, lat = lonlat_of("EPSG:32648", CENTRE, 0, 0)
    x, y, _, _ = tile_pixel(lon, lat, 12)  # ~7.5 km a side: the raster is ~70 px of it
    img = rgba(render_tile(uri, "ndvi", 12, x, y))
    assert img.shape == (256, 256, 4)
    opaque = img[..., 3] == 255
    assert 0.02 < opaque.mean() < 0.2
    colours = {tuple(int(v) for v in p) for p in img[opaque]}
    assert colours == {GREEN, BROWN}
    assert set(np.unique(img[..., 3])) == {0, 255}


def test_a_tile_that_misses_the_raster_is_not_read(tmp_path):
    uri = _ndvi(tmp_path, "EPSG:32648")
    lon, lat = lonlat_of("EPSG:32648", CENTRE, 20_000, 0)
    x, y, _, _ = tile_pixel(lon, lat, 14)
    assert tile_touches(uri, 14, x, y) is False
    assert render_tile(uri, "ndvi", 14, x, y) is None
    empty = rgba(EMPTY_PNG)
    assert empty.shape == (256, 256, 4) and empty[..., 3].max() == 0
    assert len(EMPTY_PNG) < 400


def test_fractional_cover_is_yellow_to_green(tmp_path):
    data = np.zeros((100, 100), dtype="float32")
    data[:, 50:] = 0.5
    data[:, :50] = 1.0
    data[90:, :] = np.nan  # a float raster without a nodata value: NaN is no data
    uri = str(write_raster(tmp_path / "fvc.tif", data))
    assert _colour_at(uri, "fvc", "EPSG:32648", 250, 0) == (173, 221, 142, 255)  # 0.5
    assert _colour_at(uri, "fvc", "EPSG:32648", -250, 0) == (0, 104, 55, 255)  # 1.0
    assert _colour_at(uri, "fvc", "EPSG:32648", 0, -480)[3] == 0  # NaN


def test_dem_ramp_spans_the_rasters_own_range(tmp_path):
    data = np.full((100, 100), 1200, dtype="int16")
    data[:, :20] = 1000
    data[:, 80:] = 1400
    uri = str(write_raster(tmp_path / "dem.tif", data, crs="EPSG:4545", nodata=-32768))
    assert value_range(uri) == (1000.0, 1400.0)
    assert _colour_at(uri, "dem", "EPSG:4545", -450, 0) == (26, 150, 65, 255)  # lowest: #1a9641
    assert _colour_at(uri, "dem", "EPSG:4545", 0, 0) == (255, 255, 191, 255)  # middle: #ffffbf
    assert _colour_at(uri, "dem", "EPSG:4545", 450, 0) == (240, 240, 240, 255)  # highest
    # an explicit stretch moves the colours: 1200 is now the top
    assert _colour_at(uri, "dem", "EPSG:4545", 0, 0, stretch=(1000, 1200)) == (240, 240, 240, 255)


def test_values_beyond_the_ramp_take_its_end_colours():
    ramp = ramp_for("ndvi")
    assert ramp.colour(-1.0) == ramp.colour(-0.2) == BROWN[:3]
    assert ramp.colour(1.0) == ramp.colour(0.9) == GREEN[:3]
    mid = ramp.colour(0.375)  # halfway between two stops
    pale, light_green = (0xF6, 0xE8, 0xC3), (0xC7, 0xE9, 0xC0)
    assert mid == tuple(round((a + b) / 2) for a, b in zip(pale, light_green, strict=True))


def test_unknown_kind_and_missing_range_are_errors():
    with pytest.raises(ValueError, match="unknown raster kind"):
        ramp_for("lidar")
    with pytest.raises(ValueError, match="value range"):
        ramp_for("dem")


def test_legends_in_both_languages():
    zh, en = legend("ndvi", "zh"), legend("ndvi", "en")
    assert zh["title"] == "归一化植被指数 (NDVI)" and en["title"] == "Vegetation index (NDVI)"
    assert (zh["min"], zh["max"]) == (-0.2, 0.9)
    assert zh["stops"][0] == {"value": -0.2, "color": "#8c510a"}
    assert [la["text"] for la in en["labels"]] == [
        "−0.2 bare soil, water", "0.3 sparse vegetation", "0.9 dense vegetation"]
    assert zh["gradient"].startswith("linear-gradient(to right, #8c510a 0.0%")
    assert zh["gradient"].endswith("#00441b 100.0%)")
    fvc = legend("fvc", "zh")
    assert [la["text"] for la in fvc["labels"]] == ["0%", "50%", "100%"] and fvc["unit"] == "%"
    dem = legend("dem", "zh", (1032.4, 1388.9))
    assert [la["text"] for la in dem["labels"]] == ["1,032 米", "1,211 米", "1,389 米"]
    assert legend("dem", "en", (1032.4, 1388.9))["unit"] == "m"
    flat = legend("other", "en", (5.0, 5.0))  # a flat raster still has a legend
    assert flat["min"] == 5.0 and flat["max"] == 6.0
