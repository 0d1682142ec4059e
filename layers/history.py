"""The past of the layers: versions of a feature, the layers as they were, putting things back.

The database records every change (migration 0006: a statement-level trigger on every
layer table writes ``<table>_history``), whoever writes; this module reads that record
and writes through the same tables, so a restore or an undo is itself recorded. Who acted
comes from :func:`attribute` (transaction-local settings), else from the audit entry
written in the same transaction (``audit.xact``), else it is the database role.

For later users: an editor (OGC API Part 4) calls :func:`attribute` with an ``edit_id``
before it writes and records its audit entry in the same transaction; a reader of the
past (tiles, maps, ``POST /query``) selects ``FROM`` :func:`asof_sql` instead of the
table (same columns, aliased as it likes) with the time bound to the placeholder.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers import audit
from layers.audit import Who
from layers.errors import LandecoError, NotFoundError
from layers.model import TOWNSHIP_CODE, Layer, township_of
from layers.registry import LAYERS, get_layer
from layers.store.schema import HISTORY_SUFFIX
from layers.values import InvalidParameterError

__all__ = ["FeatureVersionNotFoundError", "RestoreConflictError", "UndoConflictError", "UndoRefusedError",
           "UndoUnknownUploadError", "asof_sql", "attribute", "data_columns", "history_table", "parse_asof",
           "restore_feature", "undo_upload", "upload_changes", "version", "versions"]

#: A metric CRS for distances between versions: CGCS2000 / 3-degree Gauss-Kruger CM 108E,
#: the township's own zone.
METRIC_SRID = 4545
#: Feature ids an undo refusal lists (its count is complete).
LISTED = 100


class FeatureVersionNotFoundError(NotFoundError):
    """The feature has no such version (or never existed in the layer)."""

    code = "version_not_found"
    title = "Version not found"


class RestoreConflictError(LandecoError):
    """The version cannot be written back: another feature took its code, or a rule refuses it."""

    code = "restore_conflict"
    status = 409
    title = "Cannot restore"


class UndoUnknownUploadError(NotFoundError):
    """No upload of that id was ever committed."""

    code = "undo_unknown_upload"
    title = "Upload not found"


class UndoRefusedError(LandecoError):
    """The upload cannot be undone: not committed, already undone, or committed before history."""

    code = "undo_refused"
    status = 409
    title = "Cannot undo"


class UndoConflictError(LandecoError):
    """Later changes touched features of the upload: undo them first, or force."""

    code = "undo_conflict"
    status = 409
    title = "Later changes"

    def __init__(self, message: str, feature_ids: list[int], count: int) -> None:
        super().__init__(message)
        self.feature_ids = feature_ids
        self.count = count

    def extra(self) -> dict[str, object]:
        """The features changed since (the first :data:`LISTED`) and how many there are."""
        return {"feature_ids": self.feature_ids, "count": self.count}


# --- who acts ------------------------------------------------------------------------------

def attribute(conn: Connection, who: Who | str | None, *, upload_id: str | None = None,
              edit_id: str | None = None) -> None:
    """Say who writes in ``conn``'s transaction: the history triggers record it with each change.

    Transaction-local (``SET LOCAL``): it ends with the transaction. Call it before the writes.
    With the transaction's id and time (``landeco.xact``, ``landeco.at``), which the history rows
    take: on Citus the triggers run in the shards' transactions, whose own differ from those of
    the audit entry they are tied to; Citus passes ``SET LOCAL`` on to them
    (``citus.propagate_set_commands``), not ``set_config``.
    """
    actor = who.actor if isinstance(who, Who) else who
    _set_local(conn, {"who": actor or "", "upload_id": upload_id or "", "edit_id": edit_id or ""})
    tie(conn)


def tie(conn: Connection) -> None:
    """Tie the history rows ``conn``'s transaction writes to it (its id and time, as its audit entry).

    One server: what the triggers would take anyway. Citus: they run in the shards' transactions.
    """
    xact, at = conn.execute(sa.text("SELECT txid_current()::text, now()::text")).one()
    _set_local(conn, {"xact": xact, "at": at})


def _set_local(conn: Connection, values: dict[str, str]) -> None:
    conn.exec_driver_sql("; ".join(f"SET LOCAL landeco.{k} = '{v.replace(chr(39), chr(39) * 2)}'"
                                   for k, v in values.items()))


# --- columns ---------------------------------------------------------------------------------

def history_table(layer: Layer) -> str:
    """The name of ``layer``'s history table."""
    return layer.table + HISTORY_SUFFIX


