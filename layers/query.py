"""Planners' queries: features of one or more layers by size, place and attributes, with totals.

The answer is built in PostGIS, one statement per layer, so the API only passes text on.
The size filter compares the stored ``area_mu`` (btree-indexed); a place query finds
candidates with ``ST_Intersects`` (GiST) and clips only those that the place does not
wholly cover (``ST_Covers(place, feature)``, i.e. the feature ``ST_CoveredBy`` the place: put
this way round PostGIS prepares the place once, 6× faster). Clipped areas are ellipsoidal
(``ST_Area(ST_Intersection(...)::geography)``), as every area in landeco.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import shapely
import sqlalchemy as sa
from pydantic import ConfigDict
from pydantic import Field as PField
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gis.area import M2_PER_MU, to_m2
from layers.columns import (
    InvalidBboxError,
    InvalidFieldValueError,
    InvalidLimitError,
    InvalidSortError,
    UnknownPropertyError,
    check_limit,
    field_value,
    json_value_sql,
    parse_sort,
)
from layers.errors import BadRequestError, UnknownVillageError
from layers.model import Field, Layer
from layers.registry import get_layer
from layers.values import RequestModel, check_lonlat_bounds

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "AreaRange",
    "InvalidAreaError",
    "InvalidBboxError",
    "InvalidBufferError",
    "InvalidFieldValueError",
    "InvalidGeometryError",
    "InvalidLayersError",
    "InvalidLimitError",
    "InvalidPlaceError",
    "InvalidSortError",
    "LayerResult",
    "Place",
    "QueryResult",
    "QuerySpec",
    "UnknownPropertyError",
    "category_field",
    "compile_query",
    "feature_collection",
    "rows_sql",
    "run_query",
    "sql_column",
    "subtotals",
]

#: Features answered per layer when the request gives no ``limit`` (totals count them all).
DEFAULT_LIMIT = 1000
#: Most features one JSON answer carries per layer; exports have no limit.
MAX_LIMIT = 50_000
#: Deepest page: beyond it, narrow the query (or export a file, which holds every match).
MAX_OFFSET = 10_000_000
_PRECISION = 7  # decimals of GeoJSON coordinates: about 1 cm
#: Most vertices a place geometry may have, and the widest (degrees) a buffered place may be.
MAX_PLACE_VERTICES = 100_000
MAX_BUFFERED_SPAN = 10.0
_MU = repr(M2_PER_MU)


# --- the request -------------------------------------------------------------------------

class AreaRange(RequestModel):
    """Feature area between ``min`` and ``max`` (inclusive) in ``unit``."""

    min: float | None = None
    max: float | None = None
    unit: Literal["mu", "ha", "m2"] = "mu"


class Place(RequestModel):
    """Where: village codes (or names), a GeoJSON geometry, or a bbox (lon/lat)."""

    villages: list[str] | None = None
    geometry: dict[str, Any] | None = None
    bbox: list[float] | None = None


class QuerySpec(RequestModel):
    """A planner's question: which features of these layers, how large, where, with what."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"layers": ["land_leases"], "area": {"min": 500, "unit": "mu"}, "sort": "-area_mu"},
        {"layers": ["caragana_plots", "land_leases"], "place": {"villages": ["特布德嘎查"]},
         "where": {"status": "active"}},
        {"layers": ["land_leases"], "place": {"geometry": {"type": "LineString",
                                                           "coordinates": [[107.0, 38.1], [107.4, 38.3]]}},
         "buffer_m": 1000},
    ]})
    layers: list[str] = PField(description="layer ids, e.g. land_leases, caragana_plots")
    area: AreaRange | None = PField(None, description="feature area range (whole feature, not clipped)")
    place: Place | None = PField(None, description="villages, a GeoJSON geometry, or a bbox (lon/lat)")
    buffer_m: float | None = PField(None, description="widen the place by this many metres (geodesic)")
    where: dict[str, Any] = PField({}, description="field: value or [values] (equality / IN)")
    sort: str | None = PField(None, description="fields, '-' for descending, e.g. -area_inside_mu")
    limit: int | None = PField(None, description=f"features per layer (default {DEFAULT_LIMIT}; "
                               "files: every match)")
    offset: int = PField(0, ge=0, le=MAX_OFFSET, description="features of each layer to skip (paging: "
                         "follow the answer's `next` link)")
    asof: str | None = PField(None, description="the layers as they were at this RFC 3339 time "
                              "(e.g. 2026-11-30T08:00:00+08:00), from their history")


