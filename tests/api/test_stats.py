"""Statistics add up: the demo's totals per village and year agree with geopandas on an export."""

from __future__ import annotations

import io

import pyogrio
import pytest
from openpyxl import load_workbook
from pyproj import Geod

GEOD = Geod(ellps="GRS80")


def test_totals_agree_with_geopandas_on_an_export(demo_client, tmp_path):
    r = demo_client.get("/export/caragana_plots?format=gpkg")
    path = tmp_path / "c.gpkg"
    path.write_bytes(r.content)
    frame = pyogrio.read_dataframe(path)
    frame["mu"] = [abs(GEOD.geometry_area_perimeter(g)[0]) / (10_000 / 15) for g in frame.geometry]
    frame["weighted"] = frame["survival_rate"] * frame["mu"]
    frame["rated_mu"] = frame["mu"].where(frame["survival_rate"].notna(), 0)
    expected = frame.groupby(["village_code", "planted_year"]).agg(
        n=("mu", "size"), mu=("mu", "sum"), seedlings=("seedlings", "sum"), weighted=("weighted", "sum"),
        rated=("rated_mu", "sum"))
    stats = demo_client.get("/stats/caragana_plots?by=village_code,planted_year").json()
    assert len(stats["rows"]) == len(expected)
    for row in stats["rows"]:
        e = expected.loc[(row["village_code"], row["planted_year"])]
        assert row["count"] == e["n"]
        assert row["area_mu"] == pytest.approx(e["mu"], rel=1e-4)
        assert row["seedlings"] == e["seedlings"]
        if e["rated"]:
            assert row["survival_rate"] == pytest.approx(e["weighted"] / e["rated"], rel=1e-4)
    assert stats["total"]["area_wan_mu"] == pytest.approx(frame["mu"].sum() / 10_000, rel=1e-4)
    assert stats["total"]["count"] == len(frame)


@pytest.mark.parametrize("layer, by", [("grazing_bans", "regime,village_code"),
                                       ("land_leases", "purpose,kind,status"),
                                       ("subsidence_zones", "status")])
def test_csv_and_xlsx_hold_the_same_total(demo_client, layer, by):
    doc = demo_client.get(f"/stats/{layer}?by={by}").json()
    text = demo_client.get(f"/stats/{layer}?by={by}&format=csv").content.decode("utf-8-sig")
    assert text.splitlines()[-1].startswith("合计")
    wb = load_workbook(io.BytesIO(demo_client.get(f"/stats/{layer}?by={by}&format=xlsx&lang=en").content))
    last = list(wb.active.values)[-1]
    assert last[0] == "Total" and doc["total"]["count"] in last
    assert sum(r["count"] for r in doc["rows"]) == doc["total"]["count"]


def test_leases_expiring_soon_and_bans_in_force(demo_client):
    soon = demo_client.get("/stats/land_leases?by=purpose&on=2026-11-01&expiring_days=365").json()
    assert soon["filters"] == {"expiring_from": "2026-11-01", "expiring_days": 365}
    bans = demo_client.get("/stats/grazing_bans?by=regime&on=2026-11-01").json()
    every = demo_client.get("/stats/grazing_bans?by=regime").json()
    assert bans["total"]["count"] <= every["total"]["count"]


@pytest.mark.parametrize("url, status, code", [("/stats/land_leases?by=colour", 400, "unknown_property"),
                                               ("/stats/roads", 404, "unknown_layer"),
                                               ("/stats/villages?expiring_days=5", 400, "invalid_filter"),
                                               ("/stats/land_leases?by=code", 200, None)])
def test_bad_stats_requests(demo_client, url, status, code):
    r = demo_client.get(url)
    assert r.status_code == status
    if code:
        assert r.json()["code"] == code
