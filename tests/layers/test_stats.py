"""Statistics add up: hand-made totals per group, the measures, and the files."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook

from layers.columns import UnknownPropertyError
from layers.stats import layer_stats, to_csv, to_json, to_xlsx
from layers.store.database import engine_for
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, ON, PLOTS, ZONES, mu

township = cases.township


@pytest.fixture
def conn(township):
    with engine_for(township.render_as_string(hide_password=False)).connect() as c:
        yield c


def test_caragana_per_year_with_area_weighted_survival(conn):
    table = layer_stats(conn, "caragana_plots", ["planted_year"])
    rows = {r["planted_year"]: r for r in table.rows}
    assert rows[2019]["count"] == 1 and rows[2020]["count"] == 2
    a2, a3 = mu(PLOTS["C2"][-1]), mu(PLOTS["C3"][-1])
    assert rows[2020]["area_mu"] == pytest.approx(a2 + a3, rel=1e-4)
    assert rows[2020]["area_wan_mu"] == pytest.approx((a2 + a3) / 10_000, rel=1e-4)
    assert rows[2020]["survival_rate"] == pytest.approx(0.6)  # C3 has no rate: not counted
    a1 = mu(PLOTS["C1"][-1])
    assert table.total["survival_rate"] == pytest.approx((0.8 * a1 + 0.6 * a2) / (a1 + a2), rel=1e-4)
    assert table.total["count"] == 3


def test_subsidence_households_and_compensation(conn):
    table = layer_stats(conn, "subsidence_zones", ["status", "village_code"])
    (row,) = table.rows
    assert (row["households_total"], row["households_relocated"]) == (10, 4)
    assert row["compensation_wan_yuan"] == 120
    assert row["village_name"] == "特布德嘎查"
    assert row["area_mu"] == pytest.approx(mu(ZONES["Z1"][-1]), rel=1e-4)


def test_bans_in_force_and_leases_expiring(conn):
    bans = layer_stats(conn, "grazing_bans", ["regime"], on=ON)
    assert [r["regime"] for r in bans.rows] == ["full_ban"]
    soon = layer_stats(conn, "land_leases", ["purpose"], on=ON, expiring_days=60)
    assert [r["purpose"] for r in soon.rows] == ["farming"]
    assert soon.total["area_mu"] == pytest.approx(mu(LEASES["L5"][-1]), rel=1e-4)


def test_leases_by_purpose_kind_status(conn):
    table = layer_stats(conn, "land_leases", ["purpose", "kind", "status"])
    assert sum(r["count"] for r in table.rows) == table.total["count"] == 5
    assert sum(r["area_mu"] for r in table.rows) == pytest.approx(table.total["area_mu"], rel=1e-6)


def test_files_carry_labels_and_the_total(conn):
    table = layer_stats(conn, "land_leases", ["status"])
    doc = json.loads(to_json(table))
    assert doc["labels"]["status"]["active"]["zh"] == "履约中"
    rows = list(csv.reader(io.StringIO(to_csv(table).decode("utf-8-sig"))))
    assert rows[0][0] == "状态" and rows[-1][0] == "合计"
    assert {r[0] for r in rows[1:-1]} == {"履约中", "已到期"}
    english = list(csv.reader(io.StringIO(to_csv(table, "en").decode("utf-8-sig"))))
    assert english[1][0] in ("Active", "Expired")
    ws = load_workbook(io.BytesIO(to_xlsx(table))).active
    values = list(ws.values)
    assert values[-1][0] == "合计" and values[-1][1] == 5


def test_unknown_field(conn):
    with pytest.raises(UnknownPropertyError):
        layer_stats(conn, "land_leases", ["colour"])
