"""Zonal statistics on small generated rasters whose answers are known by hand."""

from __future__ import annotations

import math
import tracemalloc

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from gis.area import M2_PER_MU
from gis.zonal import STATS, ring_zone, zonal_batches, zonal_stats

NODATA = -9999.0


def write(path, data, *, crs="EPSG:32648", origin=(500_000.0, 4_200_000.0), res=10.0, nodata=NODATA):
    """A one-band float32 GeoTIFF with its top-left corner at ``origin`` and square pixels."""
    data = np.asarray(data, dtype="float32")
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs=crs, nodata=nodata,
                       transform=Affine(res, 0, origin[0], 0, -res, origin[1])) as ds:
        ds.write(data, 1)
    return path


@pytest.fixture
def halves(tmp_path):
    """10 × 10 pixels of 10 m: the left half 1, the right half 0, the top two rows nodata."""
    a = np.zeros((10, 10))
    a[:, :5] = 1
    a[:2, :] = NODATA
    return write(tmp_path / "halves.tif", a)


def plots(*geoms, crs="EPSG:32648"):
    return gpd.GeoDataFrame({"name": [f"p{i}" for i in range(len(geoms))]}, geometry=list(geoms), crs=crs)


X0, Y0 = 500_000.0, 4_200_000.0


def test_half_over_one_half_over_zero_has_mean_one_half(halves):
    # 4 pixels wide across the 1|0 edge, rows 5-9: half of it over 1, half over 0
    row = zonal_stats(plots(box(X0 + 30, Y0 - 100, X0 + 70, Y0 - 50)), halves, stats=STATS, threshold=0.5)[0]
    assert row["mean"] == pytest.approx(0.5)
    assert row["median"] == pytest.approx(0.5)
    assert (row["min"], row["max"]) == (0.0, 1.0)
    assert row["stdev"] == pytest.approx(0.5)
    assert row["area_m2"] == pytest.approx(40 * 50)
    assert row["share_above"] == pytest.approx(0.5)


def test_partly_covered_pixels_count_by_their_fraction(halves):
    # 1.5 pixels over 1 and 0.5 pixel over 0 (a 20 m x 10 m plot offset by half a pixel)
    row = zonal_stats(plots(box(X0 + 35, Y0 - 60, X0 + 55, Y0 - 50)), halves, stats=["mean", "area_m2"])[0]
    assert row["mean"] == pytest.approx(1.5 / 2.0)
    assert row["area_m2"] == pytest.approx(200.0)


def test_plot_over_nodata_has_no_mean_not_zero(halves):
    row = zonal_stats(plots(box(X0, Y0 - 20, X0 + 100, Y0)), halves, stats=STATS, threshold=0.5)[0]
    for name in ("mean", "median", "min", "max", "stdev", "share_above"):
        assert row[name] is None, name
    assert row["area_m2"] == 0 and row["area_mu"] == 0 and row["pixels"] == 0


def test_nodata_is_left_out_of_a_plot_partly_over_it(halves):
    # rows 0-3 over the ones: two rows nodata, two rows 1 -> valid area is half the plot
    row = zonal_stats(plots(box(X0, Y0 - 40, X0 + 50, Y0)), halves, stats=["mean", "area_m2"])[0]
    assert row["mean"] == pytest.approx(1.0)
    assert row["area_m2"] == pytest.approx(50 * 20)


def test_plot_off_the_raster_has_no_statistics(halves):
    row = zonal_stats(plots(box(X0 - 500, Y0 - 500, X0 - 400, Y0 - 400)), halves)[0]
    assert row["mean"] is None and row["area_m2"] == 0


def test_area_in_mu(halves):
    # 15 x 10 m of valid pixels, 1 亩 = 10000/15 m²
    row = zonal_stats(plots(box(X0, Y0 - 100, X0 + 100, Y0 - 20)), halves, stats=["area_m2", "area_mu"])[0]
    assert row["area_m2"] == pytest.approx(100 * 80)
    assert row["area_mu"] == pytest.approx(100 * 80 / M2_PER_MU)
    assert row["area_mu"] == pytest.approx(12.0)


def test_threshold_share_is_weighted_by_coverage(tmp_path):
    # values 0.1 0.2 ... 1.0 along a row; a plot over the whole row, and one over 2.5 pixels
    path = write(tmp_path / "ramp.tif", [np.arange(1, 11) / 10])
    whole, part = box(X0, Y0 - 10, X0 + 100, Y0), box(X0 + 65, Y0 - 10, X0 + 90, Y0)
    rows = zonal_stats(plots(whole, part), path, stats=["share_above", "mean", "median", "stdev"],
                       threshold=0.65)
    assert rows[0]["share_above"] == pytest.approx(0.4)  # 0.7 0.8 0.9 1.0
    assert rows[0]["median"] == pytest.approx(0.55, rel=1e-6)
    assert rows[0]["stdev"] == pytest.approx(float(np.std(np.arange(1, 11) / 10)), rel=1e-6)
    # half of 0.7's pixel, all of 0.8's and 0.9's: everything covered is above 0.65
    assert rows[1]["share_above"] == pytest.approx(1.0)
    assert rows[1]["mean"] == pytest.approx((0.5 * 0.7 + 0.8 + 0.9) / 2.5, rel=1e-6)
    higher = zonal_stats(plots(part), path, stats=["share_above"], threshold=0.85)[0]
    assert higher["share_above"] == pytest.approx(1 / 2.5)


