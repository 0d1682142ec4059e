"""Turning surveyors' cell values into typed values: dates, numbers, month-days, text.

Surveyors' tables write dates as 2022-05-01, 2022/5/1, 2022.5.1, 2022年5月1日 or
20220501, and numbers with thousands separators (1,234.5 or full-width １２３). Each
function returns the typed value or raises ``ValueError`` with a message a surveyor
understands; ``None`` and blank text are ``None``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache

import numpy as np

__all__ = ["coerce_array", "to_date", "to_integer", "to_monthday", "to_real", "to_text"]

_FULL_WIDTH = str.maketrans("０１２３４５６７８９，．－／：", "0123456789,.-/:")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_MONTHDAY = re.compile(r"^(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$|^[+-]?\.\d+$")


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.datetime64) and np.isnat(value):
        return True
    return isinstance(value, str) and not value.strip()


def to_text(value: object) -> str | None:
    """Text, stripped; whole floats lose their ``.0`` (a DBF numeric code ``101.0``)."""
    if _blank(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.datetime64):
        return str(value)
    return str(value).strip()


@lru_cache(maxsize=4096)
def _parse_date(text: str) -> dt.date:
    t = text.strip().translate(_FULL_WIDTH)
    m = _DATE.match(t) or _COMPACT.match(t)
    if not m:
        raise ValueError(f"{text!r} is not a date (write 2022-05-01, 2022/5/1, 2022年5月1日 or 20220501)")
    y, mo, d = (int(g) for g in m.groups()[:3])
    try:
        return dt.date(y, mo, d)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the calendar") from None


def to_date(value: object) -> dt.date | None:
    """A date from a date, datetime, numpy datetime, text or 8-digit number."""
    if _blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]").item()
    if isinstance(value, int | float | np.integer | np.floating):
        if float(value).is_integer():
            return _parse_date(str(int(value)))
        raise ValueError(f"{value!r} is not a date")
    return _parse_date(str(value))


def to_monthday(value: object) -> str | None:
    """A day of the year as ``MM-DD`` from 4-1, 04-01, 4/1 or 4月1日."""
    if _blank(value):
        return None
    m = _MONTHDAY.match(str(value).strip().translate(_FULL_WIDTH))
    if not m:
        raise ValueError(f"{value!r} is not a day of the year (write 04-01 or 4月1日)")
    mo, d = int(m.group(1)), int(m.group(2))
    try:
        dt.date(2000, mo, d)
    except ValueError:
        raise ValueError(f"{value!r} is not a day of the year") from None
    return f"{mo:02d}-{d:02d}"


def to_real(value: object) -> float | None:
    """A number from a number or text such as ``1,234.5``, ``１２３`` or ``12.5%``-free text."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
    else:
        t = str(value).strip().translate(_FULL_WIDTH).replace(" ", "")
        if not _NUMBER.match(t):
            raise ValueError(f"{value!r} is not a number")
        v = float(t.replace(",", ""))
    if not math.isfinite(v):
        raise ValueError(f"{value!r} is not a finite number")
    return v


def to_integer(value: object) -> int | None:
    """A whole number (``1,200`` and ``1200.0`` are fine, ``12.5`` is not)."""
    v = to_real(value)
    if v is None:
        return None
    if not v.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(v)


_SCALAR = {"text": to_text, "integer": to_integer, "real": to_real, "date": to_date, "monthday": to_monthday}


def coerce_array(values: np.ndarray, kind: str) -> tuple[list[object], dict[int, str]]:
    """A column coerced to ``kind`` (text, integer, real, date, monthday), and errors by row.

    Columns GDAL already typed (numbers, dates) and plain text take vectorised paths; the
    per-value parsers run only on what needs parsing.
    """
    errors: dict[int, str] = {}
    dtype = values.dtype
    if kind in ("integer", "real") and dtype.kind in "iu":
        return values.tolist(), errors
    if kind in ("integer", "real") and dtype.kind == "f":
        missing = ~np.isfinite(values)
        if kind == "integer":
            for i in np.flatnonzero(~missing & (values != np.round(values))):
                errors[int(i)] = f"{values[i]!r} is not a whole number"
            pairs = zip(values.tolist(), missing.tolist(), strict=True)
            return [None if m else int(v) for v, m in pairs], errors
        return [None if m else v for v, m in zip(values.tolist(), missing.tolist(), strict=True)], errors
    if kind == "date" and dtype.kind == "M":
        days = values.astype("datetime64[D]")
        return days.tolist(), errors
    if kind == "text" and dtype.kind == "O":
        out: list[object] = []
        for v in values.tolist():
            if type(v) is str:
                out.append(v.strip() or None)
            else:
                out.append(to_text(v))
        return out, errors
    convert = _SCALAR[kind]
    out = []
    for i, v in enumerate(values.tolist() if dtype.kind != "M" else values):
        try:
            out.append(convert(v))
        except ValueError as exc:
            errors[i] = str(exc)
            out.append(None)
    return out, errors
