"""Editing one feature (OGC API – Features Part 4): create, replace, patch, delete.

An edit is checked exactly as an upload is: the feature is written to a one-feature GeoJSON
and put through :func:`layers.importer.run_import` (domains, village codes, geometry checks
and repair, overlap rules, areas computed by the database) inside a savepoint; the importer's
own write is then rolled back and the checked values are written to the feature's row in
one statement, so the history (migration 0006) records one version per edit, attributed to
the editor (:func:`layers.history.attribute`) and with its audit entry in the same transaction.

Optimistic concurrency: every feature has a strong ETag, the MD5 of its stored row (so any
change, by anyone, changes it); replace, patch and delete need ``If-Match`` with the current one.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.crs import resolve_crs, to_lonlat
from layers import audit
from layers.audit import Who
from layers.errors import BadRequestError, LandecoError
from layers.features import CRS84, Crs, FeatureNotFoundError, ItemsQuery, feature_sql
from layers.history import attribute
from layers.importer import ImportOptions, Report, run_import
from layers.model import TOWNSHIP_CODE, Layer, township_of
from layers.values import parse_json

__all__ = ["PROBLEM_ZH", "EditRefusedError", "Edited", "FeatureInUseError", "InvalidFeatureError",
           "PreconditionFailedError", "PreconditionRequiredError", "WorkflowFieldError", "create_feature",
           "current_etag",
           "delete_feature", "merge_patch", "parse_feature", "patch_feature", "replace_feature"]

#: Why a check refused a value, in the words staff read (the English ``message`` says the detail).
PROBLEM_ZH: dict[str, str] = {
    "value_invalid": "取值无法识别",
    "value_not_allowed": "不是允许的取值",
    "value_out_of_range": "超出允许的范围",
    "value_missing": "必填项为空",
    "code_duplicate": "编号重复",
    "code_exists": "编号已被其他要素使用",
    "code_in_use": "其他图层的要素引用了该编号，不能修改",
    "village_unknown": "没有这个嘎查村代码",
    "township_changed": "不能改到其他苏木乡镇的嘎查村（请删除后重新新增）",
    "outside_township": "要素位于旗界之外（坐标系是否正确？）",
    "overlap": "与其他要素重叠",
    "overlap_existing": "与图层中已有的要素重叠",
    "rule_broken": "不符合图层的规则",
    "geometry_invalid": "几何图形无效，无法修复",
    "geometry_missing": "缺少几何图形",
    "geometry_repaired": "几何图形已自动修复",
    "geometry_type_mismatch": "几何类型与图层不符",
    "geometry_unsupported": "不支持的几何类型",
    "zm_dropped": "已去掉高程（Z）或测量值（M）",
}
#: How close (degrees, about a centimetre) a vertex of an edit must be to a stored one to be it.
SNAP_DEGREES = 1e-7
#: The largest number of vertices an edited geometry may have (a parcel has tens to thousands).
MAX_VERTICES = 200_000


class InvalidFeatureError(BadRequestError):
    """The body is not a GeoJSON Feature this layer can take (shape, unknown properties)."""

    code = "invalid_feature"
    title = "Invalid feature"


class EditRefusedError(LandecoError):
    """The checks an upload passes refused the edited feature; nothing was written."""

    code = "edit_refused"
    status = 422
    title = "Edit refused"

    def __init__(self, detail: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.problems = problems

    def extra(self) -> dict[str, object]:
        """The problems, as an upload's report lists them (with a Chinese ``message_zh``)."""
        return {"problems": self.problems}


class PreconditionRequiredError(LandecoError):
    """A write of an existing feature without ``If-Match`` (its ETag from a GET)."""

    code = "precondition_required"
    status = 428
    title = "If-Match required"


class PreconditionFailedError(LandecoError):
    """``If-Match`` names a version that is no longer the feature's (someone else changed it)."""

    code = "precondition_failed"
    status = 412
    title = "The feature changed"

    def __init__(self, detail: str, etag: str) -> None:
        super().__init__(detail)
        self.etag = etag

    def extra(self) -> dict[str, object]:
        """The current ETag (GET the feature again to see what changed)."""
        return {"current_etag": self.etag}


class WorkflowFieldError(LandecoError):
    """An edit tried to set a field only the layer's workflow changes (a change patch's status)."""

    code = "workflow_field"
    status = 409
    title = "Changed only through the workflow"

    def __init__(self, detail: str, fields: list[str]) -> None:
        super().__init__(detail)
        self.fields = fields

    def extra(self) -> dict[str, object]:
        """The fields refused."""
        return {"fields": self.fields}


