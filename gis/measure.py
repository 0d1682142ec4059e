"""Lengths and areas on the WGS 84 ellipsoid, for the map's measuring tool.

Karney's geodesics (``pyproj.Geod``, GeographicLib): a distance or an area measured on the
map agrees with the stored 亩 of a parcel, which are ellipsoidal too, and not with a
Web Mercator screen, where areas at 38° N come out 60 % too large.

>>> m = measure([(107.0, 38.0), (107.01, 38.0), (107.01, 38.01), (107.0, 38.01)])
>>> round(m.length_m), round(m.perimeter_m), round(m.area_m2), round(m.area_mu)
(2866, 3976, 974844, 1462)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyproj import Geod

__all__ = ["MU_M2", "Measurement", "measure"]

#: One 亩 in square metres (1/15 of a hectare).
MU_M2 = 10_000 / 15
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Measurement:
    """The path's length, and for three or more points the closed ring's perimeter and area."""

    points: int
    length_m: float
    perimeter_m: float | None
    area_m2: float | None

    @property
    def area_mu(self) -> float | None:
        """The area in 亩."""
        return None if self.area_m2 is None else self.area_m2 / MU_M2


def measure(coords: Sequence[tuple[float, float]]) -> Measurement:
    """Length of the path through ``coords`` (lon, lat) and area of the ring they close."""
    lons = [c[0] for c in coords]
    lats = [c[1] for c in coords]
    length = float(_GEOD.line_length(lons, lats)) if len(coords) > 1 else 0.0
    if len(coords) < 3:
        return Measurement(len(coords), length, None, None)
    area, perimeter = _GEOD.polygon_area_perimeter(lons, lats)
    return Measurement(len(coords), length, float(perimeter), abs(float(area)))
