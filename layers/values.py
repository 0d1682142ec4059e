"""Values that arrive from outside, checked by type before anything uses them.

Every number, text, date and geometry a request carries passes one of these checks: a float
is finite (``NaN`` reaching a PostGIS buffer kills the database backend), an integer fits
its column, a text holds no NUL (PostgreSQL text cannot), a date is one Python and PostgreSQL
both hold, a geometry lies inside the area its coordinate system is meant for, and a JSON
document is neither nested nor long beyond reason. Request models inherit
:class:`RequestModel`, which runs the same checks over everything they are given.

>>> finite_float("12.5", "area_min")
12.5
>>> finite_float("nan", "buffer_m")
Traceback (most recent call last):
...
layers.values.InvalidParameterError: buffer_m: 'nan' is not a finite number
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from layers.errors import BadRequestError

__all__ = [
    "BIGINT",
    "INT4",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "InvalidParameterError",
    "RequestModel",
    "area_of_use",
    "check_bounds",
    "check_json",
    "check_lonlat_bounds",
    "check_text",
    "finite_float",
    "integer",
    "iso_date",
    "parse_json",
    "utc_date",
]

#: Ranges of PostgreSQL's ``integer`` and ``bigint``.
INT4 = (-(2**31), 2**31 - 1)
BIGINT = (-(2**63), 2**63 - 1)
#: How deep a JSON document (or a CQL2 filter) may nest, and how many items a list may hold.
MAX_DEPTH = 32
MAX_ITEMS = 10_000
#: Most characters one text value may have (a GeoJSON place or a filter is the longest).
MAX_TEXT = 1_000_000


class InvalidParameterError(BadRequestError):
    """A parameter's value is malformed or out of range."""

    code = "invalid_parameter"
    title = "Invalid parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter

    def extra(self) -> dict[str, object]:
        """The problem members a client acts on."""
        return {"parameter": self.parameter}


def check_text(value: str, name: str) -> str:
    """``value`` unless it holds a NUL character or is longer than any landeco value."""
    if "\x00" in value:
        raise InvalidParameterError(name, "the text holds a NUL character (\\0)")
    if len(value) > MAX_TEXT:
        raise InvalidParameterError(name, f"the text is longer than {MAX_TEXT:,} characters")
    return value


def feature_number(value: str) -> int | None:
    """A feature id from a path: a positive whole number a ``bigint`` holds, else None.

    >>> feature_number("42"), feature_number("0"), feature_number("1e3"), feature_number(str(2**63))
    (42, None, None, None)
    """
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 < number <= BIGINT[1] else None


