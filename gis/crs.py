"""Which coordinate reference system an upload is in, and whether its numbers fit it.

The ``.prj`` usually holds ESRI WKT without an EPSG code; pyproj matches it to the EPSG
registry (CGCS2000 Gauss-Kruger, Xian 1980, Beijing 1954 …). Files without one are refused
unless the user names the CRS. Numbers that cannot be right for the CRS are explained: an
easting carrying the 3-degree zone number (36 512 345 m under a CM 108E ``.prj``), lon/lat
swapped, degrees under a projected CRS and the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gis.errors import InputError

__all__ = ["CrsChoice", "check_coordinates", "resolve_crs", "to_lonlat", "zone_crs"]

#: (first EPSG code of the 3-degree zones with zone prefix for zone 25,
#:  first EPSG code of the 3-degree zones by central meridian for 75E), per datum.
#: Keys are datum names lower-cased with underscores as spaces (EPSG says "China 2000",
#: ESRI "D_China_2000").
_GK_3DEG = {
    "china 2000": (4513, 4534),
    "china geodetic coordinate system 2000": (4513, 4534),
    "xian 1980": (2349, 2370),
    "beijing 1954": (2401, 2422),
}


@dataclass(frozen=True)
class CrsChoice:
    """The CRS chosen, its EPSG code when known, its name, and where it came from."""

    crs: CRS
    epsg: int | None
    name: str
    source: str

    def as_dict(self) -> dict[str, object]:
        """For reports."""
        return {"epsg": self.epsg, "name": self.name, "source": self.source}


def _parse_user(text: str) -> CRS:
    value = text.strip()
    if value.isdigit():
        value = f"EPSG:{value}"
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise InputError("crs_invalid", f"{text!r} is not a coordinate reference system pyproj knows",
                         hint="give an EPSG code such as 4545 or EPSG:4490") from exc


def resolve_crs(wkt: str | None, user: str | None = None) -> CrsChoice:
    """The CRS of an upload: the user's when named, else the file's matched to EPSG.

    Raises ``InputError`` ``crs_missing`` (no ``.prj``, nothing named) or
    ``crs_unrecognised`` (a ``.prj`` that matches no EPSG CRS).

    Examples
    --------
    >>> resolve_crs(None, "4545").epsg
    4545
    """
    if user:
        crs = _parse_user(user)
        return CrsChoice(crs, crs.to_epsg(), crs.name, "user")
    if not wkt or not wkt.strip():
        raise InputError("crs_missing", "the file does not say which coordinate system it is in "
                         "(no .prj)", hint="name the CRS, e.g. EPSG:4545 (CGCS2000 3-degree GK CM 108E) "
                         "or EPSG:4490 (CGCS2000 geographic)")
    try:
        crs = CRS.from_user_input(wkt)
    except CRSError as exc:
        raise InputError("crs_unrecognised", "the .prj cannot be read as a coordinate system",
                         hint="name the CRS explicitly") from exc
    epsg = crs.to_epsg(min_confidence=70)
    if epsg is None:
        for auth in crs.list_authority(min_confidence=50):
            if auth.auth_name == "EPSG":
                epsg = int(auth.code)
                break
    if epsg is None:
        raise InputError("crs_unrecognised", f"the .prj describes {crs.name!r}, which matches no EPSG "
                         "coordinate system", hint="name the CRS explicitly", prj_name=crs.name)
    matched = CRS.from_epsg(epsg)
    return CrsChoice(matched, epsg, matched.name, "prj")


def zone_crs(crs: CRS, zone: int) -> int | None:
    """The EPSG code of ``crs``'s datum in 3-degree Gauss-Kruger ``zone`` with zone prefix.

    Examples
    --------
    >>> zone_crs(CRS.from_epsg(4545), 36)
    4524
    """
    datum = (crs.datum.name if crs.datum else "").lower().replace("_", " ")
    for key, (zone_base, _cm_base) in _GK_3DEG.items():
        if key in datum and 25 <= zone <= 45:
            return zone_base + zone - 25
    return None


def _false_easting(crs: CRS) -> float | None:
    op = crs.coordinate_operation
    if op is None:
        return None
    for p in op.params:
        if p.name.lower() == "false easting":
            return float(p.value)
    return None


def check_coordinates(bounds: tuple[float, float, float, float], choice: CrsChoice,
                      region: tuple[float, float, float, float]) -> None:
    """Refuse coordinates that cannot be right for the CRS, explaining the likely fault.

    ``bounds`` are the file's (minx, miny, maxx, maxy) in its own CRS; ``region`` is the
    lon/lat box where features are expected (the township).
    """
    minx, miny, maxx, maxy = bounds
    if not np.all(np.isfinite(bounds)):
        return
    crs = choice.crs
    if crs.is_geographic:
        if max(abs(minx), abs(maxx)) > 180 or max(abs(miny), abs(maxy)) > 90:
            if max(abs(minx), abs(maxx)) > 1000:
                raise InputError("coordinates_not_degrees", f"the coordinates ({minx:.0f}, {miny:.0f}) "
                                 f"are metres, but the CRS {choice.name!r} is in degrees",
                                 hint="name the projected CRS the surveyor used, e.g. EPSG:4545")
            raise InputError("lonlat_swapped", "latitudes beyond ±90°: longitude and latitude are "
                             "probably swapped", hint="swap the columns in the surveyor's software")
        west, south, east, north = region
        if south - 5 <= minx <= north + 5 and west - 5 <= miny <= east + 5 and not (
                west - 5 <= minx <= east + 5):
            raise InputError("lonlat_swapped", f"x runs {minx:.3f}–{maxx:.3f} and y {miny:.3f}–{maxy:.3f}: "
                             "these are latitudes and longitudes the wrong way round",
                             hint="swap the columns in the surveyor's software")
        return
    if max(abs(minx), abs(maxx), abs(miny), abs(maxy)) <= 360:
        raise InputError("coordinates_look_like_degrees", f"the coordinates ({minx:.4f}, {miny:.4f}) "
                         f"look like degrees, but the CRS {choice.name!r} is in metres",
                         hint="name a geographic CRS such as EPSG:4490")
    fe = _false_easting(crs)
    if fe is not None and abs(fe - 500_000) < 1 and minx > 1_000_000:
        zone = int(minx // 1_000_000)
        if zone == int(maxx // 1_000_000):
            suggested = zone_crs(crs, zone)
            hint = (f"name EPSG:{suggested} (the same datum, zone {zone} with the zone prefix)"
                    if suggested else "name the zone-prefixed CRS")
            raise InputError("easting_has_zone_number", f"eastings {minx:,.0f}–{maxx:,.0f} carry the "
                             f"Gauss-Kruger zone number {zone}, but {choice.name!r} has none",
                             hint=hint, zone=zone, suggested_epsg=suggested)


@lru_cache(maxsize=16)
def _transformer(wkt: str) -> Transformer:
    """Building a transformer takes 0.1 s: once per CRS, not once per batch."""
    return Transformer.from_crs(CRS.from_wkt(wkt), 4326, always_xy=True)


def to_lonlat(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """Reproject an array of 2D geometries from ``crs`` to EPSG:4326 (lon, lat)."""
    if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return geoms
    transformer = _transformer(crs.to_wkt())
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
