"""``GET /audit``: the audit trail as a page, JSON or CSV; and who a request is, for the trail.

Every write of the web records ``who(request)``: the signed-in person
(``request.state.principal.name``, set by the accounts middleware) or anonymous, the client's
address and the route. The page is for administrators (the permission table marks it so).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.deps import ConnDep, get_engine, wants_html
from api.pages import LangDep, render
from layers import audit
from layers.audit import InvalidAuditFilterError, Who
from layers.registry import LAYERS

__all__ = ["record_request", "router", "who"]

router = APIRouter(tags=["audit"])

#: Rows one CSV download holds at most (the filters narrow it).
CSV_MAX_ROWS = 100_000
#: Characters of a CSV cell Excel shows (it cuts a cell at 32 767).
_CELL = 32_000
#: What starts a formula in a spreadsheet: such a cell gets a leading apostrophe.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def who(request: Request) -> Who:
    """Who makes ``request``: the signed-in person's name (``None``: anonymous), address, route."""
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", None)
    address = request.client.host if request.client else None
    return Who(actor=name, address=address, route=f"{request.method} {request.url.path}")


def record_request(request: Request, conn: sa.Connection, action: str, **fields: Any) -> int:
    """Append an entry for ``request`` in ``conn``'s transaction (accounts, sign-in, edits).

    ``fields`` are those of :func:`layers.audit.record` (``layer``, ``counts``, ``detail`` …);
    ``actor`` may be given to override the principal (a failed sign-in names whom it tried).
    """
    w = who(request)
    fields.setdefault("actor", w.actor)
    fields.setdefault("route", w.route)
    return audit.record(conn, address=w.address, action=action, **fields)


# -- the filters ----------------------------------------------------------------------------------

def _zone(request: Request) -> ZoneInfo:
    try:
        return ZoneInfo(request.app.state.settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant(text: str | None, name: str, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A date (local; ``until`` includes the whole day) or an ISO date-time (local when naive)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), zone)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InvalidAuditFilterError(f"{name} is not a date (YYYY-MM-DD) nor a date-time: "
                                      f"{text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _filters(request: Request, actor: str | None, layer: str | None, action: str | None, since: str | None,
             until: str | None) -> dict[str, Any]:
    zone = _zone(request)
    return {"actor": None if actor is None or actor == "" else ("" if actor == "-" else actor),
            "layer": layer or None, "action": action or None,
            "since": _instant(since, "since", zone, end=False),
            "until": _instant(until, "until", zone, end=True)}


# -- the answers ----------------------------------------------------------------------------------

def _entry(row: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    return {**row, "at": row["at"].astimezone(zone).isoformat(timespec="seconds")}


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text.startswith(_FORMULA):
        text = "'" + text
    return text[:_CELL]


_CSV_HEAD = {"zh": ["编号", "时间", "操作人", "地址", "操作", "操作代码", "路径", "图层", "上传编号", "数量",
                    "要素数", "要素编号", "详情"],
             "en": ["id", "at", "actor", "address", "action", "action_code", "route", "layer", "upload_id",
                    "counts", "feature_count", "feature_ids", "detail"]}


def _csv(engine: sa.Engine, filters: dict[str, Any], zone: ZoneInfo, lang: str) -> Iterator[bytes]:
    """UTF-8 with a BOM (Excel reads the Chinese), every matching entry, a page of rows at a time."""
    i = 1 if lang == "en" else 0
    yield ("\ufeff" + ",".join(_CSV_HEAD[lang]) + "\r\n").encode()
    page = 2000
    for offset in range(0, CSV_MAX_ROWS, page):
        with engine.connect() as conn:
            rows = audit.query(conn, **filters, limit=min(page, CSV_MAX_ROWS - offset), offset=offset)
        buf = io.StringIO()
        out = csv.writer(buf)
        for r in rows:
            ids = r["feature_ids"] or []
            out.writerow([r["id"], r["at"].astimezone(zone).isoformat(timespec="seconds"), _cell(r["actor"]),
                          _cell(r["address"]), _cell(audit.ACTIONS.get(r["action"], (r["action"],) * 2)[i]),
                          _cell(r["action"]), _cell(r["route"]), _cell(r["layer"]), _cell(r["upload_id"]),
                          _cell(r["counts"]), len(ids), _cell(" ".join(map(str, ids))), _cell(r["detail"])])
        yield buf.getvalue().encode()
        if len(rows) < page:
            return


def _link(base: str, params: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return f"{base}/audit?{urlencode(merged)}" if merged else f"{base}/audit"


@router.get("/audit", summary="The audit trail: who wrote what, when, from where (administrators)")
def audit_trail(request: Request, conn: ConnDep,
                actor: Annotated[str | None, Query(description="a person's name; `-` for anonymous")] = None,
                layer: Annotated[str | None, Query(description="a layer id")] = None,
                action: Annotated[str | None, Query(description="an action (`upload.commit`) or a family "
                                                    "(`upload`)")] = None,
                since: Annotated[str | None, Query(description="from this date (YYYY-MM-DD, local) or "
                                                   "ISO date-time, inclusive")] = None,
                until: Annotated[str | None, Query(description="to this date, inclusive (or before this "
                                                   "ISO date-time)")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                f: Annotated[Literal["json", "html", "csv"] | None, Query(
                    description="json, html (browsers' default) or csv (every matching entry)")] = None,
                lang: LangDep = "zh") -> Response:
    """Entries newest first, filtered by person, layer, action and dates; paged (CSV: all)."""
    zone = _zone(request)
    filters = _filters(request, actor, layer, action, since, until)
    params = {"actor": actor, "layer": layer, "action": action, "since": since, "until": until,
              "lang": None if lang == "zh" else lang}
    if f == "csv":
        name = f"landeco-audit-{datetime.now(zone):%Y%m%d-%H%M}.csv"
        return StreamingResponse(_csv(get_engine(request), filters, zone, lang),
                                 media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})
    rows = audit.query(conn, **filters, limit=limit, offset=offset)
    total = audit.count(conn, **filters)
    base = str(request.base_url).rstrip("/")
    entries = [_entry(r, zone) for r in rows]
    links = {"self": _link(base, params, limit=limit, offset=offset or None, f=f),
             "csv": _link(base, params, f="csv"),
             "json": _link(base, params, limit=limit, offset=offset or None, f="json")}
    if offset + limit < total:
        links["next"] = _link(base, params, limit=limit, offset=offset + limit, f=f)
    if offset > 0:
        links["prev"] = _link(base, params, limit=limit, offset=max(offset - limit, 0) or None, f=f)
    if not wants_html(request, f if f != "csv" else None):
        return JSONResponse({"entries": entries, "total": total, "limit": limit, "offset": offset,
                             "links": links})
    en = lang == "en"
    return render(request, "audit/page.html", lang, entries=entries, total=total, limit=limit, offset=offset,
                  links=links, form={"actor": actor or "", "layer": layer or "", "action": action or "",
                                     "since": since or "", "until": until or ""},
                  actors=audit.actors(conn), layers=[(i, lyr.title(lang)) for i, lyr in LAYERS.items()],
                  actions=[(code, labels[1 if en else 0]) for code, labels in audit.ACTIONS.items()],
                  labels={code: labels[1 if en else 0] for code, labels in audit.ACTIONS.items()})
