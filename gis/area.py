"""Ellipsoidal area, as the national land survey computes it, and China's area units.

Area is geodesic on the GRS80 (CGCS2000) ellipsoid, never planar on degrees.
1 亩 (mu) = 10 000 / 15 m²; 15 mu = 1 ha; reports speak in 亩 and 万亩.
"""

from __future__ import annotations

from pyproj import Geod
from shapely.geometry.base import BaseGeometry

__all__ = ["M2_PER_HA", "M2_PER_MU", "geodesic_area_m2", "m2_to", "to_m2"]

M2_PER_MU = 10_000 / 15
M2_PER_HA = 10_000.0
_PER_UNIT = {"m2": 1.0, "mu": M2_PER_MU, "wan_mu": 10_000 * M2_PER_MU, "ha": M2_PER_HA,
             "km2": 1_000_000.0}
_GEOD = Geod(ellps="GRS80")


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area in m² of a lon/lat geometry on the GRS80 ellipsoid.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> round(geodesic_area_m2(box(107.0, 38.0, 107.01, 38.01)))
    974844
    """
    area, _ = _GEOD.geometry_area_perimeter(geom)
    return abs(area)


def m2_to(value_m2: float, unit: str) -> float:
    """Convert m² to ``unit`` (``m2``, ``mu``, ``wan_mu``, ``ha``, ``km2``).

    Examples
    --------
    >>> m2_to(10_000, "mu")
    15.0
    """
    return value_m2 / _PER_UNIT[unit]


def to_m2(value: float, unit: str) -> float:
    """Convert ``value`` in ``unit`` to m².

    Examples
    --------
    >>> round(to_m2(1, "mu"), 3)
    666.667
    """
    return value * _PER_UNIT[unit]
