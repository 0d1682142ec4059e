"""Items of a layer as GeoJSON built inside PostGIS: parameters, SQL, paging.

Every feature is one text row made by the database (``ST_AsGeoJSON`` and
``json_build_object``); Python only joins the rows, so no per-feature objects sit on the
hot path. The statements use psycopg placeholders (``%(name)s``) and run on a raw
psycopg connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

from layers.columns import (
    FeatureNotFoundError,
    InvalidBboxError,
    InvalidFieldValueError,
    UnknownPropertyError,
    field_value,
    json_value_sql,
    parse_sort,
)
from layers.errors import BadRequestError
from layers.history import asof_sql
from layers.model import Field, Layer, Measure
from layers.values import InvalidParameterError, check_bounds, finite_float, iso_date, utc_date

__all__ = [
    "CRS84",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SUPPORTED_CRS",
    "Crs",
    "FeatureNotFoundError",
    "InvalidParameterError",
    "ItemsQuery",
    "UnknownPropertyError",
    "UnsupportedCrsError",
    "count_sql",
    "feature_sql",
    "items_sql",
    "page_sql",
    "parse_bbox",
    "parse_crs",
    "parse_datetime",
    "parse_properties",
    "parse_sortby",
    "property_columns",
    "source_sql",
    "where_sql",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


class UnsupportedCrsError(BadRequestError):
    """A ``crs``, ``bbox-crs`` or ``filter-crs`` landeco does not offer."""

    code = "unsupported_crs"
    title = "Unsupported CRS"

    def __init__(self, parameter: str, value: str) -> None:
        offered = ", ".join(c.uri for c in SUPPORTED_CRS)
        super().__init__(f"{parameter}: {value!r} is not offered; use one of {offered}")
        self.parameter = parameter

    def extra(self) -> dict[str, object]:
        """The problem members a client acts on."""
        return {"parameter": self.parameter, "supported": [c.uri for c in SUPPORTED_CRS]}


# --- coordinate reference systems ------------------------------------------------------------

@dataclass(frozen=True)
class Crs:
    """A CRS landeco serves: its URI, EPSG code, axis order and output precision."""

    uri: str
    srid: int
    lat_first: bool
    digits: int

    def geometry_sql(self, column: str = "t.geom") -> str:
        """``column`` (stored in 4326, lon/lat) in this CRS and its axis order."""
        expr = column if self.srid == 4326 else f"ST_Transform({column}, {self.srid})"
        return f"ST_FlipCoordinates({expr})" if self.lat_first else expr

    def to_storage_sql(self, expr: str) -> str:
        """A geometry expression given in this CRS and axis order, as stored (4326, lon/lat)."""
        expr = f"ST_SetSRID({expr}, {self.srid})"
        if self.lat_first:
            expr = f"ST_FlipCoordinates({expr})"
        return expr if self.srid == 4326 else f"ST_Transform({expr}, 4326)"


CRS84 = Crs("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326, False, 8)
SUPPORTED_CRS = (
    CRS84,
    Crs("http://www.opengis.net/def/crs/EPSG/0/4326", 4326, True, 8),
    Crs("http://www.opengis.net/def/crs/EPSG/0/4490", 4490, True, 8),
    Crs("http://www.opengis.net/def/crs/EPSG/0/4545", 4545, True, 3),
)
_CRS_ALIASES = {
    "crs84": CRS84, "ogc:crs84": CRS84, "urn:ogc:def:crs:ogc:1.3:crs84": CRS84,
    "epsg:4326": SUPPORTED_CRS[1], "epsg:4490": SUPPORTED_CRS[2], "epsg:4545": SUPPORTED_CRS[3],
}


def parse_crs(value: str | None, parameter: str = "crs") -> Crs:
    """The CRS a ``crs``-like parameter names (URI, ``EPSG:n`` or ``[EPSG:n]``); CRS84 if absent."""
    if value is None or value == "":
        return CRS84
    text = value.strip().strip("<>[]").strip()
    for crs in SUPPORTED_CRS:
        if text == crs.uri or text.rstrip("/") == crs.uri.replace("http://", "https://"):
            return crs
    found = _CRS_ALIASES.get(text.lower())
    if found is None:
        m = re.fullmatch(r"urn:ogc:def:crs:epsg:[0-9.]*:(\d+)", text.lower())
        found = _CRS_ALIASES.get(f"epsg:{m.group(1)}") if m else None
    if found is None:
        raise UnsupportedCrsError(parameter, value)
    return found


# --- properties --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """A property of the layer's features, as the API names it and as SQL reads it."""

    name: str
    sql: str
    type: str  # text, integer, real, date, monthday
    field: Field | None = None
    measure: Measure | None = None  # a size the database keeps (read-only)