def data_columns(layer: Layer) -> list[str]:
    """The columns a feature's version carries (all but the id), as the table orders them."""
    return [*(f.name for f in layer.all_fields), "extra", "created_at", "updated_at", "geom",
            *(m.name for m in layer.stored_measures)]


def _writable(layer: Layer) -> list[str]:
    """The columns a restore writes back (sizes are the database's, ``updated_at`` its trigger's).

    With the township (Citus routes a row by it), which the history keeps beside the village.
    """
    return [*(f.name for f in layer.all_fields), "extra", "created_at", "geom",
            *([TOWNSHIP_CODE] if layer.by_township else [])]


# --- the layers as they were -----------------------------------------------------------------

def parse_asof(value: str | None, parameter: str = "asof") -> datetime | None:
    """An RFC 3339 date-time with its offset (``2026-11-30T08:00:00+08:00``, ``…Z``)."""
    if value is None:
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidParameterError(
            parameter, f"{value!r} is not an RFC 3339 date-time (e.g. 2026-11-30T08:00:00+08:00)") from None
    if moment.tzinfo is None or len(text) <= 10:
        raise InvalidParameterError(parameter, f"{value!r} needs a time and its offset (Z or +08:00)")
    if not 1970 <= moment.year <= 9000:
        raise InvalidParameterError(parameter, f"{value!r} is outside the years 1970 to 9000")
    return moment.astimezone(UTC)


def asof_sql(layer: Layer, placeholder: str = "%(asof)s") -> str:
    """A subquery (in parentheses) with the columns of ``layer``'s table, as it was at a time.

    Rows current then: those written at or before it and not changed since, and the
    versions the history says were current then. ``placeholder`` is where the time goes
    (``%(asof)s`` for psycopg, ``:asof`` for SQLAlchemy text).
    """
    cols = ", ".join(data_columns(layer))
    at = f"CAST({placeholder} AS timestamptz)"
    return (f"(SELECT id, {cols} FROM {layer.table} WHERE updated_at <= {at} "
            f"UNION ALL SELECT feature_id AS id, {cols} FROM {history_table(layer)} "
            f"WHERE operation <> 'insert' AND changed_at > {at} AND lower(valid) <= {at})")


# --- versions of a feature -------------------------------------------------------------------

_EVENT = "h.history_id, h.operation, h.changed_at, h.changed_by, h.db_user, h.upload_id, h.edit_id, h.xact"
#: The first audit entry of each change's transaction and moment (asked apart from the history:
#: on Citus the history is distributed and the audit the coordinator's, which no query joins)
_AUDIT = ("SELECT DISTINCT ON (xact, at) xact, at, actor, action, CASE WHEN action IN ('upload.commit', "
          "'upload.replace') THEN upload_id END AS upload_id FROM audit WHERE (xact, at) IN "
          "(SELECT * FROM unnest(CAST(:x AS bigint[]), CAST(:at AS timestamptz[]))) ORDER BY xact, at, id")


