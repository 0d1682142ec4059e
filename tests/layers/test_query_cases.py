"""A hand-made township of rectangles whose areas and overlaps are known (pyproj.Geod, GRS80).

Other test modules of the query area import :func:`township` and the shapes from here.
Two villages side by side; leases, a subsidence zone, grazing bans and caragana plots placed
so that every query form and every conflict check has a known answer on ``ON``.
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from pyproj import Geod
from shapely.geometry import box

from layers.store.database import engine_for
from layers.store.migrate import upgrade

GEOD = Geod(ellps="GRS80")
M2_PER_MU = 10_000 / 15
ON = date(2026, 11, 1)

V1, V2 = "150623999001", "150623999002"
VILLAGES = {V1: ("特布德嘎查", box(107.00, 38.00, 107.10, 38.10)),
            V2: ("八一村", box(107.10, 38.00, 107.20, 38.10))}
LEASES = {
    "L1": (V1, "京能光伏发电有限公司", "solar", "active", "2040-12-31", box(107.01, 38.01, 107.03, 38.03)),
    "L2": (V1, "国电双维铁路公司", "railway", "active", "2040-12-31", box(107.02, 38.02, 107.04, 38.04)),
    "L3": (V1, "巴图", "grazing", "expired", "2019-12-31", box(107.01, 38.01, 107.02, 38.02)),
    "L4": (V1, "鹰骏三号煤矿", "mining", "active", "2035-06-30", box(107.09, 38.05, 107.11, 38.06)),
    "L5": (V2, "海禾乡村产业发展公司", "farming", "active", "2026-12-15", box(107.15, 38.05, 107.17, 38.07)),
}
ZONES = {"Z1": (V1, "severe", "relocating", 10, 4, 120.0, box(107.025, 38.00, 107.05, 38.025))}
BANS = {"B1": (V2, "full_ban", "2020-01-01", "2030-12-31", box(107.14, 38.04, 107.20, 38.10)),
        "B2": (V2, "seasonal_rest", "2018-01-01", "2021-12-31", box(107.10, 38.00, 107.20, 38.10))}
PLOTS = {"C1": (V1, 2019, 0.8, box(107.03, 38.03, 107.035, 38.035)),
         "C2": (V2, 2020, 0.6, box(107.16, 38.06, 107.18, 38.08)),
         "C3": (V1, 2020, None, box(107.05, 38.05, 107.06, 38.06))}
#: a grassland project over solar lease L1, partly over railway L2 and over the expired lease L3
PROJECTS = {"E1": (V1, "grassland_restoration", box(107.015, 38.015, 107.025, 38.025))}


def mu(geom) -> float:
    """Ellipsoidal area of a lon/lat geometry in 亩 (the reference, independent of PostGIS)."""
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / M2_PER_MU


def _insert(conn, table: str, row: dict, geom) -> None:
    cols = ", ".join(row)
    vals = ", ".join(f":{k}" for k in row)
    conn.execute(sa.text(f"INSERT INTO {table} ({cols}, geom) VALUES ({vals}, "
                         f"ST_Multi(ST_GeomFromText(:wkt, 4326)))"), {**row, "wkt": geom.wkt})


def build(url) -> None:
    """Migrate the database at ``url`` and write the hand-made township into it."""
    upgrade(url)
    with engine_for(url.render_as_string(hide_password=False)).begin() as conn:
        for code, (name, g) in VILLAGES.items():
            _insert(conn, "villages", {"code": code, "name": name, "kind": "gacha"}, g)
        for code, (v, lessee, purpose, status, end, g) in LEASES.items():
            _insert(conn, "land_leases", {"code": code, "village_code": v, "lessee": lessee,
                                          "purpose": purpose, "kind": "lease", "status": status,
                                          "start_date": date(2015, 1, 1), "end_date": date.fromisoformat(end),
                                          "annual_rent_yuan": 1000.0}, g)
        for code, (v, sev, status, hh, rel, comp, g) in ZONES.items():
            _insert(conn, "subsidence_zones", {"code": code, "village_code": v, "severity": sev,
                                               "status": status, "households_total": hh,
                                               "households_relocated": rel,
                                               "compensation_wan_yuan": comp}, g)
        for code, (v, regime, start, end, g) in BANS.items():
            row = {"code": code, "village_code": v, "regime": regime, "valid_from": date.fromisoformat(start),
                   "valid_to": date.fromisoformat(end)}
            if regime == "seasonal_rest":
                row.update(season_start="04-01", season_end="06-30")
            _insert(conn, "grazing_bans", row, g)
        for code, (v, year, rate, g) in PLOTS.items():
            _insert(conn, "caragana_plots", {"code": code, "village_code": v, "planted_year": year,
                                             "method": "enclosure", "survival_rate": rate}, g)
        for code, (v, kind, g) in PROJECTS.items():
            _insert(conn, "eco_projects", {"code": code, "village_code": v, "project_type": kind,
                                           "year": 2022, "status": "in_progress"}, g)


@pytest.fixture(scope="module")
def township(new_database):
    """A throwaway database (uuid-named) holding the hand-made township; dropped afterwards."""
    with new_database("landeco_test_query") as url:
        build(url)
        yield url


def test_the_township_areas_agree_with_the_reference(township):
    """PostGIS' stored areas are the Geod reference's to 0.01 % (the rest of the suite relies on it)."""
    with engine_for(township.render_as_string(hide_password=False)).connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT code, area_mu FROM land_leases")).all())
    for code, lease in LEASES.items():
        assert stored[code] == pytest.approx(mu(lease[-1]), rel=1e-4)
