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
    assert style["fillColor"] == ZONES.get_field("severity").choice("severe").color
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


# -- the colour rule: every pair of legend colours drawn together stays apart ----------------------
#
# The overview draws every layer at once, so every pair of its legend entries is compared: fills
# as they look on white paper or an empty basemap (blended at the layer's fill opacity), lines
# as drawn. CIEDE2000, for normal vision and for simulated deuteranopia and protanopia (full
# dichromacy, coloraide's Brettel filters). Left out: a sequential ramp's own classes (years
# planted: meant to read as one scale), and dashed classes (out of season, ended, planned,
# expiring), which their dash tells apart.
MIN_DELTA_E = 7.0
MIN_DELTA_E_CVD = 2.3


def _drawn_together():
    from coloraide import Color

    from layers.registry import LAYERS
    from layers.symbology import Ramp

    white = Color("white")
    for layer in LAYERS.values():
        sym = symbology(layer, MapContext(on=date(2026, 5, 1)), {"planted_year": (2015, 2022)})
        for section in sym.legend():
            for item in section.items:
                filled = bool(item.fill) and item.fill_opacity > 0
                color = Color(item.fill if filled else item.stroke)
                if filled:
                    color = color.mix(white, 1 - item.fill_opacity, space="srgb")
                yield (layer.id, item.label, "fill" if filled else "line", color, bool(item.dash),
                       isinstance(sym.rule, Ramp))


def _pairs():
    import itertools

    for a, b in itertools.combinations(list(_drawn_together()), 2):
        if a[2] != b[2] or a[4] or b[4] or (a[0] == b[0] and a[5]):
            continue
        yield a, b


def test_every_pair_of_legend_colours_drawn_together_is_told_apart():
    too_close = []
    pairs = list(_pairs())
    assert len(pairs) > 300  # fills of 8 layers and lines of 4: the whole overview
    for a, b in pairs:
        normal = a[3].delta_e(b[3], method="2000")
        cvd = {kind: a[3].filter(kind).delta_e(b[3].filter(kind), method="2000")
               for kind in ("deutan", "protan")}
        if normal < MIN_DELTA_E or min(cvd.values()) < MIN_DELTA_E_CVD:
            too_close.append(f"{a[0]}:{a[1]} / {b[0]}:{b[1]}: ΔE {normal:.1f}, "
                             f"deutan {cvd['deutan']:.1f}, protan {cvd['protan']:.1f}")
    assert too_close == []


def test_the_colour_rule_catches_the_pairs_staff_confused():
    """Grazing ban vs severe subsidence, railway vs mining: the old colours fail the rule."""
    from coloraide import Color

    white = Color("white")

    def seen(c, alpha=0.5):
        return Color(c).mix(white, 1 - alpha, space="srgb")

    old = [("#d73027", "#b30000"), ("#525252", "#636363"), ("#fc8d59", "#fc8d59")]
    for x, y in old:
        assert seen(x).delta_e(seen(y), method="2000") < MIN_DELTA_E or min(
            seen(x).filter(k).delta_e(seen(y).filter(k), method="2000") for k in ("deutan", "protan")
        ) < MIN_DELTA_E_CVD
    ban = BANS.get_field("regime").choice("full_ban").color
    severe = ZONES.get_field("severity").choice("severe").color
    railway, mining = (LEASES.get_field("purpose").choice(v).color for v in ("railway", "mining"))
    assert seen(ban).delta_e(seen(severe), method="2000") > 2 * MIN_DELTA_E
    assert seen(railway).delta_e(seen(mining), method="2000") > 2 * MIN_DELTA_E