def _audited(conn: Connection, events: list[dict]) -> list[dict]:
    """``events`` with their audit entry's actor, action and upload (as a join would give them)."""
    found = {(r.xact, r.at): r for r in conn.execute(sa.text(_AUDIT), {
        "x": [e["xact"] for e in events], "at": [e["changed_at"] for e in events]})} if events else {}
    for e in events:
        a = found.get((e["xact"], e["changed_at"]))
        e["audit_actor"], e["audit_action"] = (a.actor, a.action) if a else (None, None)
        e["upload_id"] = e["upload_id"] or (a.upload_id if a else None)
    return events


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _who(event: dict[str, Any] | None) -> dict[str, Any]:
    """Who made a version: the person landeco acted for, else the audit entry's, else the role.

    ``operation`` is ``insert`` or ``update``, or ``restore`` or ``undo`` when landeco put
    something back (their ``edit_id`` says so).
    """
    if event is None:  # written before history began
        return dict.fromkeys(("by", "db_user", "at", "operation", "upload_id", "edit_id"))
    edit = event["edit_id"] or ""
    kind = edit.split(":", 1)[0] if ":" in edit else event["operation"]
    return {"by": event["changed_by"] or event["audit_actor"] or event["db_user"],
            "db_user": event["db_user"], "at": event["changed_at"], "operation": kind,
            "upload_id": event["upload_id"], "edit_id": event["edit_id"] or None}


def _rows(conn: Connection, layer: Layer, feature_id: int) -> tuple[list[dict], dict | None]:
    """The feature's history events (oldest first) and its current row (None when deleted)."""
    cols = ", ".join(f"h.{c}" for c in data_columns(layer) if c != "geom")
    events = _audited(conn, [dict(r) for r in conn.execute(sa.text(
        f"SELECT {_EVENT}, lower(h.valid) AS valid_from, {cols}, h.geom::text AS geom_wkb, "
        f"ST_AsGeoJSON(h.geom, 8) AS geometry FROM {history_table(layer)} h "
        "WHERE h.feature_id = :fid ORDER BY h.history_id"), {"fid": feature_id}).mappings()])
    cur_cols = ", ".join(f"t.{c}" for c in data_columns(layer) if c != "geom")
    current = conn.execute(sa.text(
        f"SELECT {cur_cols}, t.geom::text AS geom_wkb, ST_AsGeoJSON(t.geom, 8) AS geometry "
        f"FROM {layer.table} t WHERE t.id = :fid"), {"fid": feature_id}).mappings().first()
    return events, (dict(current) if current else None)


def _assemble(layer: Layer, events: list[dict], current: dict | None) -> list[dict[str, Any]]:
    """Versions oldest first: what each held, when it was current, who made it."""
    out: list[dict[str, Any]] = []
    began: dict | None = None  # the event that made the version being followed
    for e in events:
        if e["operation"] in ("update", "delete"):
            out.append({"row": e, "made": began, "valid_from": e["valid_from"] or e["changed_at"],
                        "valid_to": e["changed_at"], "ended_by": e["operation"]})
        began = None if e["operation"] == "delete" else e
    if current is not None:
        start = began["changed_at"] if began else current["updated_at"]
        out.append({"row": current, "made": began, "valid_from": start, "valid_to": None, "ended_by": None})
    return out


def _fields(layer: Layer, row: dict) -> dict[str, Any]:
    names = [f.name for f in layer.all_fields] + [m.name for m in layer.stored_measures]
    return {n: _json(row.get(n)) for n in names} | {"extra": row.get("extra")}


def _size(layer: Layer) -> str | None:
    return "length_m" if layer.is_linear else ("area_mu" if layer.is_polygonal else None)