def _workflow(layer: Layer, feature: dict[str, Any], current: dict[str, Any] | None,
              feature_id: int | None = None) -> dict[str, Any]:
    """``feature`` with the workflow's fields as they are (a new feature: at the start, empty).

    A body giving one of them another value is refused: a status moves only by a step
    (``POST /collections/{layer}/items/{id}/status``), which the database records.
    """
    flow = layer.workflow
    if flow is None:
        return feature
    stored = {name: None for name in flow.managed} | {flow.field: flow.start}
    if current is not None:
        stored = {name: current.get(name) for name in flow.managed}
    props = dict(feature.get("properties") or {})
    differ = [name for name in flow.managed
              if name in props and props[name] is not None and str(props[name]) != str(stored[name])]
    if differ:
        where = f"/collections/{layer.id}/items/{feature_id if feature_id is not None else '{id}'}/status"
        raise WorkflowFieldError(f"{', '.join(differ)} of {layer.id} change only by a step of its workflow: "
                                 f"POST {where}", differ)
    return {**feature, "properties": {**props, **stored}}


class FeatureInUseError(LandecoError):
    """Features of other layers refer to this one (a village's code): it cannot be deleted."""

    code = "feature_in_use"
    status = 409
    title = "Feature in use"


@dataclass
class Edited:
    """What an edit wrote: the feature's id, its new ETag and GeoJSON, the warnings."""

    layer: str
    feature_id: int
    etag: str | None
    feature: dict[str, Any] | None
    audit_id: int
    warnings: list[dict[str, Any]] = field(default_factory=list)


# --- the body --------------------------------------------------------------------------------

def _read_only(layer: Layer) -> set[str]:
    return {m.name for m in layer.stored_measures}


def parse_feature(layer: Layer, body: bytes | str | dict, *, partial: bool = False) -> dict[str, Any]:
    """The body as a GeoJSON Feature ``{"geometry", "properties"}`` of ``layer``'s fields.

    NaN and Infinity, deep nesting and NUL characters are refused (:func:`parse_json`);
    read-only sizes (``area_mu`` …) are dropped, since the database computes them; any other
    unknown property is refused. ``partial``: a merge patch (members may be absent or null).
    """
    if isinstance(body, dict):
        doc = body
    else:
        try:
            text = body.decode("utf-8") if isinstance(body, bytes) else body
        except UnicodeDecodeError:
            raise InvalidFeatureError("the body is not UTF-8 text (JSON is UTF-8)") from None
        if not text.strip():
            raise InvalidFeatureError("the body is empty: send a GeoJSON Feature")
        doc = parse_json(text, "body")
    if not isinstance(doc, dict):
        raise InvalidFeatureError("the body must be a GeoJSON Feature (a JSON object)")
    if doc.get("type", "Feature" if partial else None) != "Feature":
        raise InvalidFeatureError("the body must be a GeoJSON Feature (\"type\": \"Feature\")")
    props = doc.get("properties", {} if partial else None)
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise InvalidFeatureError("properties must be a JSON object")
    names = {f.name for f in layer.all_fields}
    ignored = _read_only(layer)
    unknown = sorted(k for k in props if k not in names and k not in ignored and k != "extra")
    if unknown:
        raise InvalidFeatureError(f"{layer.id} has no properties {', '.join(map(repr, unknown))}; its "
                                  f"fields are {', '.join(sorted(names))}")
    extra = props.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise InvalidFeatureError("extra must be a JSON object")
    for name, value in props.items():
        if name != "extra" and isinstance(value, dict | list):
            raise InvalidFeatureError(f"{name} must be a single value, not {type(value).__name__}")
    out: dict[str, Any] = {"properties": {k: v for k, v in props.items() if k not in ignored}}
    if "geometry" in doc or not partial:
        out["geometry"] = _geometry(doc.get("geometry"), allow_null=partial)
    return out


