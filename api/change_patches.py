"""Change patches over HTTP: detection as a job, the workflow's steps, the page by village and status.

``POST /change_patches/detect`` queues a ``change_detect`` job (202, ``Location``);
``POST /collections/change_patches/items/{id}/status`` takes one step of the workflow (409
``illegal_transition`` for any other) and ``…/steps`` lists them; ``GET /change_patches`` is the
page staff read (counts and 亩 by village and status, the patches, the step form), JSON with
``f=json``. Verification and false alarms are surveyors', rectification a surveyor's or a
planner's (:data:`layers.change_patches.STEP_ROLES`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.audit import who
from api.auth import CsrfForm
from api.deps import ConnDep, get_engine, wants_html
from api.pages import LangDep, render
from layers import change_patches as cp
from layers import jobs
from layers.columns import FeatureNotFoundError
from layers.defs.change_patches import LAYER
from layers.errors import BadRequestError
from layers.values import InvalidParameterError, feature_number, iso_date, parse_json

__all__ = ["router"]

router = APIRouter(tags=["change patches"])

_STEP_BODY = {"requestBody": {"required": True, "description": 'one step: {"status": "verified", "note": '
                              '"现场核实"}; a note is needed for rectified and false_alarm',
                              "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["status"],
                                  "properties": {"status": {"type": "string", "enum": list(cp.STATUSES)},
                                                 "note": {"type": "string", "nullable": True}}}}}}}
_DETECT_SCHEMA = {"type": "object", "required": ["before", "after"],
                  "properties": {"before": {"type": "integer"}, "after": {"type": "integer"},
                                 "threshold": {"type": "number", "default": 0.15},
                                 "direction": {"type": "string", "enum": ["loss", "gain", "both"]},
                                 "min_mu": {"type": "number", "default": 1}}}
_DETECT_BODY = {"requestBody": {"required": True, "description": "two rasters (ids, one kind) and the rule",
                                "content": {"application/json": {"schema": _DETECT_SCHEMA}}}}


class InvalidBodyError(BadRequestError):
    """The body is not the JSON object the route takes."""

    code = "invalid_body"
    title = "Invalid body"


def _fid(feature_id: str) -> int:
    fid = feature_number(feature_id)
    if fid is None:
        raise FeatureNotFoundError(f"change_patches has no feature {feature_id!r}")
    return fid


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBodyError("the body is not UTF-8 JSON") from None
    if not text.strip():
        raise InvalidBodyError("the body is empty: send a JSON object")
    return parse_json(text, "body")


def _has(request: Request):
    principal = getattr(request.state, "principal", None)
    return (lambda role: principal is not None and principal.has(role))


@router.post("/collections/change_patches/items/{feature_id}/status", openapi_extra=_STEP_BODY,
             summary="Take one step of a change patch's workflow (verified, rectified, false_alarm)")
async def take_step(request: Request, feature_id: str) -> Response:
    """The patch and its steps after; 409 ``illegal_transition`` names its status and the next ones."""
    fid = _fid(feature_id)
    body = await _json_body(request)
    status, note = cp.check_step(body)
    done = await run_in_threadpool(cp.step, get_engine(request), fid, status=status, note=note,
                                   who=who(request), has=_has(request))
    return JSONResponse(done)


@router.get("/collections/change_patches/items/{feature_id}/steps",
            summary="A change patch's steps: from, to, note, who, when")
def list_steps(conn: ConnDep, feature_id: str) -> Response:
    fid = _fid(feature_id)
    return JSONResponse({"feature_id": fid, "steps": cp.steps(conn, fid)})


@router.post("/change_patches/detect", status_code=202, openapi_extra=_DETECT_BODY,
             summary="Queue the detection of change patches between two rasters; follow it at Location")
async def detect(request: Request) -> Response:
    """Checked before queueing: raster ids (404), one kind and common ground (else 400)."""
    from api.jobs import _accepted, queue_of

    body = await _json_body(request)
    if not isinstance(body, dict):
        raise InvalidBodyError('the body is a JSON object {"before": id, "after": id, …}')
    params = cp.check_detection({**body, "actor": who(request).actor})
    engine = get_engine(request)

    def submit() -> int:
        with engine.connect() as conn:
            cp.check_pair(conn, params["before"], params["after"])
        return jobs.submit(queue_of(request.app), engine, "change_detect", params, who(request).actor)

    job_id = await run_in_threadpool(submit)
    return _accepted(request, job_id)


def _labels(lang: str) -> dict[str, str]:
    field = LAYER.get_field("status")
    return {c.value: (c.en if lang == "en" else c.zh) for c in field.choices}


@router.get("/change_patches", summary="Change patches by village and status: counts, 亩, the patches",
            responses={200: {"content": {"application/json": {}, "text/html": {}},
                             "description": "JSON, or the page for a browser (`f=html`)"}})
def page(request: Request, conn: ConnDep,
         village: Annotated[str | None, Query(description="a village's code", max_length=64)] = None,
         status: Annotated[Literal["pending", "verified", "rectified", "false_alarm"] | None, Query(
             description="patches of one status")] = None,
         start: Annotated[str | None, Query(description="found on or after (YYYY-MM-DD)")] = None,
         end: Annotated[str | None, Query(description="found on or before (YYYY-MM-DD)")] = None,
         f: Annotated[Literal["json", "html"] | None, Query()] = None, lang: LangDep = "zh") -> Response:
    """The work report's figure: patches found, verified, rectified, false alarms, in 亩, by village."""
    first = iso_date(start, "start") if start else None
    last = iso_date(end, "end") if end else None
    if first and last and last < first:
        raise InvalidParameterError("end", "the period ends before it starts")
    summary = cp.change_patch_summary(conn, start=first, end=last)
    patches = cp.list_patches(conn, village=village, status=status, start=first, end=last, limit=500)
    if not wants_html(request, f):
        return JSONResponse(json.loads(json.dumps({"summary": summary, "patches": patches}, default=str)))
    has = _has(request)
    steppable = {s for s in cp.STATUSES if cp.may_step(has, s)}
    keep = {k: v for k, v in (("start", start), ("end", end), ("lang", "en" if lang == "en" else None)) if v}
    return render(request, "change_patches/page.html", lang, summary=summary, patches=patches,
                  labels=_labels(lang), statuses=cp.STATUSES, steppable=steppable, village=village,
                  status=status, start=start or "", end=end or "",
                  filter_url=lambda **kw: "?" + urlencode({**keep, **{k: v for k, v in kw.items() if v}}),
                  message=request.query_params.get("done"))


@router.post("/change_patches/{feature_id}/status/form", include_in_schema=False)
def step_form(request: Request, feature_id: str, _: CsrfForm,
              status: Annotated[str | None, Form()] = None, note: Annotated[str | None, Form()] = None,
              lang: LangDep = "zh") -> Response:
    """The page's step form: the step taken, then back to the page (errors shown as problems)."""
    fid = _fid(feature_id)
    status_, note_ = cp.check_step({"status": status, "note": note})
    done = cp.step(get_engine(request), fid, status=status_, note=note_, who=who(request), has=_has(request))
    query = urlencode({"done": done["code"], **({"lang": "en"} if lang == "en" else {})})
    return RedirectResponse(f"{str(request.base_url).rstrip('/')}/change_patches?{query}#patch-{fid}",
                            status_code=303)
