"""Change patches (变化图斑): found between two rasters, then checked and rectified (整改) step by step.

Detection (:func:`detect`, the ``change_detect`` job) compares two rasters of one kind
(:func:`gis.change.detect_changes`) and inserts the patches as ``pending``, each attributed to
the village it mostly lies in. Running it again on the same pair adds no duplicate: a patch
overlapping (by area, not a shared edge) a patch already found for the same pair and kind is
left out and counted as ``known`` - the one found first keeps its status and steps.

The workflow (:data:`TRANSITIONS`): pending → verified → rectified, pending or verified →
false_alarm; rectified and false_alarm are final. :func:`step` moves one patch; the database
(migration 0014) refuses any other change of status, whoever writes, and records every step
(who, when, note) in ``change_patch_steps``. :func:`change_patch_summary` counts patches and 亩 by
village and status for the work report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers import audit
from layers.accounts import ForbiddenError
from layers.audit import Who
from layers.columns import FeatureNotFoundError
from layers.defs.change_patches import LAYER, TRANSITIONS
from layers.errors import BadRequestError, LandecoError
from layers.history import attribute

__all__ = ["FINAL", "ILLEGAL_SQLSTATE", "STATUSES", "STEP_ROLES", "TRANSITIONS", "DetectionParameterError",
           "IllegalTransitionError", "RasterPairError", "StepForbiddenError", "change_patch_summary",
           "check_detection", "check_pair", "check_step", "detect", "from_database", "insert_patches",
           "list_patches", "may_step", "step", "steps"]

FLOW = LAYER.workflow
assert FLOW is not None
#: Every status, in the order of the workflow.
STATUSES: tuple[str, ...] = LAYER.get_field("status").values
#: States nothing leaves.
FINAL: tuple[str, ...] = tuple(s for s in STATUSES if not FLOW.allowed(s))
#: The SQLSTATE the database's guard raises for a refused step (migration 0014).
ILLEGAL_SQLSTATE = "LE409"
#: Who may take a patch to a status: field checks are surveyors', a rectification is confirmed by a
#: surveyor or a planner (administrators may do all).
STEP_ROLES: dict[str, tuple[str, ...]] = {"verified": ("surveyor",), "false_alarm": ("surveyor",),
                                          "rectified": ("surveyor", "planner")}
#: Steps that need a note: why it is no change, what was done.
NOTE_REQUIRED = ("false_alarm", "rectified")
MAX_NOTE = 2000


class IllegalTransitionError(LandecoError):
    """The patch's status cannot go there from where it is (the final states are final)."""

    code = "illegal_transition"
    status = 409
    title = "Illegal status change"

    def __init__(self, detail: str, *, current: str | None, requested: str | None,
                 allowed: tuple[str, ...] | list[str]) -> None:
        super().__init__(detail)
        self.current, self.requested, self.allowed = current, requested, list(allowed)

    def extra(self) -> dict[str, object]:
        """The current status and the ones it may move to."""
        return {"current_status": self.current, "requested_status": self.requested,
                "allowed": self.allowed}


class InvalidStepError(BadRequestError):
    """The step's body is wrong: an unknown status, a note too long or missing."""

    code = "invalid_step"
    title = "Invalid status step"


class StepForbiddenError(ForbiddenError):
    """The account lacks the role this step needs (verification is a surveyor's)."""

    code = "step_forbidden"
    title = "Not allowed to take this step"