def _geometry(value: Any, allow_null: bool) -> dict[str, Any] | None:
    if value is None:
        if allow_null:
            return None
        raise InvalidFeatureError("the feature has no geometry")
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise InvalidFeatureError("geometry must be a GeoJSON geometry object with a type")
    try:
        geom = shapely.from_geojson(json.dumps(value))
    except Exception:  # shapely's GEOS error: the coordinates do not make that geometry
        raise InvalidFeatureError(f"the {value['type']} geometry cannot be read (its coordinates do not "
                                  "make one)") from None
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise InvalidFeatureError(f"the geometry has more than {MAX_VERTICES:,} vertices")
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge member by member, ``null`` removes, the rest replaces.

    >>> merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": 5})
    {'a': 1, 'b': {'d': 3, 'e': 4}, 'f': 5}
    """
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --- ETags -----------------------------------------------------------------------------------

def _etag_sql(layer: Layer) -> str:
    return f"SELECT '\"' || md5(t::text) || '\"' FROM {layer.table} t WHERE t.id = :fid"


def current_etag(conn: Connection, layer: Layer, feature_id: int) -> str | None:
    """The feature's strong ETag (MD5 of its stored row), or None when it does not exist."""
    if not 0 < feature_id < 2**63:
        return None
    return conn.scalar(sa.text(_etag_sql(layer)), {"fid": feature_id})


def _check_match(conn: Connection, layer: Layer, feature_id: int, if_match: str | None) -> str:
    """The current ETag, after checking ``If-Match`` against it.

    Callers hold the table's lock (:func:`_lock`), so no row lock: Citus refuses ``FOR UPDATE``
    on a statement that may reach several shards (the id alone does not name the township).
    """
    if not 0 < feature_id < 2**63:
        raise FeatureNotFoundError(f"{layer.id} has no feature {feature_id}")
    etag = conn.scalar(sa.text(_etag_sql(layer)), {"fid": feature_id})
    if etag is None:
        raise FeatureNotFoundError(f"{layer.id} has no feature {feature_id}")
    if if_match is None or not if_match.strip():
        raise PreconditionRequiredError(f"changing {layer.id} {feature_id} needs If-Match with its ETag "
                                        "(GET the feature: its ETag header)")
    sent = [t.strip() for t in if_match.split(",")]
    if "*" not in sent and etag not in sent:
        raise PreconditionFailedError(f"{layer.id} {feature_id} changed since that ETag was read: GET it "
                                      "again, and make the change on what is there now", etag)
    return etag


# --- checking like an upload -------------------------------------------------------------------

def _problems(report: Report, severity: str) -> list[dict[str, Any]]:
    return [{"code": p.code, "field": p.field, "severity": p.severity, "message": p.message,
             "message_zh": getattr(p, "message_zh", None) or PROBLEM_ZH.get(p.code, p.code)}
            for p in report.problems if p.severity == severity]


def _lonlat(geometry: dict[str, Any], crs: Crs, old: Any) -> dict[str, Any]:
    """The body's geometry in lon/lat, its unmoved vertices snapped back onto the stored ones.

    A GET rounds coordinates (8 decimals, about a millimetre); written back as they come they
    would shift every shared boundary by that much and overlap the neighbours by square metres.
    """
    geom = shapely.from_geojson(json.dumps(geometry))
    if crs.lat_first:  # the body's axes as the CRS orders them: x/y for the transformation
        geom = shapely.transform(geom, lambda c: c[:, ::-1])
    if crs.srid != 4326:
        geom = to_lonlat(np.array([geom]), resolve_crs(None, str(crs.srid)).crs)[0]
    if shapely.is_empty(geom):
        raise InvalidFeatureError("the geometry is empty")
    if not np.isfinite(shapely.bounds(geom)).all():
        raise InvalidFeatureError(f"the geometry's coordinates are outside the area {crs.uri} covers")
    west, south, east, north = shapely.bounds(geom)
    if old is not None and -180 <= west <= east <= 180 and -90 <= south <= north <= 90:
        geom = shapely.snap(geom, old, SNAP_DEGREES)  # (nowhere near lon/lat: the importer refuses it)
    return json.loads(shapely.to_geojson(geom))


#: Strings GDAL's GeoJSON reader takes for dates or date-times (and then must parse).
_DATE_LIKE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?")


def _impossible_dates(props: dict[str, Any]) -> list[dict[str, Any]]:
    """Date-like strings that name no date (2023-02-30): the reader fails on them instead of reporting.

    Until :mod:`gis.readers` reads GeoJSON dates as text, such a value is refused here with the
    importer's ``value_invalid`` (even in a free-text field), never a 500.
    """
    out = []
    for name, value in props.items():
        m = _DATE_LIKE.match(value.strip()) if isinstance(value, str) else None
        if m is None:
            continue
        try:
            date(int(m[1]), int(m[2]), int(m[3]))
            if m[4] is not None:
                time(int(m[4]), int(m[5]), int(m[6] or 0))
        except ValueError:
            out.append({"code": "value_invalid", "field": name, "severity": "error",
                        "message": f"{value!r} is not a date", "message_zh": PROBLEM_ZH["value_invalid"]})
    return out


