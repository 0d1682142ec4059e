"""What both query engines (OGC items and planners' ``/query``) say the same way about columns.

How a value given for a field is checked and typed, how a property is written as JSON by
the database, how sort keys are read, how a limit is checked, and the errors for each
fault, one code each. Codes merged here keep answering their former names in the problem's
``aliases`` member, so that a client written against the old code still finds it.

>>> parse_sort("-area_mu, code", {"area_mu", "code"}, "sortby")
[('area_mu', True), ('code', False)]
>>> parse_sort("area_mu DESC", {"area_mu"}, "sortby")
[('area_mu', True)]
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from layers.errors import BadRequestError, NotFoundError
from layers.model import Field
from layers.values import INT4, finite_float, integer, iso_date

__all__ = [
    "FeatureNotFoundError",
    "InvalidBboxError",
    "InvalidFieldValueError",
    "InvalidFilterError",
    "InvalidLimitError",
    "InvalidSortError",
    "UnknownPropertyError",
    "check_limit",
    "choice_code",
    "field_value",
    "json_value_sql",
    "parse_sort",
]


class UnknownPropertyError(BadRequestError):
    """A filter, sort, selection or grouping names a property the layer does not have."""

    code = "unknown_property"
    aliases = ("unknown_field",)
    title = "Unknown property"

    def __init__(self, name: str, layer_id: str, known: Collection[str], parameter: str,
                 position: int | None = None) -> None:
        super().__init__(f"{layer_id} has no property {name!r} (in {parameter}); it has: "
                         f"{', '.join(sorted(known))}")
        self.name, self.layer_id, self.known = name, layer_id, sorted(known)
        self.parameter, self.position = parameter, position

    def extra(self) -> dict[str, object]:
        """The property asked for, where, and the properties there are."""
        out: dict[str, object] = {"property": self.name, "field": self.name, "parameter": self.parameter,
                                  "layer": self.layer_id, "fields": self.known}
        if self.position is not None:
            out["position"] = self.position
        return out


class InvalidFieldValueError(BadRequestError):
    """A value given for a field is not of its type or not in its domain."""

    code = "invalid_field_value"
    aliases = ("invalid_parameter",)
    title = "Invalid field value"

    def __init__(self, name: str, value: object, detail: str, allowed: list[str] | None = None,
                 parameter: str | None = None, labels: dict[str, dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.field, self.value, self.allowed, self.labels = name, value, allowed, labels
        self.parameter = parameter or name

    def extra(self) -> dict[str, object]:
        """The field, the value, the allowed codes of a coded field and their words."""
        out: dict[str, object] = {"field": self.field, "value": str(self.value)[:200],
                                  "parameter": self.parameter}
        if self.allowed:
            out["allowed"] = self.allowed
        if self.labels:
            out["labels"] = self.labels
        return out


class InvalidBboxError(BadRequestError):
    """A bounding box that is not four numbers west, south, east, north (or not in its CRS)."""

    code = "invalid_bbox"
    aliases = ("invalid_parameter",)
    title = "Invalid bbox"

    def extra(self) -> dict[str, object]:
        """The parameter at fault."""
        return {"parameter": "bbox"}


class InvalidFilterError(BadRequestError):
    """The filter cannot be parsed or does not fit the layer."""

    code = "invalid_filter"
    title = "Invalid filter"

    def __init__(self, detail: str, position: int | None = None, line: int | None = None,
                 column: int | None = None, expected: list[str] | None = None) -> None:
        super().__init__(detail)
        self.position, self.line, self.column, self.expected = position, line, column, expected

    def extra(self) -> dict[str, object]:
        """The problem members a client acts on."""
        out: dict[str, object] = {"parameter": "filter"}
        if self.position is not None:
            out["position"] = self.position
        if self.line is not None:
            out["line"], out["column"] = self.line, self.column
        if self.expected:
            out["expected"] = self.expected
        return out


class InvalidSortError(BadRequestError):
    """A sort key that is not a property name with an optional ``+``/``-`` or ``ASC``/``DESC``."""

    code = "invalid_sort"
    title = "Invalid sort"


class InvalidLimitError(BadRequestError):
    """``limit`` is not a whole number within the route's range."""

    code = "invalid_limit"
    aliases = ("invalid_parameter",)
    title = "Invalid limit"

    def extra(self) -> dict[str, object]:
        """The parameter at fault."""
        return {"parameter": "limit"}


class FeatureNotFoundError(NotFoundError):
    """No feature of that id in the layer."""

    code = "feature_not_found"
    aliases = ("unknown_feature",)
    title = "Feature not found"


