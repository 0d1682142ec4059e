"""Every conflict check finds exactly the hand-made overlaps, with their ellipsoidal areas."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import shape

from layers.conflicts import CHECKS, UnknownCheckError, check_features, run_check
from layers.errors import UnknownVillageError
from layers.store.database import engine_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import BANS, LEASES, ON, PLOTS, PROJECTS, V1, VILLAGES, ZONES, mu

township = cases.township


def geom(code):
    for table in (LEASES, ZONES, BANS, PLOTS, PROJECTS):
        if code in table:
            return table[code][-1]
    return VILLAGES[code][1]


EXPECTED = {
    # check: {(a code, b code): the overlapping piece}
    "leases_on_subsidence": {("L1", "Z1"): geom("L1") & geom("Z1"), ("L2", "Z1"): geom("L2") & geom("Z1")},
    "leases_in_grazing_bans": {("L5", "B1"): geom("L5")},  # B2 no longer in force; L3 expired
    "leases_overlapping": {("L1", "L2"): geom("L1") & geom("L2")},  # L3 overlaps L1 but is expired
    "caragana_in_leases": {("C1", "L2"): geom("C1"), ("C2", "L5"): geom("C2") & geom("L5")},
    "eco_projects_in_leases": {("E1", "L1"): geom("E1"), ("E1", "L2"): geom("E1") & geom("L2")},  # L3 expired
    "outside_village": {("L4", V1): geom("L4") - geom(V1)},
}


@pytest.fixture
def conn(township):
    with engine_for(township.render_as_string(hide_password=False)).connect() as c:
        yield c


def test_every_check_is_tested():
    assert set(EXPECTED) == set(CHECKS)


@pytest.mark.parametrize("check", sorted(EXPECTED))
def test_check_finds_the_known_overlaps(conn, check):
    features = check_features(conn, check, on=ON)
    found = {(f["properties"]["a_code"], f["properties"]["b_code"]): f for f in features}
    assert set(found) == set(EXPECTED[check])
    for pair, piece in EXPECTED[check].items():
        p = found[pair]["properties"]
        assert p["overlap_mu"] == pytest.approx(mu(piece), rel=1e-4)
        assert p["overlap_m2"] == pytest.approx(mu(piece) * 10_000 / 15, rel=1e-4)
        assert shape(found[pair]["geometry"]).symmetric_difference(piece).area < 1e-12
        assert isinstance(p["a_id"], int) and isinstance(p["b_id"], int)


def test_summary_groups_by_regime_and_links_to_maps(conn):
    fc = json.loads(run_check(conn, "leases_in_grazing_bans", on=ON, map_base="http://x"))
    assert fc["summary"]["count"] == 1
    assert fc["summary"]["by"]["groups"]["full_ban"]["area_mu"] == pytest.approx(mu(geom("L5")), rel=1e-4)
    assert {link["layer"] for link in fc["links"]} == {"land_leases", "grazing_bans"}
    assert all(link["href"].startswith("http://x/maps/") and "?ids=" in link["href"] for link in fc["links"])


def test_bans_in_force_depend_on_the_day(conn):
    """In 2021 the seasonal-rest area B2 was still in force over L4's part in 八一村."""
    from datetime import date

    pairs = {(f["properties"]["a_code"], f["properties"]["b_code"])
             for f in check_features(conn, "leases_in_grazing_bans", on=date(2021, 6, 1))}
    assert ("L4", "B2") in pairs and ("L5", "B2") in pairs


def test_village_filter_and_unknowns(conn):
    assert check_features(conn, "leases_overlapping", on=ON, village=V1)
    with pytest.raises(UnknownCheckError):
        check_features(conn, "leases_on_mars", on=ON)
    with pytest.raises(UnknownVillageError):
        check_features(conn, "leases_overlapping", on=ON, village="000")