def from_database(exc: BaseException) -> IllegalTransitionError | None:
    """The guard's refusal (SQLSTATE ``LE409``, its DETAIL JSON) as the domain error, else None."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) != ILLEGAL_SQLSTATE:
        return None
    diag = getattr(orig, "diag", None)
    try:
        facts = json.loads(getattr(diag, "message_detail", None) or "{}")
    except ValueError:
        facts = {}
    message = getattr(diag, "message_primary", None) or "the status cannot change that way"
    return IllegalTransitionError(message, current=facts.get("status"), requested=facts.get("requested"),
                                  allowed=facts.get("allowed") or [])


def may_step(has: Callable[[str], bool], status: str) -> bool:
    """Whether an account (its ``has(role)``) may take a patch to ``status``."""
    return any(has(role) for role in STEP_ROLES.get(status, ())) or has("admin")


def check_step(body: Any) -> tuple[str, str | None]:
    """``{"status": …, "note": …}`` checked: a known status, a note of text when needed."""
    if not isinstance(body, dict):
        raise InvalidStepError('the body is a JSON object {"status": …, "note": …}')
    unknown = sorted(set(body) - {"status", "note"})
    if unknown:
        raise InvalidStepError(f"a step has no {', '.join(map(repr, unknown))}: it takes status and note")
    status, note = body.get("status"), body.get("note")
    if not isinstance(status, str) or status not in STATUSES:
        raise InvalidStepError(f"status is one of {', '.join(STATUSES)}")
    if note is not None and not isinstance(note, str):
        raise InvalidStepError("note is a text")
    note = (note or "").strip() or None
    if note is not None and (len(note) > MAX_NOTE or "\x00" in note):
        raise InvalidStepError(f"the note is at most {MAX_NOTE} characters of text")
    if status in NOTE_REQUIRED and note is None:
        raise InvalidStepError(f"a step to {status} needs a note (why, or what was done)")
    return status, note


def step(engine: sa.Engine, feature_id: int, *, status: str, note: str | None, who: Who | None,
         has: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Move patch ``feature_id`` to ``status`` with ``note``; the patch and its steps after.

    Refused: 404 for an unknown patch, 409 :class:`IllegalTransitionError` for a step the workflow
    does not allow (checked here and, whatever happens meanwhile, by the database), then 403 when
    ``has`` (the account's roles) lacks the step's role.
    """
    status, note = check_step({"status": status, "note": note})
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT code, status FROM change_patches WHERE id = :fid FOR UPDATE"),
                           {"fid": feature_id}).first()
        if row is None:
            raise FeatureNotFoundError(f"change_patches has no feature {feature_id}")
        allowed = FLOW.allowed(row.status)
        if status not in allowed:
            raise IllegalTransitionError(
                f"change patch {row.code} is {row.status}: it can become "
                f"{', '.join(allowed) if allowed else 'nothing else (final)'}",
                current=row.status, requested=status, allowed=allowed)
        if has is not None and not may_step(has, status):
            roles = " or ".join(STEP_ROLES.get(status, ("admin",)))
            raise StepForbiddenError(f"taking a change patch to {status} needs the {roles} role")
        attribute(conn, who)
        try:
            with conn.begin_nested():
                conn.execute(sa.text("UPDATE change_patches SET status = :s, status_note = :n "
                                     "WHERE id = :fid"),
                             {"s": status, "n": note, "fid": feature_id})
        except sa.exc.DBAPIError as exc:
            error = from_database(exc)
            if error is None:
                raise
            raise error from None
        audit.record_as(conn, who, "change_patch.step", layer=LAYER.id, feature_ids=[feature_id],
                        counts={"updated": 1}, detail={"code": row.code, "from": row.status, "to": status})
        return {**_patch(conn, feature_id), "steps": steps(conn, feature_id)}


def _patch(conn: Connection, feature_id: int) -> dict[str, Any]:
    row = conn.execute(sa.text(
        "SELECT id, code, village_code, kind, status, status_note, status_by, status_at, area_mu "
        "FROM change_patches WHERE id = :fid"), {"fid": feature_id}).mappings().first()
    if row is None:
        raise FeatureNotFoundError(f"change_patches has no feature {feature_id}")
    out = dict(row)
    out["status_at"] = out["status_at"].isoformat() if out["status_at"] else None
    out["allowed"] = list(FLOW.allowed(out["status"]))
    return out


def steps(conn: Connection, feature_id: int) -> list[dict[str, Any]]:
    """The steps of a patch, oldest first: from, to, note, who, when (ISO 8601)."""
    exists = conn.scalar(sa.text("SELECT 1 FROM change_patches WHERE id = :fid"), {"fid": feature_id})
    rows = conn.execute(sa.text(
        "SELECT from_status, to_status, note, by, at FROM change_patch_steps WHERE patch_id = :fid "
        "ORDER BY id"), {"fid": feature_id}).mappings().all()
    if not exists and not rows:
        raise FeatureNotFoundError(f"change_patches has no feature {feature_id}")
    return [{"from": r["from_status"], "to": r["to_status"], "note": r["note"], "by": r["by"],
             "at": r["at"].isoformat()} for r in rows]


# --- detection ---------------------------------------------------------------------------------

class DetectionParameterError(BadRequestError):
    """A detection's parameters are wrong: raster ids, threshold, direction or minimum size."""

    code = "invalid_detection"
    title = "Invalid change detection"


