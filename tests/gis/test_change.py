"""Change patches from two generated rasters with known answers."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from gis.area import M2_PER_MU
from gis.change import detect_changes
from gis.errors import InputError

#: UTM 48N near the township: a 30 m pixel is 900 m² on the grid (and within 0.1 % on the ground).
UTM = "EPSG:32648"
ORIGIN = (600_000, 4_200_000)


def write(path, data, *, crs=UTM, origin=ORIGIN, res=30.0, nodata=None):
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
                   crs=crs, transform=from_origin(*origin, res, res), nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


@pytest.fixture
def pair(tmp_path):
    """A 100 × 100 NDVI of 0.6 and the same after: a 10 × 10 loss, a 2 × 2 loss, a 12 × 5 gain."""
    before = np.full((100, 100), 0.6, "float32")
    after = before.copy()
    after[10:20, 10:20] = 0.3      # 100 pixels, 90 000 m², 135 亩, change -0.3
    after[50:52, 50:52] = 0.1      # 4 pixels, 3 600 m², 5.4 亩
    after[70:82, 30:35] = 0.9      # 60 pixels, 54 000 m², 81 亩, change +0.3
    after[0:3, 90:100] = 0.55      # below the threshold
    return write(tmp_path / "before.tif", before), write(tmp_path / "after.tif", after), tmp_path


def test_a_block_of_loss_has_its_area_and_mean(pair):
    before, after, _ = pair
    patches = detect_changes(before, after, threshold=0.15, direction="loss", min_mu=0)
    assert [p.kind for p in patches] == ["loss", "loss"]
    big, small = patches
    assert big.pixels == 100
    assert big.area_m2 == pytest.approx(90_000, rel=2e-3)
    assert big.area_mu == pytest.approx(135, rel=2e-3)
    assert big.mean_change == pytest.approx(-0.3, abs=1e-6)
    assert small.pixels == 4 and small.area_mu == pytest.approx(5.4, rel=2e-3)
    west, south, east, north = big.geometry.bounds
    assert 105 < west < east < 108 and 37 < south < north < 39  # lon/lat of the township


def test_the_minimum_size_drops_small_patches(pair):
    before, after, _ = pair
    patches = detect_changes(before, after, threshold=0.15, direction="both", min_mu=10)
    assert sorted((p.kind, p.pixels) for p in patches) == [("gain", 60), ("loss", 100)]
    gain = next(p for p in patches if p.kind == "gain")
    assert gain.area_mu == pytest.approx(81, rel=2e-3) and gain.mean_change == pytest.approx(0.3, abs=1e-6)


def test_direction_gain_only(pair):
    before, after, _ = pair
    assert [p.kind for p in detect_changes(before, after, threshold=0.15, direction="gain")] == ["gain"]


def test_a_patch_across_strips_is_one_patch(pair):
    before, after, _ = pair
    whole = detect_changes(before, after, threshold=0.15, min_mu=0, strip_rows=1000)
    strips = detect_changes(before, after, threshold=0.15, min_mu=0, strip_rows=3)  # every block cut
    assert len(strips) == len(whole) == 3
    for a, b in zip(whole, strips, strict=True):
        assert (a.kind, a.pixels) == (b.kind, b.pixels)
        assert a.area_m2 == pytest.approx(b.area_m2, rel=1e-9)
        assert a.mean_change == pytest.approx(b.mean_change, abs=1e-9)
        assert a.geometry.geom_type == "Polygon" and b.geometry.is_valid


def test_a_u_shape_joined_below_the_seam_is_one_patch(tmp_path):
    before = np.zeros((20, 20), "float32")
    after = before.copy()
    after[2:12, 2:4] = -1   # left arm
    after[2:12, 8:10] = -1  # right arm
    after[10:12, 2:10] = -1  # the bottom joins them, in a later strip
    b, a = write(tmp_path / "b.tif", before), write(tmp_path / "a.tif", after)
    [patch] = detect_changes(b, a, threshold=0.5, strip_rows=4)
    assert patch.pixels == 20 + 20 + 16 - 8  # the bottom overlaps each arm by 2 × 2
    assert patch.area_m2 == pytest.approx(48 * 900, rel=2e-3)


def test_diagonal_pixels_are_separate_patches(tmp_path):
    before = np.zeros((10, 10), "float32")
    after = before.copy()
    after[2, 2] = after[3, 3] = 1
    b, a = write(tmp_path / "b.tif", before), write(tmp_path / "a.tif", after)
    assert [p.pixels for p in detect_changes(b, a, threshold=0.5)] == [1, 1]


def test_nodata_is_ignored(tmp_path):
    before = np.full((30, 30), 0.6, "float32")
    after = before.copy()
    after[0:10, 0:10] = -9999  # no data after: not a loss
    before[20:30, 20:30] = -9999  # no data before: not a gain
    after[20:30, 20:30] = 0.9
    after[12:16, 12:16] = 0.1  # a real loss of 16 pixels
    b = write(tmp_path / "b.tif", before, nodata=-9999)
    a = write(tmp_path / "a.tif", after, nodata=-9999)
    patches = detect_changes(b, a, threshold=0.15)
    assert [(p.kind, p.pixels) for p in patches] == [("loss", 16)]
    assert patches[0].mean_change == pytest.approx(-0.5, abs=1e-6)


def test_nan_is_no_data(tmp_path):
    before = np.full((10, 10), 0.6, "float32")
    after = before.copy()
    after[:5] = np.nan
    b, a = write(tmp_path / "b.tif", before), write(tmp_path / "a.tif", after)
    assert detect_changes(b, a, threshold=0.1) == []


def test_a_second_raster_in_another_crs_is_aligned(tmp_path):
    """The second raster in CGCS2000 / 3-degree GK CM 108E, 10 m pixels: read on the first's grid."""
    from pyproj import Transformer

    before = np.full((60, 60), 0.6, "float32")
    b = write(tmp_path / "b.tif", before)
    # the same place in EPSG:4545 at 10 m pixels
    to_gk = Transformer.from_crs(UTM, "EPSG:4545", always_xy=True)
    x0, y0 = to_gk.transform(ORIGIN[0] - 300, ORIGIN[1] + 300)
    after = np.full((240, 240), 0.6, "float32")
    after[60:150, 60:150] = 0.2  # 90 × 90 pixels of 10 m = 810 000 m²
    a = write(tmp_path / "a.tif", after, crs="EPSG:4545", origin=(x0, y0), res=10.0)
    [patch] = detect_changes(b, a, threshold=0.15, min_mu=0)
    assert patch.kind == "loss"
    # cut to the first raster's 30 m cells, tilted by the meridian convergence: within a ring of cells
    assert 810_000 * 0.94 < patch.area_m2 < 810_000 * 1.06
    assert patch.mean_change == pytest.approx(-0.4, abs=0.03)
    assert patch.area_m2 / M2_PER_MU == pytest.approx(patch.area_mu)


def test_rasters_that_do_not_overlap_are_refused(tmp_path):
    data = np.zeros((10, 10), "float32")
    b = write(tmp_path / "b.tif", data)
    a = write(tmp_path / "a.tif", data, origin=(700_000, 4_200_000))
    with pytest.raises(InputError) as err:
        detect_changes(b, a, threshold=0.1)
    assert err.value.code == "rasters_disjoint"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"threshold": 0}, "threshold_invalid"),
    ({"threshold": float("nan")}, "threshold_invalid"),
    ({"threshold": 0.1, "direction": "sideways"}, "direction_invalid"),
    ({"threshold": 0.1, "min_mu": -1}, "min_mu_invalid"),
])
def test_bad_parameters_are_refused(pair, kwargs, code):
    before, after, _ = pair
    with pytest.raises(InputError) as err:
        detect_changes(before, after, **kwargs)
    assert err.value.code == code


def test_progress_reaches_one(pair):
    before, after, _ = pair
    seen = []
    detect_changes(before, after, threshold=0.15, strip_rows=30, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 4
