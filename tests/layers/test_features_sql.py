"""Items parameters and the SQL built from them, on the real PostGIS."""

from __future__ import annotations

import json
from datetime import date

import pytest
import sqlalchemy as sa

from layers.columns import InvalidBboxError
from layers.cql2 import InvalidFilterError, filter_sql, parse_filter
from layers.features import (
    CRS84,
    InvalidParameterError,
    ItemsQuery,
    UnknownPropertyError,
    UnsupportedCrsError,
    page_sql,
    parse_bbox,
    parse_crs,
    parse_datetime,
    parse_properties,
    parse_sortby,
)
from layers.registry import get_layer

LEASES = get_layer("land_leases")


@pytest.mark.parametrize("text", [None, "", "http://www.opengis.net/def/crs/OGC/1.3/CRS84", "[OGC:CRS84]",
                                  "urn:ogc:def:crs:OGC:1.3:CRS84"])
def test_crs84_spellings(text):
    assert parse_crs(text) is CRS84


@pytest.mark.parametrize(("text", "srid", "lat_first"), [
    ("http://www.opengis.net/def/crs/EPSG/0/4326", 4326, True),
    ("EPSG:4490", 4490, True),
    ("<http://www.opengis.net/def/crs/EPSG/0/4545>", 4545, True),
    ("urn:ogc:def:crs:EPSG::4545", 4545, True),
])
def test_epsg_spellings(text, srid, lat_first):
    crs = parse_crs(text)
    assert (crs.srid, crs.lat_first) == (srid, lat_first)


def test_other_crs_are_refused_with_the_offer():
    with pytest.raises(UnsupportedCrsError) as err:
        parse_crs("EPSG:2381", "bbox-crs")
    assert "4545" in str(err.value) and err.value.extra()["parameter"] == "bbox-crs"


def test_bbox_forms():
    assert parse_bbox("1,2,3,4") == (1, 2, 3, 4)
    assert parse_bbox("1,2,0,3,4,100") == (1, 2, 3, 4)
    assert parse_bbox("170,-10,-170,10") == (170, -10, -170, 10)  # across the antimeridian is allowed
    for bad in ("1,2,3", "1,2,3,x", "1,4,3,2", "nan,1,2,3", "inf,1,2,3"):
        with pytest.raises(InvalidBboxError):
            parse_bbox(bad)


def test_datetime_forms():
    d = date(2022, 7, 1)
    assert parse_datetime("2022-07-01") == (d, d)
    assert parse_datetime("2022-07-01T23:30:00+08:00") == (date(2022, 7, 1), date(2022, 7, 1))
    assert parse_datetime("2022-06-30T20:00:00-08:00") == (d, d)  # 04:00 UTC next day
    assert parse_datetime("../2022-07-01") == (None, d)
    assert parse_datetime("2022-07-01/..") == (d, None)
    assert parse_datetime("2022-07-01/") == (d, None)
    for bad in ("..", "2022-13-01", "2023-01-01/2022-01-01", "a/b/c"):
        with pytest.raises(InvalidParameterError):
            parse_datetime(bad)


def test_sortby_and_properties():
    assert parse_sortby("-area_mu,+code,start_date", LEASES) == [
        ("area_mu", True), ("code", False), ("start_date", False)]
    assert parse_sortby("area_mu DESC", LEASES) == [("area_mu", True)]
    with pytest.raises(UnknownPropertyError):
        parse_sortby("geom", LEASES)
    assert parse_properties("code, lessee", LEASES) == ["code", "lessee"]
    assert parse_properties("", LEASES) == []
    with pytest.raises(UnknownPropertyError):
        parse_properties("code,extra", LEASES)


def test_filters_parse_with_pygeofilter():
    assert type(parse_filter("area_mu > 100")).__name__ == "GreaterThan"
    assert type(parse_filter('{"op": ">", "args": [{"property": "area_mu"}, 100]}')).__name__ == "GreaterThan"
    dwithin = parse_filter("S_DWITHIN(geometry, POINT(107 38), 5, kilometers)")
    assert (dwithin.distance, dwithin.units) == (5, "kilometers")


def test_filter_values_are_parameters_never_sql():
    sql, params = filter_sql(LEASES, "lessee = 'x'' OR 1=1' OR lessee LIKE '%光伏%'")
    assert "光伏" not in sql and "1=1" not in sql
    assert "%光伏%" in params.values()


def test_filter_errors_carry_a_position():
    with pytest.raises(InvalidFilterError) as err:
        filter_sql(LEASES, "purpose = 'solar' AND AND")
    assert err.value.position == len("purpose = 'solar' AND ")
    with pytest.raises(InvalidFilterError) as err:
        filter_sql(LEASES, json.dumps({"op": "=", "args": [{"property": "rent"}, 1]}))
    assert "annual_rent_yuan" in str(err.value)


def _page(conn, q: ItemsQuery):
    sql, params = page_sql(q)
    raw = conn.connection.driver_connection
    return raw.execute(sql, params).fetchone()


def test_page_on_an_empty_layer(conn):
    returned, matched, body = _page(conn, ItemsQuery(layer=LEASES))
    assert (returned, matched, body) == (0, 0, "")


def test_page_counts_only_when_it_must(conn):
    conn.execute(sa.text("INSERT INTO villages (code, name, kind, geom) VALUES ('V1', '特布德嘎查', 'gacha', "
                         "ST_Multi(ST_MakeEnvelope(107, 38, 107.1, 38.1, 4326)))"))
    for i in range(5):
        conn.execute(sa.text(
            "INSERT INTO land_leases (code, village_code, lessee, purpose, kind, status, start_date, geom) "
            "VALUES (:c, 'V1', '京能光伏', 'solar', 'lease', 'active', :d, "
            "ST_Multi(ST_MakeEnvelope(107 + :i * 0.01, 38, 107.005 + :i * 0.01, 38.005, 4326)))"),
            {"c": f"L{i}", "d": date(2020 + i, 1, 1), "i": i})
    returned, matched, body = _page(conn, ItemsQuery(layer=LEASES, limit=2, offset=2))
    assert (returned, matched) == (2, 5)
    features = json.loads(f"[{body}]")
    assert [f["properties"]["code"] for f in features] == ["L2", "L3"]
    assert features[0]["properties"]["lessee"] == "京能光伏"
    assert _page(conn, ItemsQuery(layer=LEASES, limit=10))[:2] == (5, 5)
    assert _page(conn, ItemsQuery(layer=LEASES, limit=2, offset=10))[:2] == (0, 5)
    q = ItemsQuery(layer=LEASES, interval=(date(2022, 6, 1), None), sortby=[("start_date", True)])
    codes = [f["properties"]["code"] for f in json.loads(f"[{_page(conn, q)[2]}]")]
    assert codes == ["L4", "L3", "L2", "L1", "L0"]  # open-ended leases run on