def versions(conn: Connection, layer: Layer, feature_id: int) -> list[dict[str, Any]]:
    """Every version of a feature, oldest first, each with what changed from the one before.

    ``changes``: attributes that differ (``from``/``to``), the size's change (亩 for polygons,
    metres for lines) and ``moved_m``, how far the boundary moved (Hausdorff distance in
    EPSG:4545). Raises :class:`FeatureVersionNotFoundError` when the layer never had it.
    """
    events, current = _rows(conn, layer, feature_id)
    assembled = _assemble(layer, events, current)
    if not assembled:
        raise FeatureVersionNotFoundError(f"{layer.id} has no feature {feature_id} now or in its history")
    pairs = [(a["row"]["geom_wkb"], b["row"]["geom_wkb"]) for a, b in pairwise(assembled)]
    moved: list[float | None] = []
    if pairs:
        moved = list(conn.scalars(sa.text(
            f"SELECT ST_HausdorffDistance(ST_Transform(CAST(a AS geometry), {METRIC_SRID}), "
            f"ST_Transform(CAST(b AS geometry), {METRIC_SRID})) FROM unnest(CAST(:a AS text[]), "
            "CAST(:b AS text[])) WITH ORDINALITY AS u(a, b, n) ORDER BY n"),
            {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]}))
    size = _size(layer)
    result = []
    for i, v in enumerate(assembled):
        props = _fields(layer, v["row"])
        entry = {"version": i + 1, "current": v["valid_to"] is None,
                 "valid_from": _json(v["valid_from"]), "valid_to": _json(v["valid_to"]),
                 "ended_by": v["ended_by"], **{k: _json(x) for k, x in _who(v["made"]).items()}}
        if i > 0:
            before = _fields(layer, assembled[i - 1]["row"])
            changed = {k: {"from": before[k], "to": props[k]} for k in props
                       if before[k] != props[k] and k not in {m.name for m in layer.stored_measures}}
            entry["changes"] = {"attributes": changed, "moved_m": round(moved[i - 1] or 0.0, 3)}
            if size:
                entry["changes"][f"{size}_change"] = round((props[size] or 0) - (before[size] or 0), 4)
        if size:
            entry[size] = props[size]
        result.append(entry)
    return result


def version(conn: Connection, layer: Layer, feature_id: int, number: int) -> dict[str, Any]:
    """Version ``number`` (1 is the oldest) of a feature, whole, as a GeoJSON Feature."""
    events, current = _rows(conn, layer, feature_id)
    assembled = _assemble(layer, events, current)
    if not 1 <= number <= len(assembled):
        raise FeatureVersionNotFoundError(
            f"{layer.id} feature {feature_id} has {len(assembled)} version(s), not {number}")
    v = assembled[number - 1]
    return {"type": "Feature", "id": feature_id, "geometry": json.loads(v["row"]["geometry"]),
            "properties": _fields(layer, v["row"]),
            "version": {"version": number, "current": v["valid_to"] is None,
                        "valid_from": _json(v["valid_from"]), "valid_to": _json(v["valid_to"]),
                        **{k: _json(x) for k, x in _who(v["made"]).items()}}}


# --- putting things back -------------------------------------------------------------------------

@dataclass
class Restored:
    """What a restore wrote."""

    layer: str
    feature_id: int
    version: int
    recreated: bool
    audit_id: int

    def as_dict(self) -> dict[str, Any]:
        """As the API answers."""
        return {"layer": self.layer, "feature_id": self.feature_id, "version": self.version,
                "recreated": self.recreated, "audit_id": self.audit_id}


def _integrity(exc: sa.exc.IntegrityError, what: str) -> str:
    detail = str((getattr(exc.orig, "diag", None) and exc.orig.diag.message_detail) or exc.orig)
    return f"{what}: {detail.strip()}"


def restore_feature(engine: sa.Engine, layer: Layer, feature_id: int, number: int,
                    who: Who | None) -> Restored:
    """Write version ``number`` back as the feature's current one (re-created when deleted).

    One transaction: the write (recorded by the history as a change like any other) and
    its audit entry ``feature.restore``.
    """
    edit_id = f"restore:{uuid.uuid4().hex}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"LOCK TABLE {layer.table} IN SHARE ROW EXCLUSIVE MODE"))
            events, current = _rows(conn, layer, feature_id)
            assembled = _assemble(layer, events, current)
            if not 1 <= number <= len(assembled):
                raise FeatureVersionNotFoundError(
                    f"{layer.id} feature {feature_id} has {len(assembled)} version(s), not {number}")
            row = assembled[number - 1]["row"]
            attribute(conn, who, edit_id=edit_id)
            cols = _writable(layer)
            values = {c: row[c] for c in cols if c not in ("geom", TOWNSHIP_CODE)}
            if layer.by_township:
                values[TOWNSHIP_CODE] = township_of(row["village_code"])
            values["extra"] = json.dumps(values["extra"] or {}, ensure_ascii=False)
            values |= {"geom": row["geom_wkb"], "fid": feature_id}
            exprs = {c: f"CAST(:{c} AS jsonb)" if c == "extra" else
                     ("CAST(:geom AS geometry)" if c == "geom" else f":{c}") for c in cols}
            if current is not None:
                sets = ", ".join(f"{c} = {exprs[c]}" for c in cols if c != TOWNSHIP_CODE)
                # in its township (on Citus: one shard, and no row moves between shards)
                where = " AND township_code = :township_code" if layer.by_township else ""
                if not conn.execute(sa.text(f"UPDATE {layer.table} SET {sets} WHERE id = :fid{where}"),
                                    values).rowcount:
                    raise RestoreConflictError(f"version {number} of {layer.id} {feature_id} lies in another "
                                               "township than the feature: it cannot be written back")
            else:
                conn.execute(sa.text(f"INSERT INTO {layer.table} (id, {', '.join(cols)}) "
                                     f"VALUES (:fid, {', '.join(exprs[c] for c in cols)})"), values)
            audit_id = audit.record_as(conn, who, "feature.restore", layer=layer.id, feature_ids=[feature_id],
                                       counts={"restored": 1},
                                       detail={"version": number, "recreated": current is None,
                                               "edit_id": edit_id})
    except sa.exc.IntegrityError as exc:
        raise RestoreConflictError(_integrity(exc, f"version {number} of {layer.id} {feature_id} "
                                              "cannot be written back")) from None
    return Restored(layer.id, feature_id, number, current is None, audit_id)


