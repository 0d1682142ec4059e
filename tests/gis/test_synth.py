import numpy as np
import pyproj
import pytest
import shapely
from shapely import LineString, MultiPolygon, Polygon

from gis import synth

GEOD = pyproj.Geod(ellps="GRS80")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def geodesic_area(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def wkb(geoms) -> list[bytes]:
    return [shapely.to_wkb(g) for g in geoms]


@pytest.fixture(scope="module")
def outline() -> Polygon:
    return synth.township_outline(rng(1))


@pytest.fixture(scope="module")
def villages(outline) -> list[Polygon]:
    return synth.partition(outline, 12, rng(2))


@pytest.fixture(scope="module")
def fabric(villages) -> np.ndarray:
    return synth.parcel_fabric(villages[3], 20_000, rng(4))


def no_two_intersect(geoms) -> bool:
    geoms = np.asarray(geoms, dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    return bool(np.all(left == right))


# --- projection helpers ---------------------------------------------------------------------


def test_to_metres_and_back_round_trips():
    point = shapely.Point(107.15, 38.2)
    metric = synth.to_metres(point)
    assert 400_000 < metric.x < 500_000
    assert 4_200_000 < metric.y < 4_250_000
    back = synth.to_degrees(metric)
    assert back.distance(point) < 1e-9


def test_to_metres_is_vectorised_and_accepts_empty_arrays():
    points = shapely.points([[107.0, 38.0], [107.2, 38.3]])
    assert synth.to_metres(points).shape == (2,)
    assert synth.to_degrees(np.empty(0, dtype=object)).shape == (0,)


# --- township outline -----------------------------------------------------------------------


def test_outline_is_deterministic():
    assert synth.township_outline(rng(5)).wkb == synth.township_outline(rng(5)).wkb
    assert synth.township_outline(rng(5)).wkb != synth.township_outline(rng(6)).wkb


@pytest.mark.parametrize("seed", range(20))
def test_outline_inside_region_with_plausible_area(seed):
    shape = synth.township_outline(rng(seed))
    assert isinstance(shape, Polygon)
    assert shapely.is_valid(shape)
    assert not shape.has_z
    xmin, ymin, xmax, ymax = shape.bounds
    bx0, by0, bx1, by1 = synth.REGION_BBOX
    assert bx0 < xmin and xmax < bx1 and by0 < ymin and ymax < by1
    assert 1.8e9 <= geodesic_area(shape) <= 2.8e9
    centre = shape.centroid
    assert abs(centre.x - 107.15) < 0.1 and abs(centre.y - 38.2) < 0.1


def test_outline_is_irregular(outline):
    assert 150 <= len(outline.exterior.coords) <= 260
    # neither a circle nor a box: clearly less than its convex hull
    assert outline.area / outline.convex_hull.area < 0.97


# --- partition ------------------------------------------------------------------------------


def test_partition_gives_n_valid_single_polygons(villages):
    assert len(villages) == 12
    assert all(isinstance(v, Polygon) for v in villages)
    assert all(shapely.is_valid(villages))


def test_partition_covers_exactly(outline, villages):
    # compared in lon/lat: the pieces' outer edges are the outline's own, straight in degrees
    union = shapely.union_all(villages)
    assert shapely.symmetric_difference(union, outline).area < 1e-12 * outline.area
    assert sum(v.area for v in villages) == pytest.approx(outline.area, rel=1e-12)


def test_partition_pieces_do_not_overlap(villages):
    pieces = np.array(villages, dtype=object)
    left, right = shapely.STRtree(pieces).query(pieces, predicate="intersects")
    pairs = left < right
    assert pairs.any()  # neighbours share borders
    overlap = shapely.area(shapely.intersection(pieces[left[pairs]], pieces[right[pairs]]))
    assert overlap.max() < 1e-12 * min(v.area for v in villages)


def test_partition_ordered_north_to_south(villages):
    latitudes = [v.centroid.y for v in villages]
    assert latitudes == sorted(latitudes, reverse=True)


def test_partition_pieces_are_not_slivers(outline, villages):
    shares = np.array([v.area for v in villages]) / outline.area
    assert shares.min() > 0.2 / 12
    assert shares.max() < 4.0 / 12


def test_partition_is_deterministic(outline, villages):
    assert wkb(synth.partition(outline, 12, rng(2))) == wkb(villages)
    assert wkb(synth.partition(outline, 12, rng(3))) != wkb(villages)


def test_partition_of_one_and_of_a_village(villages):
    assert synth.partition(villages[0], 1, rng(0)) == [villages[0]]
    parts = synth.partition(villages[0], 5, rng(0), grain=1000)
    assert len(parts) == 5
    assert all(isinstance(p, Polygon) and p.is_valid for p in parts)
    assert sum(p.area for p in parts) == pytest.approx(villages[0].area, rel=1e-9)


@pytest.mark.parametrize("n, grain", [(0, 4000), (500, 4000)])
def test_partition_rejects_bad_counts(outline, n, grain):
    with pytest.raises(ValueError):
        synth.partition(outline, n, rng(0), grain=grain)


# --- blobs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zones(outline):
    avoid = shapely.Point(107.15, 38.2).buffer(0.05)
    placed = synth.blobs(outline, 25, rng(3), min_area_m2=1e6, max_area_m2=3e7, avoid=avoid)
    return placed, avoid


def test_blobs_inside_apart_and_sized(outline, zones):
    placed, avoid = zones
    assert len(placed) == 25
    assert all(isinstance(b, Polygon) and b.is_valid for b in placed)
    assert all(outline.contains(b) for b in placed)
    assert not any(avoid.intersects(b) for b in placed)
    assert no_two_intersect(placed)
    areas = [geodesic_area(b) for b in placed]
    assert min(areas) >= 1e6 and max(areas) <= 3e7


def test_blobs_in_a_multipolygon(villages):
    container = MultiPolygon([villages[0], villages[-1]])
    placed = synth.blobs(container, 10, rng(8), min_area_m2=2e5, max_area_m2=2e6)
    assert len(placed) == 10
    assert all(container.contains(b) for b in placed)


def test_blobs_are_deterministic(outline, zones):
    placed, avoid = zones
    again = synth.blobs(outline, 25, rng(3), min_area_m2=1e6, max_area_m2=3e7, avoid=avoid)
    other = synth.blobs(outline, 25, rng(4), min_area_m2=1e6, max_area_m2=3e7, avoid=avoid)
    assert wkb(again) == wkb(placed)
    assert wkb(other) != wkb(placed)


def test_blobs_give_up_quietly_when_they_cannot_fit(villages):
    container = villages[0]
    too_big = 2 * geodesic_area(container)
    assert synth.blobs(container, 3, rng(0), min_area_m2=too_big, max_area_m2=too_big) == []
    crowded = synth.blobs(container, 500, rng(0), min_area_m2=2e7, max_area_m2=2e7)
    assert 0 < len(crowded) < 500
    assert no_two_intersect(crowded)


# --- parcel fabric --------------------------------------------------------------------------


def test_fabric_count_and_types(fabric):
    assert isinstance(fabric, np.ndarray)
    assert 18_000 <= len(fabric) <= 22_000
    types = shapely.get_type_id(fabric)
    assert np.all(types == shapely.GeometryType.POLYGON)
    assert shapely.is_valid(fabric).all()
    assert not shapely.has_z(fabric).any()


def test_fabric_parcels_inside_container_and_apart(villages, fabric):
    assert shapely.within(fabric, villages[3]).all()
    assert no_two_intersect(fabric)


def test_fabric_fills_container(villages, fabric):
    # 4 m gaps around ~100 m parcels leave roughly 15 % of the ground between them
    share = shapely.area(fabric).sum() / villages[3].area
    assert 0.75 < share < 0.95


def test_fabric_is_deterministic(villages, fabric):
    again = synth.parcel_fabric(villages[3], 20_000, rng(4))
    assert np.array_equal(shapely.to_wkb(again), shapely.to_wkb(fabric))
    other = synth.parcel_fabric(villages[3], 20_000, rng(5))
    assert not np.array_equal(shapely.to_wkb(other[:100]), shapely.to_wkb(fabric[:100]))


@pytest.mark.parametrize("tile_side, halo", [(25, 3.0), (25, 0.3)])
def test_fabric_tiles_do_not_overlap(monkeypatch, villages, tile_side, halo):
    # small tiles force the tiled path; a tiny halo forces the widen-and-retry path
    monkeypatch.setattr(synth, "_TILE_SIDE", tile_side)
    monkeypatch.setattr(synth, "_HALO", halo)
    container = MultiPolygon([villages[0], villages[1]])
    parcels = synth.parcel_fabric(container, 8_000, rng(6))
    assert 7_200 <= len(parcels) <= 8_800
    assert shapely.is_valid(parcels).all()
    assert shapely.within(parcels, container).all()
    assert no_two_intersect(parcels)


def test_fabric_rejects_a_gap_wider_than_parcels(villages):
    with pytest.raises(ValueError):
        synth.parcel_fabric(villages[0], 1_000_000, rng(0), gap_m=20.0)


# --- strips, rectangles, points -------------------------------------------------------------


def test_strip_has_the_width_asked_for():
    line = LineString([(106.9, 38.0), (107.1, 38.1), (107.4, 38.4)])
    corridor = synth.strip(line, 60.0)
    assert isinstance(corridor, Polygon) and corridor.is_valid
    assert corridor.buffer(1e-9).covers(line)  # flat ends: the end points are on the edge
    length = GEOD.geometry_length(line)
    assert geodesic_area(corridor) / length == pytest.approx(60.0, rel=2e-3)


def test_rectangle_size_and_rotation():
    flat = synth.rectangle((107.3, 38.1), 1200.0, 400.0)
    assert isinstance(flat, Polygon) and flat.is_valid
    assert geodesic_area(flat) == pytest.approx(480_000, rel=1e-5)
    assert flat.centroid.distance(shapely.Point(107.3, 38.1)) < 1e-6
    xmin, ymin, xmax, ymax = flat.bounds
    turned = synth.rectangle((107.3, 38.1), 1200.0, 400.0, angle_deg=90)
    txmin, tymin, txmax, tymax = turned.bounds
    assert (xmax - xmin) > (txmax - txmin)
    assert (tymax - tymin) > (ymax - ymin)
    assert geodesic_area(turned) == pytest.approx(480_000, rel=1e-5)


def test_random_points_inside_and_deterministic(villages):
    points = synth.random_points(villages[2], 2_000, rng(9))
    assert len(points) == 2_000
    assert shapely.contains(villages[2], points).all()
    again = synth.random_points(villages[2], 2_000, rng(9))
    assert wkb(again) == wkb(points)
    mean = shapely.get_coordinates(points).mean(axis=0)
    centroid = villages[2].centroid
    assert abs(mean[0] - centroid.x) < 0.01 and abs(mean[1] - centroid.y) < 0.01