def field_value(f: Field, value: object, *, layer_id: str, parameter: str | None = None) -> object:
    """``value`` (text from a URL or a JSON value) as ``f``'s type, checked against its domain.

    >>> from layers.model import Choice, Field
    >>> purpose = Field("purpose", "text", "用途", "Purpose", choices=(Choice("solar", "光伏", "Solar"),))
    >>> field_value(purpose, "solar", layer_id="land_leases")
    'solar'
    >>> field_value(Field("planted_year", "integer", "年份", "Year"), "2021", layer_id="caragana_plots")
    2021
    """
    try:
        if f.type == "integer":
            return integer(value, f.name, *INT4)  # type: ignore[arg-type]
        if f.type == "real":
            if isinstance(value, bool):
                raise ValueError
            return finite_float(value, f.name)  # type: ignore[arg-type]
        if f.type == "date":
            return iso_date(value, f.name)  # type: ignore[arg-type]
    except (TypeError, ValueError, BadRequestError):
        raise InvalidFieldValueError(f.name, value, f"{value!r} is not a {f.type} value for field "
                                     f"{f.name!r}", parameter=parameter) from None
    if not isinstance(value, str):
        raise InvalidFieldValueError(f.name, value, f"field {f.name!r} takes text, not {value!r}",
                                     parameter=parameter)
    if f.choices:
        return choice_code(f, value, layer_id=layer_id, parameter=parameter)
    return value


def choice_code(f: Field, value: str, *, layer_id: str, parameter: str | None = None) -> str:
    """The code of a coded field's value given as its code or as a label (``光伏``, ``Solar``).

    People type what they read: the Chinese or English word for a value is taken for its
    code (English case-insensitively). Anything else is refused with the codes and their
    words, never answered with an empty result.

    >>> from layers.model import Choice, Field
    >>> purpose = Field("purpose", "text", "用途", "Purpose", choices=(Choice("solar", "光伏", "Solar"),))
    >>> choice_code(purpose, "光伏", layer_id="land_leases"), choice_code(purpose, "solar", layer_id="x")
    ('solar', 'solar')
    """
    text = value.strip()
    for c in f.choices:
        if text in (c.value, c.zh) or text.casefold() == c.en.casefold():
            return c.value
    words = "; ".join(f"{c.value} = {c.zh} / {c.en}" for c in f.choices)
    raise InvalidFieldValueError(f.name, value, f"{value!r} is not a value of {layer_id}.{f.name} "
                                 f"({f.zh}); it takes: {words}", allowed=list(f.values), parameter=parameter,
                                 labels={c.value: {"zh": c.zh, "en": c.en} for c in f.choices})


def json_value_sql(expr: str, type_: str) -> str:
    """A column as JSON, written by the database; a whole real number keeps its ``.0``.

    GDAL and QGIS guess a field's type from the first page: a rent of ``12000`` would make
    the field an integer and truncate ``12000.5`` on a later page.

    >>> json_value_sql("t.code", "text")
    't.code'
    """
    if type_ != "real":
        return expr
    return (f"CASE WHEN {expr} = trunc({expr}) AND abs({expr}) < 1e15 "
            f"THEN ({expr}::bigint::text || '.0')::json ELSE to_json({expr}) END")


def parse_sort(text: str | None, names: Collection[str], parameter: str, *, layer_id: str = "") -> list[
        tuple[str, bool]]:
    """Sort keys ``-a,+b,c`` or ``a DESC, b ASC`` as (name, descending) pairs, names checked."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("+-").strip()
        m = re.fullmatch(r"(\S+)\s+(ASC|DESC)", name, flags=re.IGNORECASE)
        if m:
            name, desc = m.group(1), m.group(2).upper() == "DESC"
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidSortError(f"bad sort key {part!r}: give property names, '-' for descending")
        if name not in names:
            raise UnknownPropertyError(name, layer_id, names, parameter)
        out.append((name, desc))
    return out


def check_limit(value: Any, *, default: int, maximum: int, clamp: bool = False) -> int:
    """A page size: ``default`` when absent; beyond ``maximum`` clamped or refused."""
    if value is None or value == "":
        return default
    try:
        number = integer(value, "limit")
    except BadRequestError:
        raise InvalidLimitError(f"limit: {value!r} is not a whole number") from None
    if number < 1 or (number > maximum and not clamp):
        raise InvalidLimitError(f"limit must be between 1 and {maximum:,}")
    return min(number, maximum)