@dataclass
class UploadChanges:
    """Where an upload's commit is in the history."""

    upload_id: str
    layer: Layer
    xact: int | None
    at: datetime
    action: str


def upload_changes(conn: Connection, upload_id: str) -> UploadChanges:
    """The commit of ``upload_id`` (its layer, transaction and time), from the audit trail."""
    row = conn.execute(sa.text(
        "SELECT layer, xact, at, action FROM audit WHERE upload_id = :u AND action IN "
        "('upload.commit', 'upload.replace') ORDER BY id DESC LIMIT 1"), {"u": upload_id}).first()
    if row is None:
        state = conn.scalar(sa.text("SELECT state FROM uploads WHERE id = :u"), {"u": upload_id})
        if state is None:
            raise UndoUnknownUploadError(f"no upload {upload_id!r} was committed")
        raise UndoRefusedError(f"upload {upload_id} is {state}, not committed: there is nothing to undo")
    if row.layer not in LAYERS:
        raise UndoRefusedError(f"upload {upload_id} wrote layer {row.layer!r}, which is no longer declared")
    return UploadChanges(upload_id, get_layer(row.layer), row.xact, row.at, row.action)


def undo_upload(engine: sa.Engine, upload_id: str, who: Who | None, *, force: bool = False,
                statement_timeout_ms: int | None = None) -> dict[str, Any]:
    """Undo a committed upload in one transaction: its inserts removed, its updates and deletes restored.

    Refused (:class:`UndoConflictError`, 409) when a later change touched one of its
    features and is still in effect (the feature is no longer as the upload left it: a later
    change that was itself undone does not count), unless ``force``; then the features go
    back to before the upload, later changes included. Recorded as ``upload.undo`` (and, by
    the history, change by change). ``statement_timeout_ms`` replaces the engine's limit (0:
    none), as for the commit it undoes.
    """
    edit_id = f"undo:{upload_id}"
    try:
        with engine.begin() as conn:
            if statement_timeout_ms is not None:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            up = upload_changes(conn, upload_id)
            layer = up.layer
            if conn.scalar(sa.text("SELECT 1 FROM audit WHERE upload_id = :u AND action = 'upload.undo'"),
                           {"u": upload_id}):
                raise UndoRefusedError(f"upload {upload_id} is undone already")
            if up.xact is None:
                raise UndoRefusedError(f"upload {upload_id} was committed before landeco kept history")
            conn.execute(sa.text(f"LOCK TABLE {layer.table} IN SHARE ROW EXCLUSIVE MODE"))
            hist = history_table(layer)
            cols = _writable(layer)
            # the upload's first change of each feature: an insert, or the version before it (the
            # commit's changes are those of its transaction, which wrote its audit entry too)
            conn.execute(sa.text(
                f"CREATE TEMP TABLE undo_changes ON COMMIT DROP AS SELECT DISTINCT ON (feature_id) "
                f"history_id, feature_id, operation, {', '.join(cols)} FROM {hist} "
                "WHERE xact = :x AND changed_at = :at ORDER BY feature_id, history_id"),
                {"x": up.xact, "at": up.at})
            conn.execute(sa.text("ALTER TABLE undo_changes ADD PRIMARY KEY (feature_id)"))
            total = conn.scalar(sa.text("SELECT count(*) FROM undo_changes"))
            if not total:
                raise UndoRefusedError(f"upload {upload_id} changed no feature the history knows of")
            last = conn.scalar(sa.text(f"SELECT max(history_id) FROM {hist} WHERE xact = :x AND "
                                       "changed_at = :at"), {"x": up.xact, "at": up.at})
            # a later change counts while it is in effect: the feature is not as the upload left it
            # (the first change after the upload holds what the upload left: a version, or nothing)
            same = " AND ".join(f"n.{c} IS NOT DISTINCT FROM t.{c}" for c in cols if c != "created_at")
            later = list(conn.scalars(sa.text(
                f"SELECT n.feature_id FROM (SELECT DISTINCT ON (h.feature_id) h.* FROM {hist} h "
                "JOIN undo_changes u USING (feature_id) WHERE h.history_id > :last "
                f"ORDER BY h.feature_id, h.history_id) n LEFT JOIN {layer.table} t ON t.id = n.feature_id "
                "WHERE CASE WHEN n.operation = 'insert' THEN t.id IS NOT NULL "
                f"ELSE t.id IS NULL OR NOT ({same}) "
                "END ORDER BY 1"), {"last": last}))
            if later and not force:
                raise UndoConflictError(
                    f"{len(later)} feature(s) of upload {upload_id} changed after it; undo those changes "
                    "first, or force (?force=true, --force) to put them back to before the upload",
                    later[:LISTED], len(later))
            attribute(conn, who, edit_id=edit_id)
            removed = conn.execute(sa.text(
                f"DELETE FROM {layer.table} t USING undo_changes u WHERE t.id = u.feature_id "
                "AND u.operation = 'insert'")).rowcount
            # a feature stays in its township (Citus moves no row between shards): one moved since
            # is not put back (the CHECK of its township refuses a village elsewhere)
            sets = ", ".join(f"{c} = u.{c}" for c in cols if c != TOWNSHIP_CODE)
            same_town = " AND t.township_code = u.township_code" if layer.by_township else ""
            restored = conn.execute(sa.text(
                f"UPDATE {layer.table} t SET {sets} FROM undo_changes u WHERE t.id = u.feature_id "
                f"AND u.operation <> 'insert'{same_town}")).rowcount
            recreated = conn.execute(sa.text(
                # an anti-join, not a correlated NOT EXISTS: Citus cannot push that onto the shards
                f"INSERT INTO {layer.table} (id, {', '.join(cols)}) SELECT u.feature_id, "
                f"{', '.join(f'u.{c}' for c in cols)} FROM undo_changes u LEFT JOIN {layer.table} t "
                f"ON t.id = u.feature_id WHERE u.operation <> 'insert' AND t.id IS NULL")).rowcount
            ids = list(conn.scalars(sa.text(f"SELECT feature_id FROM undo_changes ORDER BY 1 "
                                            f"LIMIT {audit.MAX_FEATURE_IDS}")))
            counts = {"removed": removed, "restored": restored, "recreated": recreated}
            audit_id = audit.record_as(conn, who, "upload.undo", layer=layer.id, upload_id=upload_id,
                                       counts=counts, feature_ids=ids,
                                       detail={"forced": bool(force and later), "later_changes": len(later),
                                               "edit_id": edit_id})
    except sa.exc.IntegrityError as exc:
        raise UndoConflictError(_integrity(exc, f"upload {upload_id} cannot be undone"), [], 0) from None
    return {"upload_id": upload_id, "layer": layer.id, **counts, "forced": bool(force and later),
            "later_changes": len(later), "audit_id": audit_id}
