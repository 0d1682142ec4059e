"""CRS from .prj and user input; zone-number eastings, swapped axes and degrees-as-metres explained."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import CRS

from gis.crs import check_coordinates, resolve_crs, to_lonlat, zone_crs
from gis.errors import InputError

BANNER = (106.45, 37.6, 108.6, 38.9)
ESRI_GK108 = ('PROJCS["CGCS2000_3_Degree_GK_CM_108E",GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",'
              'DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],'
              'UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",'
              '500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",108.0],'
              'PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]')


def test_esri_cgcs2000_gk_prj_matches_epsg_4545():
    choice = resolve_crs(ESRI_GK108)
    assert (choice.epsg, choice.source) == (4545, "prj")


def test_user_crs_wins_and_missing_prj_is_refused():
    assert resolve_crs(ESRI_GK108, "EPSG:4490").epsg == 4490
    with pytest.raises(InputError) as exc:
        resolve_crs(None)
    assert exc.value.code == "crs_missing" and "4545" in exc.value.hint
    with pytest.raises(InputError) as exc:
        resolve_crs(None, "not a crs")
    assert exc.value.code == "crs_invalid"


def test_unmappable_prj_is_refused():
    wkt = ('GEOGCS["unknown",DATUM["unknown",SPHEROID["unknown",57.29,0.0]],PRIMEM["Greenwich",0],'
           'UNIT["degree",0.0174532925199433]]')
    with pytest.raises(InputError) as exc:
        resolve_crs(wkt)
    assert exc.value.code in ("crs_unrecognised",)


@pytest.mark.parametrize(("epsg", "zone", "expected"), [(4545, 36, 4524), (4545, 35, 4523), (2381, 36, 2360),
                                                         (2435, 36, 2412), (4326, 36, None)])
def test_zone_prefixed_crs(epsg, zone, expected):
    assert zone_crs(CRS.from_epsg(epsg), zone) == expected


def test_easting_with_zone_number():
    with pytest.raises(InputError) as exc:
        check_coordinates((36_450_000, 4_230_000, 36_460_000, 4_240_000), resolve_crs(None, "4545"), BANNER)
    assert exc.value.code == "easting_has_zone_number" and exc.value.extra["suggested_epsg"] == 4524
    check_coordinates((36_450_000, 4_230_000, 36_460_000, 4_240_000), resolve_crs(None, "4524"), BANNER)


def test_swapped_and_wrong_units():
    geo = resolve_crs(None, "4490")
    with pytest.raises(InputError) as exc:
        check_coordinates((38.1, 107.2, 38.3, 107.5), geo, BANNER)
    assert exc.value.code == "lonlat_swapped"
    with pytest.raises(InputError) as exc:
        check_coordinates((450_000, 4_230_000, 460_000, 4_240_000), geo, BANNER)
    assert exc.value.code == "coordinates_not_degrees"
    with pytest.raises(InputError) as exc:
        check_coordinates((107.2, 38.1, 107.5, 38.3), resolve_crs(None, "4545"), BANNER)
    assert exc.value.code == "coordinates_look_like_degrees"
    check_coordinates((107.2, 38.1, 107.5, 38.3), geo, BANNER)


def test_to_lonlat_round_trip():
    pt = shapely.points([[460_000, 4_230_000]])
    lon, lat = shapely.get_coordinates(to_lonlat(pt, CRS.from_epsg(4545)))[0]
    assert 107.5 < lon < 107.6 and 38.2 < lat < 38.3
    assert to_lonlat(np.array([None]), CRS.from_epsg(4545))[0] is None

