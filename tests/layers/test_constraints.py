"""The database itself refuses a bad row, whoever writes it."""

import pytest
import sqlalchemy as sa

SQUARE = "SRID=4326;MULTIPOLYGON(((107 38,107.01 38,107.01 38.01,107 38.01,107 38)))"
GOOD = {
    "villages": {"code": "150623100201", "name": "特布德嘎查", "kind": "gacha", "population": 800},
    "subsidence_zones": {"code": "CX-1", "village_code": "V0", "severity": "moderate",
                         "status": "relocating", "max_depth_m": 3.5, "households_total": 10,
                         "households_relocated": 4, "compensation_wan_yuan": 120.0},
    "grazing_bans": {"code": "JM-1", "village_code": "V0", "regime": "seasonal_rest",
                     "season_start": "04-01", "season_end": "06-30",
                     "valid_from": "2021-01-01", "valid_to": "2025-12-31"},
    "caragana_plots": {"code": "NT-1", "village_code": "V0", "planted_year": 2019,
                       "method": "enclosure", "seedlings": 5000, "survival_rate": 0.85},
    "land_leases": {"code": "ZL-1", "village_code": "V0", "lessee": "京能", "purpose": "solar",
                    "kind": "lease", "start_date": "2020-01-01", "end_date": "2040-12-31",
                    "annual_rent_yuan": 30000, "status": "active"},
}

BAD = [
    ("villages", {"kind": "town"}, "ck_villages_kind_domain"),
    ("villages", {"population": -1}, "ck_villages_population_min"),
    ("villages", {"name": "  "}, "ck_villages_name_not_blank"),
    ("villages", {"code": " "}, "ck_villages_code_not_blank"),
    ("subsidence_zones", {"severity": "extreme"}, "ck_subsidence_zones_severity_domain"),
    ("subsidence_zones", {"status": "gone"}, "ck_subsidence_zones_status_domain"),
    ("subsidence_zones", {"max_depth_m": -0.5}, "ck_subsidence_zones_max_depth_m_min"),
    ("subsidence_zones", {"households_total": -1, "households_relocated": None},
     "ck_subsidence_zones_households_total_min"),
    ("subsidence_zones", {"households_relocated": 11},
     "ck_subsidence_zones_households_relocated_le_total"),
    ("subsidence_zones", {"compensation_wan_yuan": -1},
     "ck_subsidence_zones_compensation_wan_yuan_min"),
    ("grazing_bans", {"regime": "sometimes"}, "ck_grazing_bans_regime_domain"),
    ("grazing_bans", {"season_start": "13-01"}, "ck_grazing_bans_season_start_monthday"),
    ("grazing_bans", {"season_end": "06-32"}, "ck_grazing_bans_season_end_monthday"),
    ("grazing_bans", {"regime": "full_ban"}, "ck_grazing_bans_season_only_for_rest"),
    ("grazing_bans", {"season_end": None}, "ck_grazing_bans_season_complete"),
    ("grazing_bans", {"valid_to": "2020-12-31"}, "ck_grazing_bans_valid_to_after_from"),
    ("caragana_plots", {"planted_year": 1980}, "ck_caragana_plots_planted_year_min"),
    ("caragana_plots", {"method": "aerial"}, "ck_caragana_plots_method_domain"),
    ("caragana_plots", {"survival_rate": 1.2}, "ck_caragana_plots_survival_rate_max"),
    ("caragana_plots", {"survival_rate": -0.1}, "ck_caragana_plots_survival_rate_min"),
    ("caragana_plots", {"seedlings": -5}, "ck_caragana_plots_seedlings_min"),
    ("land_leases", {"purpose": "casino"}, "ck_land_leases_purpose_domain"),
    ("land_leases", {"kind": "gift"}, "ck_land_leases_kind_domain"),
    ("land_leases", {"status": "pending"}, "ck_land_leases_status_domain"),
    ("land_leases", {"end_date": "2019-12-31"}, "ck_land_leases_end_after_start"),
    ("land_leases", {"annual_rent_yuan": -1}, "ck_land_leases_annual_rent_yuan_min"),
    ("land_leases", {"lessee": ""}, "ck_land_leases_lessee_not_blank"),
    ("land_leases", {"village_code": "NOWHERE"}, "fk_land_leases_village_code"),
]


def _insert(conn, table, values, geom=SQUARE):
    cols = ", ".join([*values, "geom"])
    params = ", ".join([*(f":{k}" for k in values), "ST_GeomFromEWKT(:geom)"])
    casts = {k: v for k, v in values.items()}
    conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({params})"),
                 {**casts, "geom": geom})


@pytest.fixture
def village(conn):
    _insert(conn, "villages", {"code": "V0", "name": "八一村", "kind": "village"})
    return conn


@pytest.mark.parametrize("table", list(GOOD))
def test_a_good_row_is_accepted(village, table):
    values = dict(GOOD[table])
    _insert(village, table, values)
    stored = village.execute(sa.text(f"SELECT area_mu FROM {table} WHERE code = :c"),
                             {"c": values["code"]}).scalar()
    assert stored == pytest.approx(974844 / (10000 / 15), rel=1e-4)


@pytest.mark.parametrize(("table", "change", "constraint"), BAD,
                         ids=[c for _, _, c in BAD])
def test_a_bad_row_is_refused_by_its_constraint(village, table, change, constraint):
    values = {**GOOD[table], **change}
    with pytest.raises(sa.exc.IntegrityError) as err, village.begin_nested():
        _insert(village, table, values)
    assert err.value.orig.diag.constraint_name == constraint


def test_a_duplicate_code_is_refused(village):
    _insert(village, "caragana_plots", GOOD["caragana_plots"])
    with pytest.raises(sa.exc.IntegrityError) as err, village.begin_nested():
        _insert(village, "caragana_plots", GOOD["caragana_plots"])
    assert err.value.orig.diag.constraint_name == "uq_caragana_plots_code"


BAD_GEOMETRY = [
    ("self_intersecting",
     "SRID=4326;MULTIPOLYGON(((107 38,107.01 38.01,107.01 38,107 38.01,107 38)))",
     "ck_caragana_plots_geom_valid"),
    ("empty", "SRID=4326;MULTIPOLYGON EMPTY", "ck_caragana_plots_geom_not_empty"),
    ("point", "SRID=4326;POINT(107 38)", "Geometry type (Point) does not match"),
    ("srid_4490", SQUARE.replace("4326", "4490"), "SRID (4490) does not match"),
    ("three_d", "SRID=4326;MULTIPOLYGON(((107 38 1,107.01 38 1,107.01 38.01 1,107 38 1)))",
     "Geometry has Z dimension"),
]


@pytest.mark.parametrize(("case", "ewkt", "expected"), BAD_GEOMETRY,
                         ids=[c for c, _, _ in BAD_GEOMETRY])
def test_bad_geometry_is_refused(village, case, ewkt, expected):
    with pytest.raises(sa.exc.DBAPIError) as err, village.begin_nested():
        _insert(village, "caragana_plots", GOOD["caragana_plots"], geom=ewkt)
    diag = err.value.orig.diag
    assert expected in (diag.constraint_name or "") + (diag.message_primary or "")