class RasterPairError(BadRequestError):
    """The two rasters cannot be compared: one raster twice, two kinds, or no common ground."""

    code = "raster_pair_mismatch"
    title = "Rasters cannot be compared"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def extra(self) -> dict[str, object]:
        """Why: ``same_raster``, ``kind_differs`` or ``no_overlap``."""
        return {"reason": self.reason}


#: A detection's defaults: an absolute change of 0.15 (NDVI), either way, patches of 1 亩 and more.
DETECTION_DEFAULTS = {"threshold": 0.15, "direction": "both", "min_mu": 1.0}


def _number(params: dict[str, Any], name: str, lo: float, hi: float) -> float:
    value = params.get(name, DETECTION_DEFAULTS.get(name))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DetectionParameterError(f"{name} is a number")
    try:
        number = float(value)
    except ValueError:
        raise DetectionParameterError(f"{name} is a number, not {str(value)[:40]!r}") from None
    if not (lo <= number <= hi):  # NaN fails too
        raise DetectionParameterError(f"{name} is between {lo:g} and {hi:g}")
    return number


def check_detection(params: dict[str, Any]) -> dict[str, Any]:
    """A detection's parameters checked before queueing: raster ids, threshold, direction, min_mu.

    ``before`` and ``after`` are raster ids, ``actor`` who asked.
    """
    from gis.change import DIRECTIONS

    if not isinstance(params, dict):
        raise DetectionParameterError("the parameters are a JSON object")
    unknown = set(params) - {"before", "after", "threshold", "direction", "min_mu", "actor"}
    if unknown:
        raise DetectionParameterError(f"a detection takes no {', '.join(sorted(map(str, unknown)))}")
    ids = {}
    for name in ("before", "after"):
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() \
                or not 0 < int(value) < 2**63:
            raise DetectionParameterError(f"{name} is the id of a raster (a whole number)")
        ids[name] = int(value)
    direction = params.get("direction", DETECTION_DEFAULTS["direction"])
    if direction not in DIRECTIONS:
        raise DetectionParameterError(f"direction is one of {', '.join(DIRECTIONS)}")
    actor = params.get("actor")
    if actor is not None and not isinstance(actor, str):
        raise DetectionParameterError("actor is a text")
    return {**ids, "threshold": _number(params, "threshold", 1e-9, 1e9), "direction": direction,
            "min_mu": _number(params, "min_mu", 0, 1e7), "actor": actor}


def check_pair(conn: Connection, before_id: int, after_id: int) -> tuple[Any, Any]:
    """The two rasters (404 ``raster_not_found``), of one kind and overlapping, else 400."""
    from layers.rasters import get_raster

    if before_id == after_id:
        raise RasterPairError("compare two different rasters", "same_raster")
    before, after = get_raster(conn, before_id), get_raster(conn, after_id)
    if before.kind != after.kind:
        raise RasterPairError(f"raster {before.id} is {before.kind} and raster {after.id} is {after.kind}: "
                              "compare rasters of one kind", "kind_differs")
    if before.footprint.intersection(after.footprint).area <= 0:
        raise RasterPairError(f"rasters {before.id} and {after.id} cover no common ground", "no_overlap")
    return before, after


