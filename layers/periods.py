"""Report periods: a year, a half-year, a quarter, or two dates, and the period before each.

Parsed strictly (``2022``, ``2022H1``, ``2022Q3``, ``2022-01-01..2022-06-30``): anything else
is a 400 ``invalid_period``, so that a typo never silently reports on another period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from layers.errors import BadRequestError

__all__ = ["InvalidPeriodError", "Period", "last_half_year", "parse_period", "period_between"]

Kind = Literal["year", "half", "quarter", "range"]
#: Years a report may be about (as the layers' year fields allow).
YEARS = (1990, 2100)
#: Longest range between two dates (days): ten years.
MAX_DAYS = 3660
_YEAR = re.compile(r"([0-9]{4})")
_HALF = re.compile(r"([0-9]{4})H([12])")
_QUARTER = re.compile(r"([0-9]{4})Q([1-4])")
_RANGE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\.\.([0-9]{4}-[0-9]{2}-[0-9]{2})")


class InvalidPeriodError(BadRequestError):
    """A period that is not ``YYYY``, ``YYYYH1|H2``, ``YYYYQ1-4`` or ``YYYY-MM-DD..YYYY-MM-DD``."""

    code = "invalid_period"
    title = "Invalid report period"

    def __init__(self, detail: str, period: str | None = None) -> None:
        super().__init__(detail)
        self.period = period

    def extra(self) -> dict[str, object]:
        """The period asked for and the forms accepted."""
        return {
            "period": self.period,
            "accepted": ["2022", "2022H1", "2022H2", "2022Q3", "2022-01-01..2022-06-30"],
        }


def _year(text: str, whole: str) -> int:
    year = int(text)
    if not YEARS[0] <= year <= YEARS[1]:
        raise InvalidPeriodError(f"year {year} is outside {YEARS[0]}–{YEARS[1]}", whole)
    return year


@dataclass(frozen=True)
class Period:
    """Days ``start`` to ``end`` (both included) and what kind of period they make."""

    key: str
    kind: Kind
    start: date
    end: date

    @property
    def whole_years(self) -> bool:
        """Whether the period is whole calendar years (year-precise figures fit it exactly)."""
        return self.start == date(self.start.year, 1, 1) and self.end == date(self.end.year, 12, 31)

    @property
    def years(self) -> tuple[int, int]:
        """The calendar years the period touches (first, last)."""
        return self.start.year, self.end.year

    def previous(self) -> Period:
        """The period just before, of the same kind and length (H1 → the year before's H2).

        Built without the bounds a request is checked against: the period before 1990 is 1989.
        """
        y = self.start.year
        if self.kind == "year":
            return Period(str(y - 1), "year", date(y - 1, 1, 1), date(y - 1, 12, 31))
        if self.kind == "half":
            if self.start.month == 1:
                return Period(f"{y - 1}H2", "half", date(y - 1, 7, 1), date(y - 1, 12, 31))
            return Period(f"{y}H1", "half", date(y, 1, 1), date(y, 6, 30))
        if self.kind == "quarter":
            q = (self.start.month - 1) // 3 + 1
            y, q = (y - 1, 4) if q == 1 else (y, q - 1)
            start = date(y, 3 * q - 2, 1)
            end = date(y, 12, 31) if q == 4 else date(y, 3 * q + 1, 1) - timedelta(days=1)
            return Period(f"{y}Q{q}", "quarter", start, end)
        days = (self.end - self.start).days
        end = self.start - timedelta(days=1)
        start = end - timedelta(days=days)
        return Period(f"{start.isoformat()}..{end.isoformat()}", "range", start, end)

    def label(self, lang: str = "zh") -> str:
        """``2022年上半年`` / ``2022 H1``."""
        y = self.start.year
        en = lang == "en"
        if self.kind == "year":
            return str(y) if en else f"{y}年"
        if self.kind == "half":
            first = self.start.month == 1
            return f"{y} H{1 if first else 2}" if en else f"{y}年{'上' if first else '下'}半年"
        if self.kind == "quarter":
            q = (self.start.month - 1) // 3 + 1
            return f"{y} Q{q}" if en else f"{y}年第{'一二三四'[q - 1]}季度"
        return (
            f"{self.start.isoformat()} – {self.end.isoformat()}"
            if en
            else f"{self.start.isoformat()}至{self.end.isoformat()}"
        )


def last_half_year(day: date) -> Period:
    """The last half-year that ended before ``day`` (the one a half-year work report is about)."""
    return parse_period(f"{day.year - 1}H2" if day.month <= 6 else f"{day.year}H1")


def period_between(start: date, end: date) -> Period:
    """The days ``start`` to ``end``, both included (``--from``/``--to``)."""
    key = f"{start.isoformat()}..{end.isoformat()}"
    if end < start:
        raise InvalidPeriodError(f"the period ends ({end}) before it starts ({start})", key)
    if (end - start).days > MAX_DAYS:
        raise InvalidPeriodError(f"a period is at most {MAX_DAYS} days", key)
    for d in (start, end):
        _year(str(d.year), key)
    return Period(key, "range", start, end)


def parse_period(text: str) -> Period:
    """``2022`` · ``2022H1`` · ``2022Q3`` · ``2022-01-01..2022-06-30`` (nothing else)."""
    if not isinstance(text, str) or len(text) > 40:
        raise InvalidPeriodError("a period is 2022, 2022H1, 2022Q3 or 2022-01-01..2022-06-30", str(text)[:40])
    whole = text
    if m := _YEAR.fullmatch(text):
        y = _year(m[1], whole)
        return Period(text, "year", date(y, 1, 1), date(y, 12, 31))
    if m := _HALF.fullmatch(text):
        y = _year(m[1], whole)
        first = m[2] == "1"
        return Period(
            text,
            "half",
            date(y, 1, 1) if first else date(y, 7, 1),
            date(y, 6, 30) if first else date(y, 12, 31),
        )
    if m := _QUARTER.fullmatch(text):
        y, q = _year(m[1], whole), int(m[2])
        start = date(y, 3 * q - 2, 1)
        end = date(y + 1, 1, 1) - timedelta(days=1) if q == 4 else date(y, 3 * q + 1, 1) - timedelta(days=1)
        return Period(text, "quarter", start, end)
    if m := _RANGE.fullmatch(text):
        try:
            start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        except ValueError:
            raise InvalidPeriodError(f"{text!r} holds a day that does not exist", whole) from None
        return period_between(start, end)
    raise InvalidPeriodError(
        f"{text!r} is not a period: give 2022, 2022H1, 2022Q3 or 2022-01-01..2022-06-30", whole
    )