@cache
def property_columns(layer: Layer) -> dict[str, Column]:
    """Every property of ``layer``'s features, in the order a reader expects them (do not modify)."""
    cols = {f.name: Column(f.name, f"t.{f.name}", f.type, f) for f in layer.all_fields}
    for m in layer.stored_measures:
        cols[m.name] = Column(m.name, f"t.{m.name}", "real", measure=m)
    return cols


def parse_properties(value: str | None, layer: Layer) -> list[str] | None:
    """``properties=a,b``: the properties to return (None: all, []: none)."""
    if value is None:
        return None
    cols = property_columns(layer)
    names = [n.strip() for n in value.split(",") if n.strip()]
    for n in names:
        if n not in cols:
            raise UnknownPropertyError(n, layer.id, cols, "properties")
    return names


def parse_sortby(value: str | None, layer: Layer) -> list[tuple[str, bool]]:
    """``sortby=+a,-b`` (or ``a DESC``): (property, descending) pairs."""
    return parse_sort(value, [*property_columns(layer), "id"], "sortby", layer_id=layer.id)


# --- bbox and datetime -----------------------------------------------------------------------

def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``bbox=minx,miny,maxx,maxy`` (a 6-value 3D box keeps its horizontal part)."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise InvalidBboxError(f"bbox: {value!r} is not four comma-separated numbers")
    try:
        nums = [finite_float(v, "bbox") for v in parts]
    except BadRequestError as exc:
        raise InvalidBboxError(str(exc)) from None
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if nums[1] > nums[3]:
        raise InvalidBboxError("bbox: the lower edge is above the upper edge")
    return nums[0], nums[1], nums[2], nums[3]


def _instant(text: str) -> date | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    if len(text) == 10:
        return iso_date(text, "datetime")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidParameterError(
            "datetime", f"{text!r} is not an RFC 3339 date or date-time (e.g. 2022-07-01)") from None
    return utc_date(moment)


def parse_datetime(value: str | None) -> tuple[date | None, date | None] | None:
    """``datetime``: an instant or an interval (``a/b``, ``../b``, ``a/..``) as dates."""
    if value is None:
        return None
    parts = value.split("/")
    if len(parts) == 1:
        if parts[0].strip() in ("", ".."):
            raise InvalidParameterError("datetime", "an instant cannot be open")
        d = _instant(parts[0])
        return d, d
    if len(parts) != 2:
        raise InvalidParameterError("datetime", f"{value!r} is neither an instant nor an interval")
    start, end = _instant(parts[0]), _instant(parts[1])
    if start and end and start > end:
        raise InvalidParameterError("datetime", "the interval ends before it starts")
    return start, end


# --- the query -------------------------------------------------------------------------------

@dataclass
class ItemsQuery:
    """What an items request asks for, checked against the layer."""

    layer: Layer
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: Crs = CRS84
    crs: Crs = CRS84
    interval: tuple[date | None, date | None] | None = None
    equals: dict[str, str] = field(default_factory=dict)
    filter_sql: str | None = None
    filter_params: dict[str, Any] = field(default_factory=dict)
    sortby: list[tuple[str, bool]] = field(default_factory=list)
    properties: list[str] | None = None
    skip_geometry: bool = False
    #: the layer as it was at this time (layers.history), not as it is
    asof: datetime | None = None


def source_sql(q: ItemsQuery) -> str:
    """What the statements read as ``t``: the layer's table, or the layer as it was at ``asof``."""
    if q.asof is None:
        return q.layer.table
    return asof_sql(q.layer, "%(asof)s")


class TemporalNotSupportedError(BadRequestError):
    """``datetime`` on a layer without date fields."""

    code = "datetime_not_supported"
    title = "No temporal property"


def _equals_sql(q: ItemsQuery, params: dict[str, Any]) -> list[str]:
    cols = property_columns(q.layer)
    clauses = []
    for i, (name, value) in enumerate(q.equals.items()):
        col = cols.get(name)
        if col is None:
            raise UnknownPropertyError(name, q.layer.id, cols, name)
        key = f"eq{i}"
        clauses.append(f"{col.sql} = %({key})s")
        if col.field is not None:
            params[key] = field_value(col.field, value, layer_id=q.layer.id, parameter=name)
        else:  # a measure the database keeps (area, length)
            try:
                params[key] = finite_float(value, name)
            except BadRequestError as exc:
                raise InvalidFieldValueError(name, value, str(exc)) from None
    return clauses


def _temporal_sql(q: ItemsQuery, params: dict[str, Any]) -> list[str]:
    if q.interval is None:
        return []
    if not q.layer.temporal:
        raise TemporalNotSupportedError(f"{q.layer.id} has no date fields to compare datetime with")
    start_field, end_field = q.layer.temporal
    a, b = q.interval
    params["dt_a"], params["dt_b"] = a, b
    clauses = []
    if end_field is None:  # an instant per feature
        if a is not None:
            clauses.append(f"t.{start_field} >= %(dt_a)s")
        if b is not None:
            clauses.append(f"t.{start_field} <= %(dt_b)s")
        if not clauses:
            clauses.append(f"t.{start_field} IS NOT NULL")
        return clauses
    # an interval per feature, open where a date is missing: it intersects [a, b]
    if a is not None:
        clauses.append(f"(t.{end_field} IS NULL OR t.{end_field} >= %(dt_a)s)")
    if b is not None:
        clauses.append(f"(t.{start_field} IS NULL OR t.{start_field} <= %(dt_b)s)")
    return clauses