def detect(engine: sa.Engine, *, before: int, after: int, threshold: float, direction: str, min_mu: float,
           who: Who | None, on_progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Compare two registered rasters and write their patches as ``pending``; what was written."""
    from gis.change import detect_changes
    from gis.errors import InputError

    with engine.connect() as conn:
        first, second = check_pair(conn, before, after)
    if first.acquired > second.acquired:  # before is the earlier one, whatever order they came in
        first, second = second, first

    def report(fraction: float) -> None:
        if on_progress is not None:
            on_progress(0.05 + 0.85 * fraction, "正在比较影像")

    try:
        found = detect_changes(first.uri, second.uri, threshold=threshold,
                               direction=direction,  # type: ignore[arg-type]
                               min_mu=min_mu, on_progress=report)
    except InputError as err:
        if err.code == "rasters_disjoint":
            raise RasterPairError(str(err), "no_overlap") from None
        raise DetectionParameterError(str(err)) from None
    if on_progress is not None:
        on_progress(0.92, "正在写入图斑")
    with engine.begin() as conn:
        out = insert_patches(conn, found, before_id=first.id, after_id=second.id, before_date=first.acquired,
                             after_date=second.acquired, threshold=threshold, who=who)
        audit.record_as(conn, who, "change_patch.detect", layer=LAYER.id, feature_ids=out["feature_ids"],
                        counts={"inserted": out["inserted"], "known": out["known"]},
                        detail={"before": first.id, "after": second.id, "threshold": threshold,
                                "direction": direction, "min_mu": min_mu})
    return {**out, "before": first.id, "after": second.id, "found": len(found)}


def _job_kind() -> None:
    from layers.jobs import JobContext, job_kind

    @job_kind("change_detect", zh="检测变化图斑", en="Detect change patches", check=check_detection)
    def change_detect(ctx: JobContext, *, before: int, after: int, threshold: float, direction: str,
                      min_mu: float, actor: str | None = None) -> dict[str, Any]:
        """Patches between two rasters, written as pending; the counts and the page to see them."""
        out = detect(ctx.engine, before=before, after=after, threshold=threshold, direction=direction,
                     min_mu=min_mu, who=Who(actor=actor, route="job: change_detect"),
                     on_progress=lambda f, m: ctx.progress(f, m))
        return {key: out[key] for key in ("inserted", "known", "found", "area_mu", "before", "after")} | {
            "page": "/change_patches"}


_job_kind()

def insert_patches(conn: Connection, patches: list[Any], *, before_id: int, after_id: int,
                   before_date: date | None, after_date: date | None, threshold: float,
                   who: Who | None, detected_on: date | None = None) -> dict[str, Any]:
    """Write detected patches (:class:`gis.change.ChangePatch`) as ``pending``; counts and codes.

    Codes are ``BH-<year of the later raster>-<number>``, numbered on from the year's highest; the
    mean change is kept to two decimals, as spreadsheets show it (a download uploaded back changes
    nothing).
    A patch overlapping one already found for the same pair and kind is not written (``known``).
    """
    attribute(conn, who)
    conn.execute(sa.text("LOCK TABLE change_patches IN SHARE ROW EXCLUSIVE MODE"))
    year = (after_date or detected_on or date.today()).year
    prefix = f"BH-{year}-"
    last = conn.scalar(sa.text(
        "SELECT max(substring(code FROM '^BH-[0-9]{4}-([0-9]+)$')::int) FROM change_patches "
        "WHERE code LIKE :p"), {"p": prefix + "%"}) or 0
    inserted: list[int] = []
    known = 0
    note = f"raster {before_id} → {after_id}, threshold {threshold:g}"
    for patch in patches:
        geom = shapely.to_wkb(shapely.geometry.MultiPolygon(
            list(getattr(patch.geometry, "geoms", [patch.geometry]))), hex=True)
        fid = conn.scalar(sa.text(
            "WITH g AS (SELECT ST_Multi(ST_GeomFromWKB(decode(:geom, 'hex'), 4326)) AS geom), "
            "gv AS (SELECT g.geom, (SELECT v.code FROM villages v WHERE ST_Intersects(v.geom, g.geom) "
            "  ORDER BY ST_Area(ST_Intersection(v.geom, g.geom)) DESC, v.code LIMIT 1) AS village FROM g) "
            "INSERT INTO change_patches (code, village_code, kind, mean_change, threshold, before_raster_id, "
            "after_raster_id, before_date, after_date, detected_on, status, status_note, geom, "
            "township_code) "
            "SELECT :code, g.village, "
            ":kind, :mean, :threshold, :before, :after, :before_date, :after_date, :on, 'pending', :note, "
            "g.geom, coalesce(left(g.village, 9), '') "
            "FROM gv g WHERE NOT EXISTS (SELECT 1 FROM change_patches c WHERE c.before_raster_id = :before "
            "  AND c.after_raster_id = :after AND c.kind = :kind AND ST_Intersects(c.geom, g.geom) "
            "  AND ST_Area(ST_Intersection(c.geom, g.geom)) > 0) "
            "RETURNING id"),
            {"geom": geom, "code": f"{prefix}{last + len(inserted) + 1:04d}", "kind": patch.kind,
             "mean": round(float(patch.mean_change), 2), "threshold": threshold, "before": before_id,
             "after": after_id, "before_date": before_date, "after_date": after_date,
             "on": detected_on or date.today(), "note": note})
        if fid is None:
            known += 1
        else:
            inserted.append(fid)
    area = conn.scalar(sa.text("SELECT coalesce(sum(area_mu), 0) FROM change_patches WHERE id = ANY(:ids)"),
                       {"ids": inserted}) if inserted else 0.0
    return {"inserted": len(inserted), "known": known, "area_mu": round(float(area), 2),
            "feature_ids": inserted[:1000]}


# --- reading -------------------------------------------------------------------------------------

def _period(start: date | None, end: date | None) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if start is not None:
        clauses.append("p.detected_on >= :start")
        params["start"] = start
    if end is not None:
        clauses.append("p.detected_on <= :end")
        params["end"] = end
    return (" AND ".join(clauses) or "TRUE"), params


def change_patch_summary(conn: Connection, *, start: date | None = None,
                         end: date | None = None) -> dict[str, Any]:
    """Patches found between ``start`` and ``end`` (``detected_on``, inclusive) by village and status.

    The status counted is the one a patch had at the end of the period (its last step on or
    before ``end``; today's when ``end`` is None), so a report for 2025 made in 2026 counts what
    was rectified by the end of 2025. Returns ``rows`` (village_code, village_name, status,
    count, area_mu), ``villages`` (each with ``found`` and a figure per status), ``totals``
    (per status) and ``found`` (count and 亩 of all patches found in the period).
    """
    where, params = _period(start, end)
    status_sql = "p.status"
    if end is not None:
        status_sql = ("coalesce((SELECT s.to_status FROM change_patch_steps s WHERE s.patch_id = p.id "
                      "AND s.at < CAST(:end AS date) + 1 ORDER BY s.id DESC LIMIT 1), 'pending')")
    rows = conn.execute(sa.text(
        f"SELECT p.village_code, v.name AS village_name, {status_sql} AS status, count(*) AS n, "
        "coalesce(sum(p.area_mu), 0) AS mu FROM change_patches p "
        f"LEFT JOIN villages v ON v.code = p.village_code WHERE {where} "
        "GROUP BY 1, 2, 3 ORDER BY 1 NULLS LAST, 3"), params).mappings().all()
    empty = {s: {"count": 0, "area_mu": 0.0} for s in STATUSES}
    villages: dict[Any, dict[str, Any]] = {}
    totals = {s: {"count": 0, "area_mu": 0.0} for s in STATUSES}
    out_rows = []
    for r in rows:
        mu = float(r["mu"])
        out_rows.append({"village_code": r["village_code"], "village_name": r["village_name"],
                         "status": r["status"], "count": int(r["n"]), "area_mu": round(mu, 4)})
        v = villages.setdefault(r["village_code"], {
            "village_code": r["village_code"], "village_name": r["village_name"],
            "found": {"count": 0, "area_mu": 0.0}, "by_status": json.loads(json.dumps(empty))})
        for bucket in (v["by_status"][r["status"]], v["found"], totals[r["status"]]):
            bucket["count"] += int(r["n"])
            bucket["area_mu"] += mu
    for v in villages.values():
        for bucket in (v["found"], *v["by_status"].values()):
            bucket["area_mu"] = round(bucket["area_mu"], 4)
    found = {"count": sum(t["count"] for t in totals.values()),
             "area_mu": round(sum(t["area_mu"] for t in totals.values()), 4)}
    for t in totals.values():
        t["area_mu"] = round(t["area_mu"], 4)
    return {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None,
            "statuses": list(STATUSES), "rows": out_rows, "villages": list(villages.values()),
            "totals": totals, "found": found}


def list_patches(conn: Connection, *, village: str | None = None, status: str | None = None,
                 start: date | None = None, end: date | None = None,
                 limit: int = 500) -> list[dict[str, Any]]:
    """Patches newest first (of a village, a status, found in a period), with their village and 亩."""
    where, params = _period(start, end)
    clauses: list[str] = [where]
    params["limit"] = int(limit)
    if village is not None:
        clauses.append("p.village_code = :village")
        params["village"] = village
    if status is not None:
        clauses.append("p.status = :status")
        params["status"] = status
    where = " AND ".join(clauses) or "TRUE"
    rows = conn.execute(sa.text(
        "SELECT p.id, p.code, p.village_code, v.name AS village_name, p.kind, p.mean_change, p.status, "
        "p.status_note, p.status_by, p.status_at, p.detected_on, p.before_date, p.after_date, p.area_mu "
        f"FROM change_patches p LEFT JOIN villages v ON v.code = p.village_code WHERE {where} "
        "ORDER BY p.detected_on DESC, p.code LIMIT :limit"), params).mappings().all()
    out = []
    for r in rows:
        item = dict(r)
        item["allowed"] = list(FLOW.allowed(item["status"]))
        out.append(item)
    return out