# --- errors --------------------------------------------------------------------------------

class InvalidLayersError(BadRequestError):
    """No layer named, or a layer without area."""

    code = "invalid_layers"
    title = "Invalid layers"


class InvalidAreaError(BadRequestError):
    """The area range is negative or empty."""

    code = "invalid_area"
    title = "Invalid area range"


class InvalidGeometryError(BadRequestError):
    """The place geometry is not valid GeoJSON, not valid, or not in lon/lat."""

    code = "invalid_geometry"
    title = "Invalid geometry"

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason

    def extra(self) -> dict[str, object]:
        """Why GEOS finds the geometry invalid, and where."""
        return {"reason": self.reason} if self.reason else {}


class InvalidPlaceError(BadRequestError):
    """The place gives none or more than one of villages, geometry, bbox, or has no area."""

    code = "invalid_place"
    title = "Invalid place"


class InvalidBufferError(BadRequestError):
    """The buffer is negative, too large, or given without a place."""

    code = "invalid_buffer"
    title = "Invalid buffer"


# --- validation and SQL --------------------------------------------------------------------

def _place_geometry(geojson: dict[str, Any]) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry, Feature or FeatureCollection (lon/lat)."""
    try:
        kind = geojson.get("type")
        if kind == "Feature":
            geom = shape(geojson["geometry"])
        elif kind == "FeatureCollection":
            geom = shapely.union_all([shape(f["geometry"]) for f in geojson["features"]])
        else:
            geom = shape(geojson)
    except Exception as exc:  # shapely raises several kinds for malformed GeoJSON
        raise InvalidGeometryError(f"place.geometry is not a GeoJSON geometry: {exc}") from None
    if geom.is_empty:
        raise InvalidGeometryError("place.geometry is empty")
    if not geom.is_valid:
        raise InvalidGeometryError("place.geometry is not a valid geometry (self-intersecting, "
                                   "unclosed or with a wrongly placed hole)",
                                   reason=shapely.is_valid_reason(geom))
    w, s, e, n = geom.bounds
    if w < -180 or e > 180 or s < -90 or n > 90:
        raise InvalidGeometryError("place.geometry must be in longitude/latitude (EPSG:4326 or "
                                   "CGCS2000 EPSG:4490), not projected metres")
    if shapely.get_num_coordinates(geom) > MAX_PLACE_VERTICES:
        raise InvalidGeometryError(f"place.geometry has more than {MAX_PLACE_VERTICES:,} vertices")
    return shapely.force_2d(geom)


def _field(layer: Layer, name: str, parameter: str = "where") -> Field:
    try:
        return layer.get_field(name)
    except KeyError:
        raise UnknownPropertyError(name, layer.id, [f.name for f in layer.all_fields], parameter) from None


def sql_column(layer: Layer, name: str) -> str:
    """A column name checked against the registry (identifiers never come from the request)."""
    if name == "id" or name in {m.name for m in layer.stored_measures}:
        return name
    return _field(layer, name, "sort").name


@dataclass(frozen=True)
class Compiled:
    """One layer's statement: the ``kept`` rows (CTEs) and their parameters."""

    layer: Layer
    ctes: str
    params: dict[str, Any]
    order: str
    limit: int | None
    clipped: bool
    offset: int = 0


def _resolve_villages(conn: sa.Connection, names: list[str]) -> list[str]:
    """Village codes for codes or names; :class:`UnknownVillageError` for the first unknown."""
    rows = conn.execute(sa.text("SELECT code, name FROM villages WHERE code = ANY(:v) OR name = ANY(:v)"),
                        {"v": names}).all()
    codes = []
    for wanted in names:
        match = next((c for c, n in rows if wanted in (c, n)), None)
        if match is None:
            raise UnknownVillageError(wanted)
        codes.append(match)
    return sorted(set(codes))


