"""The annual review's figures on the hand-made township, whose areas are known (pyproj.Geod)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from layers.ecology import caragana_by_year, leases_by_end_year
from layers.stats import layer_stats
from layers.store.database import engine_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, ON, PLOTS, mu

township = cases.township


@pytest.fixture
def conn(township):
    """A connection whose changes are rolled back after the test."""
    with engine_for(township.render_as_string(hide_password=False)).connect() as c:
        trans = c.begin()
        yield c
        trans.rollback()


def test_caragana_planted_and_surviving_per_year(conn):
    conn.execute(sa.text("UPDATE caragana_plots SET seedlings = CASE code WHEN 'C1' THEN 1000 "
                         "WHEN 'C2' THEN 3000 ELSE 500 END"))
    rows = {r["planted_year"]: r for r in caragana_by_year(conn)}
    assert list(rows) == [2019, 2020]
    a1, a2, a3 = (mu(PLOTS[c][-1]) for c in ("C1", "C2", "C3"))
    assert rows[2019]["plots"] == 1 and rows[2020]["plots"] == 2
    assert rows[2019]["area_mu"] == pytest.approx(a1, rel=1e-4)
    assert rows[2019]["surviving_area_mu"] == pytest.approx(0.8 * a1, rel=1e-4)
    assert rows[2019]["surviving_seedlings"] == 800
    # 2020: C3 has no survival rate yet - planted, not surviving, and listed as uninspected
    assert rows[2020]["area_mu"] == pytest.approx(a2 + a3, rel=1e-4)
    assert rows[2020]["surviving_area_mu"] == pytest.approx(0.6 * a2, rel=1e-4)
    assert rows[2020]["uninspected_mu"] == pytest.approx(a3, rel=1e-4)
    assert rows[2020]["seedlings"] == 3500 and rows[2020]["surviving_seedlings"] == 1800
    assert rows[2020]["survival_rate"] == pytest.approx(0.6)


def test_survival_rate_agrees_with_the_statistics(conn):
    stats = {r["planted_year"]: r for r in layer_stats(conn, "caragana_plots", ["planted_year"]).rows}
    for row in caragana_by_year(conn):
        assert row["survival_rate"] == pytest.approx(stats[row["planted_year"]]["survival_rate"], abs=1e-4)
        assert row["area_mu"] == pytest.approx(stats[row["planted_year"]]["area_mu"], rel=1e-6)


def test_active_leases_by_purpose_and_end_year(conn):
    rows = leases_by_end_year(conn, ON)
    # L3 expired; the others active on ON (L5 ends 2026-12-15, after ON)
    got = {(r["purpose"], r["end_year"]): r for r in rows}
    assert set(got) == {("solar", 2040), ("railway", 2040), ("mining", 2035), ("farming", 2026)}
    assert got[("solar", 2040)]["area_mu"] == pytest.approx(mu(LEASES["L1"][-1]), rel=1e-4)
    assert all(r["leases"] == 1 and r["annual_rent_yuan"] == 1000 for r in rows)
    # a month later L5 has ended: no longer active
    later = {(r["purpose"], r["end_year"]) for r in leases_by_end_year(conn, date(2027, 1, 1))}
    assert ("farming", 2026) not in later and ("solar", 2040) in later


def test_a_lease_without_end_date_counts_under_none(conn):
    conn.execute(sa.text("UPDATE land_leases SET end_date = NULL WHERE code = 'L4'"))
    got = {(r["purpose"], r["end_year"]) for r in leases_by_end_year(conn, ON)}
    assert ("mining", None) in got and ("mining", 2035) not in got