def test_raster_in_4545_against_plots_in_4326(tmp_path):
    """CGCS2000 Gauss-Krüger metres under lon/lat plots: reprojected to the raster, not resampled."""
    to_4545 = Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True)
    x, y = to_4545.transform(107.15, 38.2)
    x0, y0 = math.floor(x / 1000) * 1000, math.floor(y / 1000) * 1000 + 1000  # a whole-km corner
    a = np.zeros((100, 100))
    a[:, :50] = 1
    path = write(tmp_path / "gk.tif", a, crs="EPSG:4545", origin=(x0, y0))
    # a 400 m x 200 m plot across the 1|0 edge (x0 + 500 m), drawn in 4545 and given in lon/lat
    plot_gk = box(x0 + 300, y0 - 600, x0 + 700, y0 - 400)
    to_lonlat = Transformer.from_crs("EPSG:4545", "EPSG:4326", always_xy=True)
    plot_ll = shapely.transform(plot_gk.segmentize(10), lambda x, y: to_lonlat.transform(x, y),
                                interleaved=False)
    row = zonal_stats(plots(plot_ll, crs="EPSG:4326"), path, stats=["mean", "area_m2"])[0]
    assert row["mean"] == pytest.approx(0.5, abs=1e-3)
    assert row["area_m2"] == pytest.approx(400 * 200, rel=1e-3)


def test_geographic_raster_area_is_in_square_metres(tmp_path):
    path = write(tmp_path / "ll.tif", np.ones((100, 100)), crs="EPSG:4326", origin=(107.0, 38.3), res=0.001)
    plot = box(107.01, 38.25, 107.02, 38.26)
    from gis.area import geodesic_area_m2
    row = zonal_stats(plots(plot, crs="EPSG:4326"), path, stats=["area_m2", "mean"])[0]
    assert row["mean"] == pytest.approx(1.0)
    assert row["area_m2"] == pytest.approx(geodesic_area_m2(plot), rel=2e-3)


def test_ring_outside_a_plot_is_compared_with_the_plot(tmp_path):
    """Inside a ban 1, the 50 m around it 0: the feature and its ring are separate zones."""
    a = np.zeros((40, 40))
    a[10:30, 10:30] = 1
    path = write(tmp_path / "ban.tif", a)
    ban = box(X0 + 100, Y0 - 300, X0 + 300, Y0 - 100)
    rows = zonal_stats(plots(ban), path, stats=["mean", "area_m2"], ring_m=50)
    by_zone = {r["zone"]: r for r in rows}
    assert set(by_zone) == {"feature", "ring_50"}
    assert by_zone["feature"]["mean"] == pytest.approx(1.0)
    assert by_zone["ring_50"]["mean"] == pytest.approx(0.0, abs=1e-9)
    # 300² - 200² less the rounding of the corners (4 x (50² - π 50²/4))
    assert by_zone["ring_50"]["area_m2"] == pytest.approx(300**2 - 200**2 - 4 * 50**2 * (1 - math.pi / 4),
                                                         rel=5e-3)


def test_ring_is_drawn_in_metres_for_lonlat_features():
    ban = gpd.GeoSeries([box(107.1, 38.1, 107.11, 38.11)], crs="EPSG:4326")
    utm = ban.to_crs(ban.estimate_utm_crs())
    ring = ring_zone(ban, 500).to_crs(utm.crs)
    assert ring.area[0] == pytest.approx(utm.buffer(500, quad_segs=8).area[0] - utm.area[0], rel=1e-3)
    assert not ring[0].intersection(utm[0]).area > 1


def test_rows_keep_the_feature_ids_and_order(halves):
    frame = plots(box(X0, Y0 - 100, X0 + 20, Y0 - 80), None, box(X0 + 80, Y0 - 100, X0 + 100, Y0 - 80))
    frame.index = [17, 4, 99]
    rows = zonal_stats(frame, halves, stats=["mean"], batch=2)
    assert [(r["feature_id"], r["mean"]) for r in rows] == [(17, 1.0), (4, None), (99, 0.0)]


def test_batches_report_progress(halves):
    frame = plots(*[box(X0 + i, Y0 - 100, X0 + i + 10, Y0 - 90) for i in range(0, 50, 10)])
    seen = []
    batches = list(zonal_batches(frame, halves, stats=["mean"], batch=2,
                                 on_progress=lambda done, total: seen.append((done, total))))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert seen == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize("stats, threshold", [(["mean", "nope"], None), (["share_above"], None),
                                              (["share_above"], float("nan"))])
def test_bad_requests_are_refused(halves, stats, threshold):
    with pytest.raises(ValueError):
        zonal_stats(plots(box(X0, Y0 - 10, X0 + 10, Y0)), halves, stats=stats, threshold=threshold)


def test_the_raster_is_read_window_by_window(tmp_path):
    """A 4000 x 4000 raster (64 MB as float32) and small plots: far less than the raster in memory."""
    path = tmp_path / "big.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4000, height=4000, count=1, dtype="float32",
                       crs="EPSG:32648", tiled=True, blockxsize=256, blockysize=256, nodata=NODATA,
                       transform=Affine(10, 0, X0, 0, -10, Y0)) as ds:
        for i in range(0, 4000, 500):
            ds.write(np.full((500, 4000), i / 4000, dtype="float32"), 1,
                     window=rasterio.windows.Window(0, i, 4000, 500))
    frame = plots(*[box(X0 + 1000 * k, Y0 - 1000 * k - 200, X0 + 1000 * k + 200, Y0 - 1000 * k)
                    for k in range(40)])
    tracemalloc.start()
    rows = zonal_stats(frame, path, stats=["mean"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(rows) == 40 and rows[0]["mean"] == pytest.approx(0.0)
    assert peak < 16 * 1024 * 1024