def _bbox_sql(q: ItemsQuery, params: dict[str, Any]) -> list[str]:
    if q.bbox is None:
        return []
    params.update(bx0=q.bbox[0], by0=q.bbox[1], bx1=q.bbox[2], by1=q.bbox[3])
    crs = q.bbox_crs
    x0, y0, x1, y1 = q.bbox
    try:
        check_bounds((y0, x0, y1, x1) if crs.lat_first else q.bbox, "bbox", crs.srid)
    except BadRequestError as exc:
        raise InvalidBboxError(str(exc)) from None
    if crs.srid == 4326 and not crs.lat_first:
        box = "ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s, 4326)"
    else:
        # densify the edges so a projected box stays a box after transformation
        env = "ST_Segmentize(ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s), " + (
            "1000)" if crs.srid == 4545 else "0.01)")
        box = crs.to_storage_sql(env)
    return [f"ST_Intersects(t.geom, {box})"]


def where_sql(q: ItemsQuery) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (with its leading keyword, or empty) and its parameters."""
    params: dict[str, Any] = {} if q.asof is None else {"asof": q.asof}
    clauses = _bbox_sql(q, params) + _temporal_sql(q, params) + _equals_sql(q, params)
    if q.filter_sql:
        clauses.append(f"({q.filter_sql})")
        params.update(q.filter_params)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _feature_expr(q: ItemsQuery) -> str:
    """One feature as GeoJSON text, built by the database."""
    cols = property_columns(q.layer)
    names = list(cols) if q.properties is None else q.properties
    pairs = ", ".join(f"'{n}', {json_value_sql(cols[n].sql, cols[n].type)}" for n in names)
    props = f"json_build_object({pairs})::text" if names else "'{}'"
    geometry = "'null'" if q.skip_geometry else f"ST_AsGeoJSON({q.crs.geometry_sql()}, {q.crs.digits}, 0)"
    return ("""'{"type":"Feature","id":' || t.id || ',"geometry":' || """ + geometry
            + """ || ',"properties":' || """ + props + " || '}'")


def _order_sql(q: ItemsQuery) -> str:
    cols = property_columns(q.layer)
    keys = [f"{cols[n].sql if n in cols else 't.id'} {'DESC' if d else 'ASC'}"
            + (" NULLS LAST" if not d else " NULLS FIRST") for n, d in q.sortby]
    return " ORDER BY " + ", ".join([*keys, "t.id"])


def items_sql(q: ItemsQuery) -> tuple[str, dict[str, Any]]:
    """The statement returning one GeoJSON feature text per row for the page asked for."""
    where, params = where_sql(q)
    params.update(limit=q.limit, offset=q.offset)
    sql = (f"SELECT {_feature_expr(q)} AS f FROM {source_sql(q)} t{where}{_order_sql(q)}"
           " LIMIT %(limit)s OFFSET %(offset)s")
    return sql, params


def count_sql(q: ItemsQuery) -> tuple[str, dict[str, Any]]:
    """How many features match (``numberMatched``)."""
    where, params = where_sql(q)
    return f"SELECT count(*) FROM {source_sql(q)} t{where}", params


def page_sql(q: ItemsQuery) -> tuple[str, dict[str, Any]]:
    """One statement, one row: ``numberReturned``, ``numberMatched`` and the features joined.

    The features are aggregated in the page's order (the aggregate reads the ordered,
    limited subquery as it comes). The count runs only when the page does not tell it: a
    short page that is not past the end says how many match, and PostgreSQL evaluates the
    uncorrelated sub-select lazily, so the CASE skips it.
    """
    page, params = items_sql(q)
    count, _ = count_sql(q)
    sql = (f"WITH page AS (SELECT count(*) AS n, coalesce(string_agg(f, ','), '') AS body FROM ({page}) s) "
           f"SELECT n, CASE WHEN n < %(limit)s AND (n > 0 OR %(offset)s = 0) THEN %(offset)s + n "
           f"ELSE ({count}) END, body FROM page")
    return sql, params


def feature_sql(q: ItemsQuery, feature_id: int) -> tuple[str, dict[str, Any]]:
    """The statement returning one feature's GeoJSON text."""
    params: dict[str, Any] = {"fid": feature_id} if q.asof is None else {"fid": feature_id, "asof": q.asof}
    return f"SELECT {_feature_expr(q)} FROM {source_sql(q)} t WHERE t.id = %(fid)s", params