def _place_sql(conn: sa.Connection, spec: QuerySpec, params: dict[str, Any]) -> str | None:
    """The SQL expression of the place (buffered), or None when the query has no place."""
    place = spec.place
    if spec.buffer_m is not None and (spec.buffer_m < 0 or spec.buffer_m > 100_000):
        raise InvalidBufferError("buffer_m must be between 0 and 100000 metres")
    if place is None:
        if spec.buffer_m:
            raise InvalidBufferError("buffer_m needs a place to buffer")
        return None
    given = [k for k in ("villages", "geometry", "bbox") if getattr(place, k) is not None]
    if len(given) != 1:
        raise InvalidPlaceError("place takes exactly one of villages, geometry, bbox")
    if place.villages is not None:
        if not place.villages:
            raise InvalidPlaceError("place.villages is empty")
        params["place_villages"] = _resolve_villages(conn, place.villages)
        expr = "(SELECT ST_Union(geom) FROM villages WHERE code = ANY(%(place_villages)s))"
    elif place.bbox is not None:
        b = place.bbox
        if len(b) != 4 or not (-180 <= b[0] < b[2] <= 180 and -90 <= b[1] < b[3] <= 90):
            raise InvalidBboxError("bbox is [west, south, east, north] in lon/lat, west < east, "
                                   "south < north")
        params.update(bw=b[0], bs=b[1], be=b[2], bn=b[3])
        expr = "ST_MakeEnvelope(%(bw)s, %(bs)s, %(be)s, %(bn)s, 4326)"
    else:
        geom = _place_geometry(place.geometry or {})
        if shapely.area(geom) == 0 and not spec.buffer_m:
            raise InvalidPlaceError("a point or line place needs buffer_m to enclose an area")
        params["place_wkt"] = geom.wkt
        expr = "ST_GeomFromText(%(place_wkt)s, 4326)"
    if spec.buffer_m:
        if place.geometry is not None or place.bbox is not None:
            # a geodesic buffer is drawn in a local projection: a place the size of a continent
            # has none, and PostGIS fails on it
            bounds = place.bbox if place.bbox is not None else list(_place_geometry(place.geometry).bounds)
            try:
                check_lonlat_bounds(tuple(bounds), "place", max_span=MAX_BUFFERED_SPAN)
            except BadRequestError as exc:
                raise InvalidPlaceError(f"{exc} (a buffered place spans at most "
                                        f"{MAX_BUFFERED_SPAN:g} degrees)") from None
        params["buffer_m"] = spec.buffer_m
        expr = f"ST_Buffer(({expr})::geography, %(buffer_m)s)::geometry"
    return expr


def _order(layer: Layer, sort: str | None, clipped: bool) -> str:
    names = [*(f.name for f in layer.all_fields), "id", *(m.name for m in layer.stored_measures),
             layer.inside_name]
    keys = []
    for name, desc in parse_sort(sort, names, "sort", layer_id=layer.id):
        if name == layer.inside_name:
            if not clipped:
                raise InvalidSortError(f"{name} is only known for a place query")
            col = "counted"
        else:
            col = sql_column(layer, name)
        keys.append(f"{col} {'DESC' if desc else 'ASC'} NULLS LAST")
    return ", ".join([*keys, "id"])