def finite_float(value: str | float | int, name: str) -> float:
    """A finite number from text or a number; ``NaN`` and infinities are refused."""
    try:
        number = float(check_text(value, name) if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameterError(name, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidParameterError(name, f"{value!r} is not a finite number")
    return number


def integer(value: str | int | float, name: str, lo: int = BIGINT[0], hi: int = BIGINT[1]) -> int:
    """A whole number between ``lo`` and ``hi`` from text or a number.

    >>> integer("42", "limit", 1, 100)
    42
    >>> integer("99999999999999999999", "offset")
    Traceback (most recent call last):
    ...
    layers.values.InvalidParameterError: offset: must be between -9223372036854775808 and 9223372036854775807
    """
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise ValueError
            number = int(value)
        elif isinstance(value, str):
            text = check_text(value, name).strip()
            if len(text) > 40:
                raise ValueError
            number = int(text, 10)
        else:
            number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameterError(name, f"{value!r} is not a whole number") from None
    if not lo <= number <= hi:
        raise InvalidParameterError(name, f"must be between {lo} and {hi}")
    return number


def iso_date(value: str | date, name: str) -> date:
    """A calendar date from ``YYYY-MM-DD`` (or a date)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(check_text(str(value), name).strip())
    except ValueError:
        raise InvalidParameterError(name, f"{value!r} is not a date (YYYY-MM-DD)") from None


def utc_date(moment: datetime) -> date:
    """The UTC calendar day of ``moment``; at the calendar's ends, the day as written.

    ``9999-12-31T23:59:59-01:00`` is past the last day Python holds once moved to UTC.
    """
    if moment.tzinfo is None:
        return moment.date()
    try:
        return moment.astimezone(UTC).date()
    except OverflowError:
        return moment.date()


def check_json(value: Any, name: str, depth: int = 0) -> None:
    """Refuse non-finite numbers, NUL characters, deep nesting and huge lists anywhere in ``value``."""
    if depth > MAX_DEPTH:
        raise InvalidParameterError(name, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidParameterError(name, f"{value!r} is not a finite number")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not BIGINT[0] <= value <= BIGINT[1]:
            raise InvalidParameterError(name, f"{value} is larger than any stored number")
    elif isinstance(value, str):
        check_text(value, name)
    elif isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            raise InvalidParameterError(name, f"more than {MAX_ITEMS:,} members")
        for key, item in value.items():
            check_text(str(key), name)
            check_json(item, f"{name}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS * 10:
            raise InvalidParameterError(name, f"more than {MAX_ITEMS * 10:,} items")
        for i, item in enumerate(value):
            check_json(item, f"{name}[{i}]", depth + 1)


class RequestModel(BaseModel):
    """Base of every request body: unknown members refused, every value checked first."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        check_json(data, cls.__name__)
        return data


@cache
def area_of_use(srid: int) -> tuple[float, float, float, float]:
    """The lon/lat box a coordinate system is meant for (west, south, east, north)."""
    from pyproj import CRS

    area = CRS.from_epsg(srid).area_of_use
    if area is None:
        return (-180.0, -90.0, 180.0, 90.0)
    return (area.west, area.south, area.east, area.north)


def check_lonlat_bounds(bounds: tuple[float, float, float, float], name: str, srid: int = 4326,
                        max_span: float | None = None) -> None:
    """Refuse a lon/lat box outside ``srid``'s area of use, or wider than ``max_span`` degrees.

    Checked before any transformation or buffer: PROJ and PostGIS fail, or worse, on
    coordinates a coordinate system was never meant for.
    """
    west, south, east, north = bounds
    if not all(math.isfinite(v) for v in bounds):
        raise InvalidParameterError(name, "the coordinates are not finite numbers")
    w, s, e, n = area_of_use(srid)
    margin = 0.5  # degrees: areas of use are drawn tight
    if west < w - margin or east > e + margin or south < s - margin or north > n + margin:
        raise InvalidParameterError(name, f"the geometry lies outside the area EPSG:{srid} is meant for "
                                    f"({w:g}, {s:g} – {e:g}, {n:g} in longitude/latitude)")
    if max_span is not None and max(east - west, north - south) > max_span:
        raise InvalidParameterError(name, f"the geometry spans more than {max_span:g} degrees")


def check_bounds(bounds: tuple[float, float, float, float], name: str, srid: int) -> None:
    """Refuse an (x, y) box in ``srid`` that lies outside the area ``srid`` is meant for."""
    if not all(math.isfinite(v) for v in bounds):
        raise InvalidParameterError(name, "the coordinates are not finite numbers")
    from pyproj import CRS, Transformer

    crs = CRS.from_epsg(srid)
    if crs.is_geographic:
        check_lonlat_bounds(bounds, name, srid)
        return
    to_lonlat = Transformer.from_crs(crs, 4326, always_xy=True)
    w, s, e, n = area_of_use(srid)
    # the area of use in the projection's own units: what a surveyor's coordinates must fall in
    x0, y0, x1, y1 = Transformer.from_crs(4326, crs, always_xy=True).transform_bounds(w, s, e, n)
    pad = 0.05 * max(x1 - x0, y1 - y0)
    if bounds[0] < x0 - pad or bounds[2] > x1 + pad or bounds[1] < y0 - pad or bounds[3] > y1 + pad:
        raise InvalidParameterError(name, f"the geometry lies outside the area EPSG:{srid} is meant for")
    lonlat = to_lonlat.transform_bounds(*bounds)
    if not all(math.isfinite(v) for v in lonlat):
        raise InvalidParameterError(name, f"the geometry cannot be placed on the earth in EPSG:{srid}")


def _no_constant(word: str) -> float:
    raise ValueError(f"{word} is not a JSON number")


def parse_json(text: str, name: str) -> Any:
    """A JSON document from text, checked like a request body (finite, shallow, no NUL)."""
    import json

    check_text(text, name)
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidParameterError(name, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidParameterError(name, f"not JSON ({exc})") from None
    check_json(value, name)
    return value
