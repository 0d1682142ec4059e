"""What staff see: colours by severity, season and expiry; legends and popups with units."""

from datetime import date

import pytest

from layers.registry import get_layer
from layers.symbology import EXPIRY_DAYS, InvalidStyleFieldError, MapContext, in_season, symbology

BANS, LEASES, ZONES, PLOTS = (get_layer(i) for i in ("grazing_bans", "land_leases", "subsidence_zones",
                                                      "caragana_plots"))
REST = {"regime": "seasonal_rest", "season_start": "04-01", "season_end": "06-30"}


@pytest.mark.parametrize(("start", "end", "on", "inside"), [
    ("04-01", "06-30", date(2026, 4, 1), True),
    ("04-01", "06-30", date(2026, 6, 30), True),
    ("04-01", "06-30", date(2026, 7, 1), False),
    ("11-15", "02-15", date(2026, 12, 31), True),
    ("11-15", "02-15", date(2026, 3, 1), False),
    (None, None, date(2026, 5, 1), False),
])
def test_rest_season_bounds_are_inclusive_and_may_span_new_year(start, end, on, inside):
    assert in_season(start, end, on) is inside


def test_seasonal_rest_is_solid_in_season_and_dashed_outside():
    inside = symbology(BANS, MapContext(on=date(2026, 5, 1))).style(REST)
    outside = symbology(BANS, MapContext(on=date(2026, 11, 1))).style(REST)
    assert "dashArray" not in inside and outside["dashArray"]
    assert outside["fillOpacity"] < inside["fillOpacity"]
    assert inside["fillColor"] == BANS.get_field("regime").choice("seasonal_rest").color
    labels = [i.label for s in symbology(BANS, MapContext()).legend() for i in s.items]
    assert "休牧（休牧期内）" in labels and "休牧（休牧期外）" in labels


def test_leases_ending_soon_are_marked_and_ended_ones_pale():
    sym = symbology(LEASES, MapContext(on=date(2026, 11, 1)))
    soon = {"purpose": "solar", "status": "active", "end_date": "2026-12-15"}
    later = {**soon, "end_date": "2027-06-01"}
    edge = {**soon, "end_date": "2027-01-30"}  # exactly 90 days on
    assert sym.style(soon)["color"] == "#e31a1c" and sym.style(edge)["color"] == "#e31a1c"
    assert sym.style(later)["color"] != "#e31a1c"
    assert sym.style({**soon, "status": "expired"})["fillOpacity"] < sym.style(later)["fillOpacity"]
    assert sym.style(later)["fillColor"] == LEASES.get_field("purpose").choice("solar").color
    assert "到期" in sym.display(soon)["status"] and "到期" not in sym.display(later)["status"]
    assert any(str(EXPIRY_DAYS) in i.label for s in sym.legend() for i in s.items)


def test_subsidence_fill_by_severity_outline_by_status():
    style = symbology(ZONES, MapContext()).style({"severity": "severe", "status": "rehabilitated"})
    assert style["fillColor"] == "#b30000"
    assert style["color"] == ZONES.get_field("status").choice("rehabilitated").color
    titles = [s.title for s in symbology(ZONES, MapContext()).legend()]
    assert titles == ["沉陷程度", "边框：治理状态"]


def test_caragana_scale_by_year_and_by_survival():
    by_year = symbology(PLOTS, MapContext(), {"planted_year": (2015, 2022)})
    labels = [i.label for i in by_year.legend()[0].items]
    assert labels[0].startswith("2015") and labels[-1].endswith("2022")
    assert by_year.style({"planted_year": 2015})["fillColor"] == PLOTS.style.scale[0]
    assert by_year.style({"planted_year": 2022})["fillColor"] == PLOTS.style.scale[-1]
    by_rate = symbology(PLOTS, MapContext(by="survival_rate"))
    low, high = (by_rate.style({"survival_rate": r})["fillColor"] for r in (0.3, 0.95))
    assert low != high
    assert by_rate.legend()[0].title == "苗木成活率（%）"
    with pytest.raises(InvalidStyleFieldError):
        symbology(PLOTS, MapContext(by="contractor"))


def test_popup_values_carry_units_in_both_languages():
    props = {"code": "CX-1", "village_code": "150623100201", "village_name": "八一村",
             "severity": "severe", "status": "relocating", "compensation_wan_yuan": 123.4,
             "households_total": 12, "area_mu": 1500.5}
    zh = symbology(ZONES, MapContext()).display(props)
    en = symbology(ZONES, MapContext(lang="en")).display(props)
    assert zh["compensation_wan_yuan"] == "123.40 万元" and zh["area_mu"] == "1,500.50 亩"
    assert zh["severity"] == "重度" and zh["village_name"].startswith("八一村")
    assert en["severity"] == "Severe" and en["area_mu"].endswith("mu")
    assert "yuan" in en["compensation_wan_yuan"]
    rows = dict(symbology(ZONES, MapContext()).popup_rows())
    assert rows["area_mu"] == "面积" and rows["compensation_wan_yuan"] == "补偿安置资金"