def compile_query(conn: sa.Connection, spec: QuerySpec, *, for_export: bool = False) -> list[Compiled]:
    """Check ``spec`` and build one statement per layer; raise a domain error for bad input."""
    if not spec.layers:
        raise InvalidLayersError("layers is empty: name at least one layer")
    layers = [get_layer(name) for name in dict.fromkeys(spec.layers)]
    limit = None if spec.limit is None and for_export else check_limit(
        spec.limit, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    base: dict[str, Any] = {}
    conds = []
    if spec.area is not None:
        a = spec.area
        for v in (a.min, a.max):
            if v is not None and v < 0:
                raise InvalidAreaError("area.min and area.max must not be negative")
        if a.min is not None and a.max is not None and a.min > a.max:
            raise InvalidAreaError("area.min is larger than area.max")
        if a.min is not None:
            base["area_min"] = to_m2(a.min, a.unit) / M2_PER_MU
            conds.append("t.area_mu >= %(area_min)s")
        if a.max is not None:
            base["area_max"] = to_m2(a.max, a.unit) / M2_PER_MU
            conds.append("t.area_mu <= %(area_max)s")
    place = _place_sql(conn, spec, base)
    if spec.asof is not None:
        from layers.history import parse_asof

        base["asof"] = parse_asof(spec.asof)
    out = []
    for layer in layers:
        size = layer.size
        if size is None:
            raise InvalidLayersError(f"layer {layer.id!r} has no size to query")
        if conds and not layer.is_polygonal:
            raise InvalidAreaError(f"layer {layer.id!r} is made of lines: it has no area to filter by; "
                                   "leave out area for it")
        params = dict(base)
        where = list(conds)
        for i, (name, value) in enumerate(spec.where.items()):
            f = _field(layer, name)
            values = value if isinstance(value, list) else [value]
            if value is None or values == [None]:
                where.append(f"t.{f.name} IS NULL")
                continue
            if f.name == "village_code" and all(isinstance(v, str) for v in values):
                # a village is asked for by the name staff read as well as by its code
                params[f"w{i}"] = _resolve_villages(conn, [v.strip() for v in values])
            else:
                params[f"w{i}"] = [field_value(f, v, layer_id=layer.id, parameter=f"where.{name}")
                                   for v in values]
            where.append(f"t.{f.name} = ANY(%(w{i})s)")
        cols = ", ".join([*(f"t.{f.name}" for f in layer.all_fields),
                          *(f"t.{m.name}" for m in layer.stored_measures)])
        cond = " AND ".join(where) or "TRUE"
        source = layer.table
        if spec.asof is not None:  # the layer as it was: its rows then, from the history
            from layers.history import asof_sql

            source = asof_sql(layer)
        if place is None:
            ctes = (f"kept AS (SELECT t.id, {cols}, t.geom, {size.sql} AS counted "
                    f"FROM {source} t WHERE {cond})")
        else:
            # the part inside the place: area in 亩 of polygons, length in m of lines
            inside = ("ST_Length(ST_CollectionExtract(ST_Intersection(t.geom, place.g), 2)::geography)"
                      if layer.is_linear else
                      f"ST_Area(ST_CollectionExtract(ST_Intersection(t.geom, place.g), 3)::geography)"
                      f" / {_MU}")
            ctes = (
                f"place AS MATERIALIZED (SELECT {place} AS g), "
                f"hits AS MATERIALIZED (SELECT t.id, {cols}, t.geom, "
                f"CASE WHEN ST_Covers(place.g, t.geom) THEN {size.sql} ELSE {inside} "
                f"END AS counted FROM {source} t, place "
                f"WHERE ST_Intersects(t.geom, place.g) AND {cond}), "
                f"kept AS (SELECT * FROM hits WHERE counted > 0)")
        out.append(Compiled(layer, ctes, params, _order(layer, spec.sort, place is not None), limit,
                            place is not None, 0 if for_export else spec.offset))
    return out


def json_sql(c: Compiled) -> str:
    """The statement answering one layer: totals, and the features (limited) as GeoJSON text."""
    props = [f"'layer', '{c.layer.id}'", "'id', id"]
    props += [f"'{f.name}', {json_value_sql(f.name, f.type)}" for f in c.layer.all_fields]
    props += [f"'{m.name}', {json_value_sql(m.name, 'real')}" for m in c.layer.stored_measures]
    if c.clipped:
        props.append(f"'{c.layer.inside_name}', {json_value_sql('counted', 'real')}")
    limit = f" LIMIT {int(c.limit)}" if c.limit is not None else ""
    limit += f" OFFSET {int(c.offset)}" if c.offset else ""
    return (
        f"WITH {c.ctes}, "
        f"page AS (SELECT * FROM kept ORDER BY {c.order}{limit}) "
        f"SELECT (SELECT count(*) FROM kept) AS n, (SELECT coalesce(sum(counted), 0) FROM kept) AS mu, "
        f"(SELECT count(*) FROM page) AS returned, "
        f"(SELECT array_agg(id ORDER BY {c.order}) FROM page) AS ids, "
        f"(SELECT coalesce(string_agg(json_build_object('type', 'Feature', 'id', '{c.layer.id}.' || id, "
        f"'geometry', ST_AsGeoJSON(geom, {_PRECISION})::json, "
        f"'properties', json_build_object({', '.join(props)}))::text, ',' ORDER BY {c.order}), '') "
        f"FROM page) AS features")


@dataclass
class LayerResult:
    """One layer's answer: totals over every match, the returned features as GeoJSON text."""

    layer: Layer
    count: int
    size: float  # area in 亩, or length in m for a line layer
    returned: int
    ids: list[int]
    features: str
    clipped: bool

    def summary(self) -> dict[str, Any]:
        """Count and total area (亩, 万亩, ha) or length (m, 万米); clipped to the place for a place query."""
        sizes = _lengths(self.size) if self.layer.is_linear else _areas(self.size)
        return {"title_zh": self.layer.zh, "title_en": self.layer.en, "count": self.count,
                "returned": self.returned, **sizes, "clipped": self.clipped}


def _areas(mu: float) -> dict[str, float]:
    return {"area_mu": round(mu, 4), "area_wan_mu": round(mu / 10_000, 6), "area_ha": round(mu / 15, 4)}


def _lengths(m: float) -> dict[str, float]:
    return {"length_m": round(m, 2), "length_wan_m": round(m / 10_000, 6)}


@dataclass
class QueryResult:
    """Every layer's answer, in the order asked."""

    layers: list[LayerResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Per-layer summaries and the total over all layers."""
        mu = sum(r.size for r in self.layers if not r.layer.is_linear)
        total = {"count": sum(r.count for r in self.layers), **_areas(mu)}
        if any(r.layer.is_linear for r in self.layers):
            total.update(_lengths(sum(r.size for r in self.layers if r.layer.is_linear)))
        return {"layers": {r.layer.id: r.summary() for r in self.layers}, "total": total}


def run_query(conn: sa.Connection, spec: QuerySpec) -> QueryResult:
    """Answer ``spec`` from the database (features limited; totals over every match)."""
    result = QueryResult()
    for c in compile_query(conn, spec):
        row = conn.exec_driver_sql(json_sql(c), c.params).one()
        result.layers.append(LayerResult(c.layer, row.n, float(row.mu), row.returned, list(row.ids or []),
                                         row.features, c.clipped))
    return result


def category_field(layer: Layer) -> Field | None:
    """The field a layer's answers are subtotalled by: its first coded field (purpose, method)."""
    coded = [f for f in layer.fields if f.choices]
    return coded[0] if coded else None


def subtotals(conn: sa.Connection, spec: QuerySpec, lang: str = "zh") -> dict[str, dict[str, Any]]:
    """Per layer, count and size of every match by village (name and code) and by category.

    Over every match, not only the features a page shows; sizes are clipped for a place query
    as the totals are. Categories are given by their words in ``lang``.
    """
    out: dict[str, dict[str, Any]] = {}
    for c in compile_query(conn, spec):
        entry: dict[str, Any] = {"villages": [], "categories": [], "field": None}
        if c.layer.has_village:
            rows = conn.exec_driver_sql(
                f"WITH {c.ctes} SELECT k.village_code, v.name, count(*), coalesce(sum(k.counted), 0) "
                f"FROM kept k LEFT JOIN villages v ON v.code = k.village_code GROUP BY 1, 2 ORDER BY 1",
                c.params).all()
            entry["villages"] = [{"code": code, "name": name, "count": n, "size": float(size)}
                                 for code, name, n, size in rows]
        f = category_field(c.layer)
        if f is not None:
            rows = conn.exec_driver_sql(
                f"WITH {c.ctes} SELECT {f.name}, count(*), coalesce(sum(counted), 0) FROM kept "
                f"GROUP BY 1 ORDER BY 3 DESC", c.params).all()
            words = {ch.value: (ch.en if lang == "en" else ch.zh) for ch in f.choices}
            entry["field"] = f.label(lang)
            entry["categories"] = [{"code": v, "label": words.get(v, v or ""), "count": n,
                                    "size": float(size)} for v, n, size in rows]
        out[c.layer.id] = entry
    return out


def next_page(spec: QuerySpec, result: QueryResult) -> dict[str, Any] | None:
    """The body asking for the next page, when a layer has matches beyond this one; else None.

    Every layer moves on by the page size; a layer already exhausted answers no features.
    """
    size = check_limit(spec.limit, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    if not any(r.count > spec.offset + size for r in result.layers) or spec.offset + size > MAX_OFFSET:
        return None
    return {**spec.model_dump(mode="json", exclude_none=True), "offset": spec.offset + size}


def feature_collection(result: QueryResult, links: list[dict[str, Any]] | None = None) -> str:
    """The GeoJSON FeatureCollection text with its ``summary`` (features passed on unparsed)."""
    features = ",".join(r.features for r in result.layers if r.features)
    tail = {"summary": result.summary(), "links": links or []}
    return ('{"type": "FeatureCollection", "features": [' + features + "], "
            + json.dumps(tail, ensure_ascii=False)[1:])


def rows_sql(c: Compiled) -> str:
    """The statement giving every matching feature (no default limit), geometry as WKB, for files."""
    sizes = [m.name for m in c.layer.stored_measures]
    cols = ", ".join(["id", *(f.name for f in c.layer.all_fields), *sizes])
    inside = f", counted AS {c.layer.inside_name}" if c.clipped else ""
    limit = f" LIMIT {int(c.limit)}" if c.limit is not None else ""
    return (f"WITH {c.ctes} SELECT {cols}{inside}, ST_AsBinary(geom) AS geometry FROM kept "
            f"ORDER BY {c.order}{limit}")
