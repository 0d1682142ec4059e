"""CQL2 filters (text and JSON) to SQL on a layer's columns, parsed by pygeofilter.

pygeofilter parses; this module walks its syntax tree and writes SQL with bound
parameters, accepting only the layer's queryables, so a filter can never name a column
or inject SQL. ``S_DWITHIN`` and quotes doubled inside strings (neither in pygeofilter's CQL2 text
grammar) are added to the grammar here. Every mistake is a :class:`InvalidFilterError` carrying where it is.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from typing import Any

import lark
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parser as json_parser
from pygeofilter.parsers.cql2_text import parser as text_parser

from layers.columns import InvalidFilterError, choice_code
from layers.errors import BadRequestError
from layers.features import CRS84, Column, Crs, property_columns
from layers.model import Layer
from layers.values import (
    MAX_DEPTH,
    check_bounds,
    check_json,
    check_text,
    finite_float,
    integer,
    utc_date,
)

__all__ = ["GEOMETRY_NAMES", "InvalidFilterError", "filter_sql", "parse_filter"]

#: Names a filter may use for the feature's geometry.
GEOMETRY_NAMES = ("geometry", "geom")

#: Longest filter (characters), most values and vertices in one, farthest S_DWITHIN distance.
MAX_FILTER_CHARS = 100_000
MAX_FILTER_VALUES = 10_000
MAX_FILTER_VERTICES = 50_000
MAX_DISTANCE_M = 1_000_000.0

_UNITS = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
          "km": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "kilometres": 1000.0}


# --- parsing -----------------------------------------------------------------------------------

@lark.v_args(meta=False, inline=True)
class _Transformer(text_parser.CQLTransformer):
    def SINGLE_QUOTED(self, token):  # noqa: N802 (lark's terminal name)
        return token[1:-1].replace("''", "'")

    def s_dwithin(self, lhs, rhs, distance, units):
        name = units.name if isinstance(units, ast.Attribute) else str(units)
        return ast.DistanceWithin(lhs, rhs, distance, name)


def _text_parser() -> lark.Lark:
    grammar_dir = os.path.dirname(text_parser.__file__)
    with open(os.path.join(grammar_dir, "grammar.lark"), encoding="utf-8") as f:
        grammar = f.read()
    rule = ('          | "S_DWITHIN"i "(" expression "," expression "," full_number "," '
            'attribute ")" -> s_dwithin\n')
    grammar = grammar.replace("          | spatial_predicate\n", rule + "          | spatial_predicate\n", 1)
    # CQL2 writes a quote inside a string as two quotes: 'Erdos''s'
    quoted, doubled = 'SINGLE_QUOTED: "\'" /.*?/ "\'"', 'SINGLE_QUOTED: "\'" /(?:[^\']|\'\')*/ "\'"'
    grammar = grammar.replace(quoted, doubled, 1)
    if "s_dwithin" not in grammar or "''" not in grammar:
        raise RuntimeError("pygeofilter's CQL2 grammar changed: update layers/cql2.py")
    return lark.Lark(grammar, parser="lalr", maybe_placeholders=False, transformer=_Transformer(),
                     import_paths=[os.path.dirname(grammar_dir)])


_TEXT = _text_parser()

_EXPECTED_NAMES = {"MORETHAN": ">", "LESSTHAN": "<", "LPAR": "(", "RPAR": ")", "EQUAL": "=",
                   "SINGLE_QUOTED": "'text'", "INT": "integer", "FLOAT": "number", "COMMA": ","}


def _expected(exc: lark.exceptions.UnexpectedInput) -> list[str]:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    return [_EXPECTED_NAMES.get(n, n) for n in names if not n.startswith("__")][:20]


def _json_walk(node: Any, path: str) -> Any:
    """The CQL2-JSON walk of pygeofilter, plus ``s_dwithin`` and three-argument ``between``."""
    if isinstance(node, dict) and "op" in node:
        op = str(node["op"]).lower()
        args = node.get("args")
        if not isinstance(args, list):
            raise InvalidFilterError(f"{path}/args: an operator needs a list of arguments",
                                     position=None)
        if op in ("and", "or"):
            items = [_json_walk(a, f"{path}/args/{i}") for i, a in enumerate(args)]
            if len(items) < 2:
                raise InvalidFilterError(f"{path}: {op} needs two or more arguments")
            return (ast.And if op == "and" else ast.Or).from_items(*items)
        if op == "not":
            return ast.Not(_json_walk(args[0] if args else None, f"{path}/args/0"))
        if op == "s_dwithin":
            if len(args) != 3:
                raise InvalidFilterError(f"{path}: s_dwithin takes a geometry, a geometry and metres")
            return ast.DistanceWithin(_json_walk(args[0], f"{path}/args/0"),
                                      _json_walk(args[1], f"{path}/args/1"), args[2], "meters")
        if op == "between" and len(args) == 3:
            node = {"op": "between", "args": [args[0], [args[1], args[2]]]}
    try:
        return json_parser.walk_cql_json(node)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidFilterError(f"{path or '/'}: {exc}", position=None) from None


def parse_filter(text: str | dict, lang: str | None = None) -> ast.AstType:
    """The syntax tree of a CQL2 filter; ``lang`` is ``cql2-text`` or ``cql2-json`` (guessed)."""
    if lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidFilterError(f"filter-lang {lang!r} is not supported: use cql2-text or cql2-json")
    if isinstance(text, str) and len(text) > MAX_FILTER_CHARS:
        raise InvalidFilterError(f"the filter is longer than {MAX_FILTER_CHARS:,} characters")
    if isinstance(text, dict) or (lang is None and text.lstrip().startswith("{")) or lang == "cql2-json":
        if isinstance(text, str):
            try:
                text = json.loads(text, parse_constant=_no_constant)
            except json.JSONDecodeError as exc:
                raise InvalidFilterError(f"not JSON: {exc.msg}", position=exc.pos, line=exc.lineno,
                                         column=exc.colno) from None
            except (RecursionError, ValueError) as exc:
                detail = str(exc)[:100] or "nested too deep"
                raise InvalidFilterError(f"not a JSON filter: {detail}") from None
        try:
            check_json(text, "filter", depth=-MAX_DEPTH)  # a JSON filter nests twice per level
        except BadRequestError as exc:
            raise InvalidFilterError(str(exc)) from None
        return _json_walk(text, "")
    if not text.strip():
        raise InvalidFilterError("the filter is empty", position=0)
    _check_nesting(text)
    try:
        return _TEXT.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        pos = getattr(exc, "pos_in_stream", None)
        if pos is None and getattr(exc, "token", None) is not None:
            pos = getattr(exc.token, "start_pos", None)
        if pos is None:
            pos = len(text)
        near = text[pos:pos + 20] or "the end"
        raise InvalidFilterError(
            f"cannot parse the filter at line {exc.line}, column {exc.column} (near {near!r})",
            position=pos, line=exc.line, column=exc.column, expected=_expected(exc)) from None
    except Exception as exc:  # pygeofilter's transformer raises plain errors on odd input
        raise InvalidFilterError(f"cannot parse the filter: {str(exc).splitlines()[0]}") from None


# --- SQL ---------------------------------------------------------------------------------------

class _Writer:
    """Writes SQL for one filter, collecting bound parameters."""

    def __init__(self, layer: Layer, crs: Crs, source: str | None) -> None:
        self.layer, self.crs, self.source = layer, crs, source
        self.columns = property_columns(layer) | {"id": Column("id", "t.id", "integer")}
        self.params: dict[str, Any] = {}

    def error(self, detail: str, name: str | None = None) -> InvalidFilterError:
        pos = None
        if name and self.source:
            m = re.search(rf"(?<![\w\"]){re.escape(name)}(?![\w\"])|\"{re.escape(name)}\"", self.source)
            pos = m.start() if m else None
        return InvalidFilterError(detail, position=pos)

    def param(self, value: Any, cast: str | None = None) -> str:
        """A bound parameter, checked first: a number the database holds, text without NUL."""
        try:
            if isinstance(value, float):
                value = finite_float(value, "filter")
            elif isinstance(value, int) and not isinstance(value, bool):
                value = integer(value, "filter")
            elif isinstance(value, str):
                value = check_text(value, "filter")
        except BadRequestError as exc:
            raise InvalidFilterError(str(exc)) from None
        if len(self.params) >= MAX_FILTER_VALUES:
            raise InvalidFilterError(f"the filter has more than {MAX_FILTER_VALUES:,} values")
        key = f"f{len(self.params)}"
        self.params[key] = value
        return f"%({key})s::{cast}" if cast else f"%({key})s"

    # values ----------------------------------------------------------------------------------
    def column(self, node: ast.Attribute) -> Column:
        col = self.columns.get(node.name)
        if col is None:
            if node.name in GEOMETRY_NAMES:
                raise self.error(f"{node.name} is the geometry: use it in a spatial predicate",
                                 node.name)
            names = ", ".join(sorted(self.columns))
            raise self.error(f"{self.layer.id} has no queryable {node.name!r}; it has: {names}",
                             node.name)
        return col

    def scalar(self, node: Any, like: Column | None = None) -> tuple[str, str]:
        """SQL for a scalar expression and its type (text, number, date, boolean)."""
        if isinstance(node, ast.Attribute):
            col = self.column(node)
            kind = {"integer": "number", "real": "number"}.get(col.type, col.type)
            return col.sql, "date" if kind == "date" else ("text" if kind == "monthday" else kind)
        if isinstance(node, bool):
            return self.param(node, "boolean"), "boolean"
        if isinstance(node, (int, float)):
            return self.param(node, "double precision" if isinstance(node, float) else "bigint"), "number"
        if isinstance(node, datetime):
            return self.param(utc_date(node), "date"), "date"
        if isinstance(node, date):
            return self.param(node, "date"), "date"
        if isinstance(node, str):
            if like is not None and like.type == "date":
                try:
                    return self.param(date.fromisoformat(node), "date"), "date"
                except ValueError:
                    raise self.error(f"{node!r} is not a date for {like.name}", like.name) from None
            if like is not None and like.field is not None and like.field.choices:
                # a coded field compared with the word staff read (purpose = '光伏') means its code
                node = choice_code(like.field, node, layer_id=self.layer.id, parameter="filter")
            return self.param(node, "text"), "text"
        if isinstance(node, ast.Function):
            if node.name.lower() in ("lower", "casei") and len(node.arguments) == 1:
                sql, kind = self.scalar(node.arguments[0])
                return f"lower({sql})", kind
            raise self.error(f"function {node.name!r} is not supported (casei is)", node.name)
        if isinstance(node, ast.Arithmetic):
            lhs, lk = self.scalar(node.lhs)
            rhs, rk = self.scalar(node.rhs)
            if lk != "number" or rk != "number":
                raise self.error("arithmetic needs numbers")
            op = node.op.value
            return (f"({lhs} {op} NULLIF({rhs}, 0))" if op == "/" else f"({lhs} {op} {rhs})"), "number"
        raise self.error(f"{type(node).__name__} cannot be used here")

    def pair(self, lhs: Any, rhs: Any) -> tuple[str, str]:
        left_col = self.column(lhs) if isinstance(lhs, ast.Attribute) else None
        right_col = self.column(rhs) if isinstance(rhs, ast.Attribute) else None
        a, ak = self.scalar(lhs, like=right_col)
        b, bk = self.scalar(rhs, like=left_col)
        if ak != bk:
            name = (left_col or right_col).name if (left_col or right_col) else None
            raise self.error(f"cannot compare a {ak} with a {bk}", name)
        return a, b

    def geometry(self, node: Any) -> str:
        if isinstance(node, ast.Attribute):
            if node.name not in GEOMETRY_NAMES:
                raise self.error(f"{node.name!r} is not a geometry; the geometry is called "
                                 "'geometry'", node.name)
            return "t.geom"
        if isinstance(node, values.Geometry):
            geojson = dict(node.geometry)
            if "crs" in geojson:
                geojson.pop("crs")
            self.check_geometry(geojson)
            expr = f"ST_GeomFromGeoJSON({self.param(json.dumps(_plain(geojson)), 'text')})"
            return f"ST_MakeValid({self.crs.to_storage_sql(expr)})"
        if isinstance(node, values.Envelope):
            # pygeofilter keeps ENVELOPE/bbox values in their written order: minx, miny, maxx, maxy
            box = [self.param(float(v)) for v in (node.x1, node.x2, node.y1, node.y2)]
            self.check_box((float(node.x1), float(node.x2), float(node.y1), float(node.y2)))
            return self.crs.to_storage_sql(f"ST_MakeEnvelope({', '.join(box)})")
        raise self.error(f"{type(node).__name__} is not a geometry")

    def check_box(self, box: tuple[float, float, float, float]) -> None:
        """A box (x, y in the filter's CRS and axis order) inside the area the CRS is meant for."""
        x0, y0, x1, y1 = box
        xy = (y0, x0, y1, x1) if self.crs.lat_first else (x0, y0, x1, y1)
        lo = (min(xy[0], xy[2]), min(xy[1], xy[3]), max(xy[0], xy[2]), max(xy[1], xy[3]))
        try:
            check_bounds(lo, "filter", self.crs.srid)
        except BadRequestError as exc:
            raise InvalidFilterError(str(exc)) from None

    def check_geometry(self, geojson: dict[str, Any]) -> None:
        """A geometry literal: finite coordinates, not too many, inside the CRS's area of use."""
        coords: list[float] = []

        def walk(value: Any) -> None:
            if isinstance(value, (list, tuple)):
                if value and isinstance(value[0], (int, float)):
                    coords.extend(float(v) for v in value[:2])
                else:
                    for v in value:
                        walk(v)
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)

        walk(geojson.get("coordinates", geojson.get("geometries", [])))
        if len(coords) > 2 * MAX_FILTER_VERTICES:
            raise InvalidFilterError(f"a geometry in the filter has more than {MAX_FILTER_VERTICES:,} "
                                     "vertices")
        if not coords:
            return
        xs, ys = coords[0::2], coords[1::2]
        self.check_box((min(xs), min(ys), max(xs), max(ys)))

    # predicates ------------------------------------------------------------------------------
    def sql(self, node: Any) -> str:
        if isinstance(node, ast.And):
            return f"({self.sql(node.lhs)} AND {self.sql(node.rhs)})"
        if isinstance(node, ast.Or):
            return f"({self.sql(node.lhs)} OR {self.sql(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.sql(node.sub_node)})"
        if isinstance(node, ast.Comparison):
            a, b = self.pair(node.lhs, node.rhs)
            return f"({a} {node.op.value} {b})"
        if isinstance(node, ast.Between):
            a, lo = self.pair(node.lhs, node.low)
            _, hi = self.pair(node.lhs, node.high)
            return f"({a} {'NOT ' if node.not_ else ''}BETWEEN {lo} AND {hi})"
        if isinstance(node, ast.Like):
            a, kind = self.scalar(node.lhs)
            if kind != "text":
                raise self.error("LIKE needs a text property")
            op = "ILIKE" if node.nocase else "LIKE"
            return f"({a} {'NOT ' if node.not_ else ''}{op} {self.param(str(node.pattern), 'text')})"
        if isinstance(node, ast.In):
            if not node.sub_nodes:
                raise self.error("IN needs at least one value")
            a = self.scalar(node.lhs)[0]
            items = [self.pair(node.lhs, v)[1] for v in node.sub_nodes]
            return f"({a} {'NOT ' if node.not_ else ''}IN ({', '.join(items)}))"
        if isinstance(node, ast.IsNull):
            a = self.scalar(node.lhs)[0]
            return f"({a} IS {'NOT ' if node.not_ else ''}NULL)"
        if isinstance(node, ast.Include):
            return "FALSE" if node.not_ else "TRUE"
        if isinstance(node, ast.SpatialComparisonPredicate):
            func = {"INTERSECTS": "ST_Intersects", "DISJOINT": "ST_Disjoint",
                    "CONTAINS": "ST_Contains", "WITHIN": "ST_Within", "TOUCHES": "ST_Touches",
                    "CROSSES": "ST_Crosses", "OVERLAPS": "ST_Overlaps",
                    "EQUALS": "ST_Equals"}[node.op.name]
            return f"{func}({self.geometry(node.lhs)}, {self.geometry(node.rhs)})"
        if isinstance(node, ast.BBox):
            self.check_box((float(node.minx), float(node.miny), float(node.maxx), float(node.maxy)))
            env = (f"ST_MakeEnvelope({self.param(float(node.minx))}, {self.param(float(node.miny))}, "
                   f"{self.param(float(node.maxx))}, {self.param(float(node.maxy))})")
            return f"ST_Intersects({self.geometry(node.lhs)}, {self.crs.to_storage_sql(env)})"
        if isinstance(node, ast.DistanceWithin):
            factor = _UNITS.get(str(node.units).lower())
            if factor is None:
                raise self.error(f"distance unit {node.units!r}: use meters or kilometers")
            metres = float(node.distance) * factor
            if not 0 <= metres <= MAX_DISTANCE_M:
                raise self.error(f"the distance must be between 0 and {MAX_DISTANCE_M:,.0f} metres")
            a, b = self.geometry(node.lhs), self.geometry(node.rhs)
            d = self.param(metres, "double precision")
            # a box in degrees around the target first (index), then the exact geodesic test
            pad = (f"({d} / (111000.0 * greatest(cos(radians(least(89, greatest(abs(ST_YMin({b})), "
                   f"abs(ST_YMax({b})))))), 0.01)))")
            return f"({a} && ST_Expand({b}, {pad}) AND ST_DWithin({a}::geography, {b}::geography, {d}))"
        if isinstance(node, ast.Attribute):
            col = self.column(node)
            raise self.error(f"{col.name} alone is not a condition: compare it with a value", col.name)
        raise self.error(f"{type(node).__name__} is not supported in landeco's filters")


def _plain(value: Any) -> Any:
    """Tuples (pygeofilter's WKT coordinates) as lists, for JSON."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _no_constant(word: str) -> float:
    raise ValueError(f"{word} is not a JSON number")


def _check_nesting(text: str) -> None:
    """Refuse text nested deeper than a person writes (parentheses outside quoted strings)."""
    depth = deepest = 0
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif not quoted and ch == ")":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise InvalidFilterError(f"the filter nests deeper than {MAX_DEPTH} levels of parentheses")


def filter_sql(layer: Layer, text: str | dict, lang: str | None = None,
               crs: Crs = CRS84) -> tuple[str, dict[str, Any]]:
    """SQL (a boolean expression over ``t``) and its parameters for a CQL2 filter on ``layer``."""
    try:
        tree = parse_filter(text, lang)
        writer = _Writer(layer, crs, text if isinstance(text, str) else None)
        return writer.sql(tree), writer.params
    except RecursionError:  # a chain of thousands of ANDs is as deep as thousands of parentheses
        raise InvalidFilterError("the filter is too long a chain of conditions: shorten it") from None