def _file_feature(layer: Layer, feature: dict[str, Any], crs: Crs,
                  old: Any = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The one-feature GeoJSON the importer reads (lon/lat), and its column map (no guessing by alias)."""
    props = dict(feature["properties"])
    impossible = _impossible_dates({**props, **(props.get("extra") or {})})
    if impossible:
        raise _refused(impossible)
    extra = props.pop("extra", None) or {}
    names = [f.name for f in layer.all_fields]
    columns = {n: n for n in names}
    for key, value in extra.items():
        name = f"extra:{key}" if key in names else str(key)
        props.setdefault(name, value if not isinstance(value, dict | list) else json.dumps(value))
        columns[name] = "extra"
    return ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {n: props.get(n) for n in [*names, *(k for k in props
                                                                           if k not in names)]},
         "geometry": _lonlat(feature["geometry"], crs, old)}]}, columns)


def _refused(problems: list[dict[str, Any]]) -> EditRefusedError:
    if not problems:
        problems = [{"code": "edit_refused", "field": None, "severity": "error",
                     "message": "the feature could not be checked", "message_zh": "无法检查该要素"}]
    return EditRefusedError("; ".join(f"{p['field'] or ''} {p['code']}: {p['message']}".strip()
                                      for p in problems[:10]), problems)


def _code_taken(code: Any, layer: Layer) -> dict[str, Any]:
    return {"code": "code_exists", "field": "code", "severity": "error",
            "message": f"code {code!r} is already used by another feature of {layer.id}",
            "message_zh": PROBLEM_ZH["code_exists"]}


def _take_code(conn: Connection, layer: Layer, feature_id: int, code: Any) -> None:
    """Give the row being replaced its new code first, so the upsert below lands on it.

    Refused when another feature has the code, or when other layers' features refer to the
    old one (a village's code).
    """
    if not isinstance(code, str | int) or isinstance(code, bool):
        return  # missing or not a code: the importer says why
    code = str(code)
    old = conn.scalar(sa.text(f"SELECT code FROM {layer.table} WHERE id = :fid"), {"fid": feature_id})
    if code == old:
        return
    if conn.scalar(sa.text(f"SELECT 1 FROM {layer.table} WHERE code = :c AND id <> :fid"),
                   {"c": code, "fid": feature_id}):
        raise _refused([_code_taken(code, layer)])
    try:
        with conn.begin_nested():
            conn.execute(sa.text(f"UPDATE {layer.table} SET code = :c WHERE id = :fid"),
                         {"c": code, "fid": feature_id})
    except sa.exc.IntegrityError:
        raise _refused([{"code": "code_in_use", "field": "code", "severity": "error",
                         "message": f"features of other layers refer to {old!r}: its code cannot change",
                         "message_zh": PROBLEM_ZH["code_in_use"]}]) from None


def _checked(conn: Connection, layer: Layer, feature: dict[str, Any], crs: Crs, *,
             replacing: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Put ``feature`` through the importer; the values it would write, and its warnings.

    In a savepoint rolled back afterwards, the importer upserts the feature by its code (the
    row being replaced takes the new code first, so it is the row updated and never counts
    as an overlap with itself) and the row written is read back. Refused: :class:`EditRefusedError`.
    """
    old = None
    if replacing is not None:
        wkb = conn.scalar(sa.text(f"SELECT ST_AsBinary(geom) FROM {layer.table} WHERE id = :fid"),
                          {"fid": replacing})
        old = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
    collection, columns = _file_feature(layer, feature, crs, old)
    # upsert: through the importer's staging table (an insert would COPY straight into the layer
    # under a savepoint of its own); a code met on another feature is refused
    options = ImportOptions(layer=layer.id, mode="upsert", columns=columns)
    code = feature["properties"].get("code")
    savepoint = conn.begin_nested()
    try:
        if replacing is not None:
            _take_code(conn, layer, replacing, code)
        with tempfile.TemporaryDirectory(prefix="landeco-edit-") as tmp:
            path = Path(tmp) / "feature.geojson"
            path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
            report = run_import(conn, path, Path(tmp) / "work", options, write=True, file_name="feature")
        written = report.written_ids[0] if report.committed and report.written_ids else None
        if written is not None and written != replacing and not report.written.get("inserted"):
            # the upsert met the code on another feature (changed or not, as the importer leaves an
            # unchanged one alone): an edit never overwrites another feature
            raise _refused([_code_taken(code, layer)])
        row = None
        if written is not None:
            cols = ", ".join(f.name for f in layer.all_fields)
            found = conn.execute(sa.text(f"SELECT {cols}, extra::text AS extra, geom::text AS geom "
                                         f"FROM {layer.table} WHERE id = :id"), {"id": written})
            row = dict(found.mappings().one())
    finally:
        savepoint.rollback()
    if row is None:
        raise _refused(_problems(report, "error"))
    return row, _problems(report, "warning")


def _feature_json(conn: Connection, layer: Layer, feature_id: int) -> dict[str, Any]:
    sql, params = feature_sql(ItemsQuery(layer=layer), feature_id)
    return json.loads(conn.exec_driver_sql(sql, params).scalar_one())


def _write_values(layer: Layer, row: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    names = [f.name for f in layer.all_fields]
    values = {**{n: row[n] for n in names}, "extra": row["extra"], "geom": row["geom"]}
    if layer.by_township:  # sent with the village: Citus routes the row by it
        names.append(TOWNSHIP_CODE)
        values[TOWNSHIP_CODE] = township_of(row["village_code"])
    return names, values


def _current(conn: Connection, layer: Layer, feature_id: int) -> dict[str, Any]:
    """The stored feature as a body: every field, ``extra``, the geometry at full precision."""
    cols = ", ".join(f.name for f in layer.all_fields)
    row = conn.execute(sa.text(f"SELECT {cols}, extra, ST_AsGeoJSON(geom, 15) AS geometry FROM {layer.table} "
                               "WHERE id = :fid"), {"fid": feature_id}).mappings().one()
    props = {f.name: (row[f.name].isoformat() if hasattr(row[f.name], "isoformat") else row[f.name])
             for f in layer.all_fields}
    props["extra"] = row["extra"] or {}
    return {"properties": props, "geometry": json.loads(row["geometry"])}


# --- the edits ---------------------------------------------------------------------------------

@contextmanager
def _constraints(layer: Layer) -> Iterator[None]:
    """A rule of the table the checks did not foresee (a foreign key, a unique code written meanwhile)."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        detail = str((diag and (diag.message_detail or diag.message_primary)) or "a rule of the table")
        raise _refused([{"code": "rule_broken", "field": None, "severity": "error",
                         "message": f"the database refused the {layer.id} feature: {detail.strip()[:300]}",
                         "message_zh": PROBLEM_ZH["rule_broken"]}]) from None


def _lock(conn: Connection, layer: Layer) -> None:
    # one writer at a time checks overlaps and codes against what is there, as uploads do
    conn.execute(sa.text(f"LOCK TABLE {layer.table} IN SHARE ROW EXCLUSIVE MODE"))


def _record(conn: Connection, who: Who | None, layer: Layer, fid: int, operation: str, edit_id: str,
            warnings: list[dict[str, Any]]) -> int:
    counts = {"create": {"inserted": 1}, "delete": {"deleted": 1}}.get(operation, {"updated": 1})
    return audit.record_as(conn, who, "feature.edit", layer=layer.id, feature_ids=[fid], counts=counts,
                           detail={"operation": operation, "edit_id": edit_id,
                                   **({"warnings": [w["code"] for w in warnings]} if warnings else {})})


def create_feature(engine: sa.Engine, layer: Layer, feature: dict[str, Any], who: Who | None,
                   crs: Crs = CRS84) -> Edited:
    """Insert a new feature (checked as an upload's insert); recorded as ``feature.edit``."""
    edit_id = f"edit:{uuid.uuid4().hex}"
    feature = _workflow(layer, feature, None)
    with engine.begin() as conn:
        _lock(conn, layer)
        row, warnings = _checked(conn, layer, feature, crs, replacing=None)
        attribute(conn, who, edit_id=edit_id)
        names, values = _write_values(layer, row)
        cols = ", ".join(names)
        binds = ", ".join(f":{n}" for n in names)
        with _constraints(layer):
            fid = conn.scalar(sa.text(f"INSERT INTO {layer.table} ({cols}, extra, geom) VALUES ({binds}, "
                                      "CAST(:extra AS jsonb), CAST(:geom AS geometry)) RETURNING id"), values)
        audit_id = _record(conn, who, layer, fid, "create", edit_id, warnings)
        etag = current_etag(conn, layer, fid)
        body = _feature_json(conn, layer, fid)
    return Edited(layer.id, fid, etag, body, audit_id, warnings)


def _replace(engine: sa.Engine, layer: Layer, feature_id: int, if_match: str | None, who: Who | None,
             crs: Crs, make: Any, operation: str) -> Edited:
    edit_id = f"edit:{uuid.uuid4().hex}"
    with engine.begin() as conn:
        _lock(conn, layer)
        _check_match(conn, layer, feature_id, if_match)
        feature = make(conn)
        if layer.workflow is not None:
            feature = _workflow(layer, feature, _current(conn, layer, feature_id)["properties"], feature_id)
        row, warnings = _checked(conn, layer, feature, crs, replacing=feature_id)
        attribute(conn, who, edit_id=edit_id)
        names, values = _write_values(layer, row)
        where = "id = :fid"
        if layer.by_township and values[TOWNSHIP_CODE] == conn.scalar(
                sa.text(f"SELECT township_code FROM {layer.table} WHERE id = :fid"), {"fid": feature_id}):
            # in its township: on Citus the UPDATE goes to one shard and moves no row between shards
            # (a feature moved to another township is written on one server; Citus refuses it)
            names.remove(TOWNSHIP_CODE)
            where += " AND township_code = :township_code"
        sets = ", ".join(f"{n} = :{n}" for n in names)
        with _constraints(layer):
            conn.execute(sa.text(f"UPDATE {layer.table} SET {sets}, extra = CAST(:extra AS jsonb), "
                                 f"geom = CAST(:geom AS geometry) WHERE {where}"),
                         {**values, "fid": feature_id})
        audit_id = _record(conn, who, layer, feature_id, operation, edit_id, warnings)
        etag = current_etag(conn, layer, feature_id)
        body = _feature_json(conn, layer, feature_id)
    return Edited(layer.id, feature_id, etag, body, audit_id, warnings)


def replace_feature(engine: sa.Engine, layer: Layer, feature_id: int, feature: dict[str, Any],
                    if_match: str | None, who: Who | None, crs: Crs = CRS84) -> Edited:
    """PUT: the feature becomes ``feature`` (its ``extra`` kept unless given), checked as an upload."""

    def make(conn: Connection) -> dict[str, Any]:
        if "extra" in feature["properties"]:
            return feature
        kept = _current(conn, layer, feature_id)["properties"]["extra"]
        return {**feature, "properties": {**feature["properties"], "extra": kept}}

    return _replace(engine, layer, feature_id, if_match, who, crs, make, "replace")


def patch_feature(engine: sa.Engine, layer: Layer, feature_id: int, patch: dict[str, Any],
                  if_match: str | None, who: Who | None, crs: Crs = CRS84) -> Edited:
    """PATCH: RFC 7396 merge patch of the stored feature (``properties`` member by member)."""

    def make(conn: Connection) -> dict[str, Any]:
        merged = merge_patch(_current(conn, layer, feature_id), patch)
        if "geometry" in patch and patch["geometry"] is None:
            raise InvalidFeatureError("a feature cannot lose its geometry: delete the feature instead")
        merged.setdefault("properties", {})
        return merged

    if crs != CRS84 and patch.get("geometry") is not None:
        raise InvalidFeatureError("a patch's geometry must be in CRS84 (no Content-Crs); use PUT for "
                                  "other coordinate systems")
    crs = CRS84  # what is not in the body is read back from the database in CRS84
    return _replace(engine, layer, feature_id, if_match, who, crs, make, "patch")


def delete_feature(engine: sa.Engine, layer: Layer, feature_id: int, if_match: str | None,
                   who: Who | None) -> Edited:
    """DELETE: the feature goes (its versions stay in the history; a restore brings it back)."""
    edit_id = f"edit:{uuid.uuid4().hex}"
    with engine.begin() as conn:
        _lock(conn, layer)
        _check_match(conn, layer, feature_id, if_match)
        attribute(conn, who, edit_id=edit_id)
        try:
            with conn.begin_nested():
                conn.execute(sa.text(f"DELETE FROM {layer.table} WHERE id = :fid"), {"fid": feature_id})
        except sa.exc.IntegrityError:
            raise FeatureInUseError(f"features of other layers refer to {layer.id} {feature_id} (its code): "
                                    "change or delete them first") from None
        audit_id = _record(conn, who, layer, feature_id, "delete", edit_id, [])
    return Edited(layer.id, feature_id, None, None, audit_id)
