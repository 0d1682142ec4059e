"""Queries by size, place and attributes answer what the hand-made township says they must."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from shapely.geometry import Point, box, mapping

from layers.errors import UnknownLayerError, UnknownVillageError
from layers.query import (
    InvalidAreaError,
    InvalidBboxError,
    InvalidFieldValueError,
    InvalidGeometryError,
    InvalidPlaceError,
    InvalidSortError,
    QuerySpec,
    UnknownPropertyError,
    run_query,
)
from layers.store.database import engine_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, V1, VILLAGES, mu

township = cases.township


@pytest.fixture
def conn(township):
    with engine_for(township.render_as_string(hide_password=False)).connect() as c:
        yield c


def ask(conn, **spec) -> tuple[dict, dict[str, dict]]:
    """The summary and the features by code."""
    result = run_query(conn, QuerySpec(**spec))
    fc = json.loads('{"features": [' + ",".join(r.features for r in result.layers if r.features) + "]}")
    return result.summary(), {f["properties"]["code"]: f["properties"] for f in fc["features"]}


def lease_mu(code: str) -> float:
    return mu(LEASES[code][-1])


@pytest.mark.parametrize("unit, factor", [("mu", 1.0), ("ha", 1 / 15), ("m2", 10_000 / 15)])
def test_size_range_in_every_unit(conn, unit, factor):
    """The same range in 亩, ha or m² picks the same leases (those between 3000 and 6000 亩)."""
    expected = {c for c in LEASES if 3000 <= lease_mu(c) <= 6000}
    assert expected == {"L1", "L2", "L5"}
    summary, found = ask(conn, layers=["land_leases"], area={"min": 3000 * factor, "max": 6000 * factor,
                                                               "unit": unit})
    assert set(found) == expected
    s = summary["layers"]["land_leases"]
    assert s["count"] == 3
    total = sum(lease_mu(c) for c in expected)
    assert s["area_mu"] == pytest.approx(total, rel=1e-4)
    assert s["area_wan_mu"] == pytest.approx(total / 10_000, rel=1e-4)
    assert s["area_ha"] == pytest.approx(total / 15, rel=1e-4)
    assert "area_inside_mu" not in found["L1"]


def test_village_place_clips_at_the_boundary(conn):
    """L4 crosses from 特布德嘎查 into 八一村: only its part inside counts."""
    summary, found = ask(conn, layers=["land_leases"], place={"villages": ["特布德嘎查"]})
    assert set(found) == {"L1", "L2", "L3", "L4"}
    inside = mu(LEASES["L4"][-1].intersection(VILLAGES[V1][1]))
    assert found["L4"]["area_inside_mu"] == pytest.approx(inside, rel=1e-4)
    assert found["L4"]["area_mu"] == pytest.approx(lease_mu("L4"), rel=1e-4)
    assert found["L1"]["area_inside_mu"] == pytest.approx(lease_mu("L1"), rel=1e-4)
    expected = inside + sum(lease_mu(c) for c in ("L1", "L2", "L3"))
    assert summary["layers"]["land_leases"]["area_mu"] == pytest.approx(expected, rel=1e-4)
    assert summary["layers"]["land_leases"]["clipped"] is True


def test_village_by_code_is_the_same_as_by_name(conn):
    assert ask(conn, layers=["land_leases"], place={"villages": [V1]})[0] == \
        ask(conn, layers=["land_leases"], place={"villages": ["特布德嘎查"]})[0]


@pytest.mark.parametrize("form", ["geometry", "bbox"])
def test_polygon_and_bbox_clip(conn, form):
    area = box(107.0, 38.0, 107.025, 38.025)
    place = {"geometry": mapping(area)} if form == "geometry" else {"bbox": list(area.bounds)}
    summary, found = ask(conn, layers=["land_leases"], place=place)
    assert set(found) == {"L1", "L2", "L3"}
    for code in found:
        expected = mu(LEASES[code][-1].intersection(area))
        assert found[code]["area_inside_mu"] == pytest.approx(expected, rel=1e-4)
    assert found["L3"]["area_inside_mu"] == pytest.approx(found["L3"]["area_mu"], rel=1e-9)  # wholly inside
    total = sum(mu(LEASES[c][-1].intersection(area)) for c in found)
    assert summary["total"]["area_mu"] == pytest.approx(total, rel=1e-4)


def test_a_place_only_touching_a_feature_does_not_find_it(conn):
    """A feature sharing only an edge with the place has nothing inside it."""
    _, found = ask(conn, layers=["land_leases"], place={"bbox": [107.03, 38.0, 107.05, 38.02]})
    assert "L1" not in found


def test_buffer_in_metres_around_a_point(conn):
    """A 100 m buffer around a point inside L5 holds π·100² m² of it."""
    _, found = ask(conn, layers=["land_leases"],
                   place={"geometry": mapping(Point(107.16, 38.06))}, buffer_m=100)
    assert set(found) == {"L5"}
    assert found["L5"]["area_inside_mu"] * 10_000 / 15 == pytest.approx(3.14159 * 100**2, rel=0.01)


def test_buffer_widens_a_polygon(conn):
    """L2 starts 0.01° (≈ 880 m) east of the place: a 1 km buffer reaches it, 500 m does not."""
    place = {"geometry": mapping(box(107.0, 38.03, 107.01, 38.04))}
    assert "L2" not in ask(conn, layers=["land_leases"], place=place, buffer_m=500)[1]
    assert "L2" in ask(conn, layers=["land_leases"], place=place, buffer_m=1000)[1]


def test_attribute_filters_and_sorting(conn):
    _, found = ask(conn, layers=["land_leases"], where={"purpose": "solar"})
    assert set(found) == {"L1"}
    _, found = ask(conn, layers=["land_leases"], where={"status": ["active"], "village_code": V1})
    assert set(found) == {"L1", "L2", "L4"}
    summary, _ = ask(conn, layers=["land_leases"], where={"end_date": "2019-12-31"})
    assert summary["total"]["count"] == 1
    result = run_query(conn, QuerySpec(layers=["land_leases"], sort="-area_mu", limit=2))
    r = result.layers[0]
    assert (r.count, r.returned) == (5, 2)
    largest = sorted(LEASES, key=lease_mu, reverse=True)[:2]
    codes = dict(conn.execute(sa.text("SELECT id, code FROM land_leases")).all())
    assert [codes[i] for i in r.ids] == largest


def test_several_layers_in_one_answer(conn):
    summary, found = ask(conn, layers=["land_leases", "caragana_plots"], place={"villages": [V1]})
    assert {"C1", "C3", "L1"} <= set(found)
    assert summary["total"]["count"] == sum(s["count"] for s in summary["layers"].values())


@pytest.mark.parametrize("spec, error", [
    ({"layers": ["land_leases"], "area": {"min": -5}}, InvalidAreaError),
    ({"layers": ["land_leases"], "area": {"min": 10, "max": 5}}, InvalidAreaError),
    ({"layers": ["roads"]}, UnknownLayerError),
    ({"layers": ["land_leases"], "place": {"villages": ["月球村"]}}, UnknownVillageError),
    ({"layers": ["land_leases"], "place": {"geometry": {"type": "Polygon", "coordinates": [
        [[107, 38], [107.1, 38.1], [107.1, 38], [107, 38.1], [107, 38]]]}}}, InvalidGeometryError),
    ({"layers": ["land_leases"], "place": {"geometry": {"type": "Polygon", "coordinates": [
        [[500000, 4200000], [510000, 4200000], [510000, 4210000], [500000, 4200000]]]}}},
     InvalidGeometryError),
    ({"layers": ["land_leases"], "place": {"geometry": {"type": "Nonsense"}}}, InvalidGeometryError),
    ({"layers": ["land_leases"], "place": {"geometry": {"type": "LineString",
                                                        "coordinates": [[107, 38], [107.1, 38]]}}},
     InvalidPlaceError),
    ({"layers": ["land_leases"], "place": {"bbox": [107.1, 38, 107.0, 38.1]}}, InvalidBboxError),
    ({"layers": ["land_leases"], "place": {"bbox": [107, 38], "villages": [V1]}}, InvalidPlaceError),
    ({"layers": ["land_leases"], "where": {"colour": "red"}}, UnknownPropertyError),
    ({"layers": ["land_leases"], "where": {"purpose": "casino"}}, InvalidFieldValueError),
    ({"layers": ["land_leases"], "where": {"end_date": "someday"}}, InvalidFieldValueError),
    ({"layers": ["land_leases"], "sort": "area_inside_mu"}, InvalidSortError),
    ({"layers": ["land_leases"], "sort": "-colour"}, UnknownPropertyError),
])
def test_bad_input_is_a_domain_error(conn, spec, error):
    with pytest.raises(error) as info:
        run_query(conn, QuerySpec(**spec))
    assert 400 <= info.value.status < 500
