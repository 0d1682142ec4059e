"""Uploads in two steps: check and report, then commit in one transaction (routes only).

``POST /uploads`` checks a file and reports, ``POST /uploads/{id}/commit`` writes it in one
transaction; ``GET /uploads/{id}`` shows the state; ``GET /uploads`` is the page. The
lifecycle (storage, state, concurrency, quota) is :mod:`layers.uploads`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.audit import who
from api.auth import CsrfForm
from api.deps import get_engine
from api.pages import LangDep, render
from api.problems import localised, request_language
from gis.errors import InputError
from layers import uploads as service
from layers.errors import BadRequestError, LandecoError
from layers.importer import ImportOptions
from layers.messages import localise_report
from layers.problem_sheet import problem_sheet
from layers.registry import LAYERS, get_layer
from layers.templates import TEMPLATE_FORMATS, write_template
from layers.upload_errors import UploadRefusedError
from layers.values import parse_json

router = APIRouter(tags=["uploads"])


def max_upload_bytes(request: Request) -> int:
    """The configured upload limit (``LANDECO_UPLOAD_MAX_BYTES``)."""
    return request.app.state.settings.upload_max_bytes


def _engine(request: Request):
    return get_engine(request)


def _columns(text: str | None) -> dict[str, str] | None:
    """``行政代码=code, 上级=extra`` (the page's field) as a mapping."""
    if not text or not text.strip():
        return None
    pairs = [p.split("=", 1) for p in text.replace("，", ",").split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise UploadRefusedError(InputError("invalid_option", "write columns as 列名=field, 列名=field",
                                            option="columns"))
    return {k.strip(): v.strip() for k, v in pairs}


def _options(layer: str, options: str | None, **fields: str | None) -> ImportOptions:
    try:
        extra = parse_json(options, "options") if options else {}
    except BadRequestError as exc:
        raise UploadRefusedError(InputError("invalid_option", f"options is not JSON ({exc})")) from exc
    if not isinstance(extra, dict):
        raise UploadRefusedError(InputError("invalid_option", "options must be a JSON object"))
    merged = {**{k: v for k, v in fields.items() if v}, **extra}
    unknown = set(merged) - {"mode", "crs", "encoding", "dataset", "columns", "skip_refused"}
    if unknown:
        raise UploadRefusedError(InputError("invalid_option",
                                            f"unknown options: {', '.join(sorted(unknown))}"))
    if "skip_refused" in merged:
        merged["skip_refused"] = _flag(merged["skip_refused"])
    return ImportOptions(layer=layer, **merged)


_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no", "")


def _flag(value: object) -> bool:
    """``skip_refused`` as JSON (true/false) or a form field (``on``, ``true``, ``1`` …)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise UploadRefusedError(InputError("invalid_option", "skip_refused must be true or false",
                                        option="skip_refused"))


def _links(request: Request, upload_id: str) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {"self": f"{base}/uploads/{upload_id}", "commit": f"{base}/uploads/{upload_id}/commit",
            "preview": f"{base}/uploads/{upload_id}/preview", "map": f"{base}/uploads?id={upload_id}",
            "problems": f"{base}/uploads/{upload_id}/problems.xlsx"}


def _public(request: Request, state: dict[str, Any]) -> dict[str, Any]:
    """The upload as JSON, its report's words in the request's language (codes stay English)."""
    body = {k: v for k, v in state.items() if k != "error"}
    if body.get("report"):
        body["report"] = localise_report(body["report"], request_language(request))
    return {**body, "links": _links(request, state["id"])}


def _page_error(exc: LandecoError, lang: str) -> dict[str, Any]:
    """A refusal shown on the page: its code, and its words in the page's language."""
    title, detail, extra = localised(lang, exc.code, exc.status, exc.title, str(exc), exc.extra())
    return {**extra, "code": exc.code, "title": title, "detail": detail}


def _create(request: Request, file: UploadFile, layer: str, options: ImportOptions) -> dict[str, Any]:
    return service.create_upload(engine=_engine(request), settings=request.app.state.settings, file=file.file,
                                 file_name=file.filename, declared_size=file.size, layer=layer,
                                 options=options, who=who(request))


def _commit(request: Request, upload_id: str, confirm: bool = False) -> dict[str, Any]:
    return service.commit_upload(engine=_engine(request), settings=request.app.state.settings,
                                 upload_id=upload_id, who=who(request), confirm=confirm)


def _large(request: Request, size: int | None) -> bool:
    """Whether a file of ``size`` bytes is checked and committed by a job (LANDECO_UPLOAD_JOB_BYTES)."""
    return size is not None and size >= request.app.state.settings.upload_job_bytes


def _job(request: Request, kind: str, upload_id: str, **params: Any) -> int:
    from api.jobs import queue_of
    from layers.jobs import submit

    asker = who(request)
    params = {"upload_id": upload_id, "actor": asker.actor, "address": asker.address, **params}
    return submit(queue_of(request.app), _engine(request), kind, params, asker.actor)


def _create_or_queue(request: Request, file: UploadFile, layer: str,
                     options: ImportOptions) -> tuple[dict[str, Any], int | None]:
    """The checked upload, or (a large file) the stored one and the job checking it."""
    if not _large(request, file.size):
        return _create(request, file, layer, options), None
    upload_id = service.receive_upload(engine=_engine(request), settings=request.app.state.settings,
                                       file=file.file, file_name=file.filename, declared_size=file.size,
                                       layer=layer, options=options, who=who(request))
    job_id = _job(request, "upload_check", upload_id)
    return service.get_upload(engine=_engine(request), upload_id=upload_id), job_id


def _commit_or_queue(request: Request, upload_id: str, confirm: bool) -> tuple[dict[str, Any], int | None]:
    """The committed upload, or (a large file) the upload and the job committing it."""
    state = service.get_upload(engine=_engine(request), upload_id=upload_id)
    if not _large(request, state.get("bytes")):
        return _commit(request, upload_id, confirm), None
    service.ready_to_commit(engine=_engine(request), upload_id=upload_id, confirm=confirm)
    job_id = _job(request, "upload_commit", upload_id, confirm=confirm)
    return service.get_upload(engine=_engine(request), upload_id=upload_id), job_id


def _queued(request: Request, state: dict[str, Any], job_id: int) -> JSONResponse:
    body = _public(request, state)
    body["links"]["job"] = f"{str(request.base_url).rstrip('/')}/jobs/{job_id}"
    body["job"] = job_id
    return JSONResponse(body, status_code=202, headers={"Location": body["links"]["self"]})


@router.post("/uploads", status_code=201, summary="Upload a file and get its report")
def post_upload(request: Request, file: Annotated[UploadFile, File()], layer: Annotated[str, Form()],
                options: Annotated[str | None, Form()] = None, mode: Annotated[str | None, Form()] = None,
                crs: Annotated[str | None, Form()] = None, encoding: Annotated[str | None, Form()] = None,
                dataset: Annotated[str | None, Form()] = None,
                skip_refused: Annotated[str | None, Form(
                    description="true: write the good features, leave the refused out (reported)")] = None,
                ) -> JSONResponse:
    """Check ``file`` for ``layer``: the report (counts, encoding, CRS, mapping, problems, preview).

    A file of ``LANDECO_UPLOAD_JOB_BYTES`` or more is checked by a job: 202, the upload
    ``checking`` and ``links.job`` to follow; ``GET /uploads/{id}`` has the report when done.
    """
    state, job_id = _create_or_queue(request, file, layer, _options(
        layer, options, mode=mode, crs=crs, encoding=encoding, dataset=dataset, skip_refused=skip_refused))
    if job_id is not None:
        return _queued(request, state, job_id)
    body = _public(request, state)
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})


@router.get("/uploads/templates/{layer_id}.{fmt}", include_in_schema=False)
def get_template(layer_id: str, fmt: str, lang: LangDep = "zh") -> Response:
    """An empty file of ``layer_id`` for the field team: ``shp`` (zip), ``gpkg`` or ``xlsx``."""
    layer = get_layer(layer_id)
    if fmt not in TEMPLATE_FORMATS:
        raise BadRequestError(f"no template format {fmt!r}: {', '.join(TEMPLATE_FORMATS)}")
    suffix, media = TEMPLATE_FORMATS[fmt]
    name = f"{layer.id}-template{suffix}"
    return Response(write_template(layer, fmt, lang), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/uploads/new", include_in_schema=False)
def new_upload_page(request: Request, lang: LangDep = "zh") -> Response:
    """The upload form, as the navigation links it (before ``/uploads/{upload_id}``, which would take it)."""
    return _page(request, lang, None)


@router.get("/uploads/{upload_id}", summary="The state of an upload")
def get_upload(request: Request, upload_id: str) -> dict[str, Any]:
    """State (checked, committing, committed, failed, interrupted), percentage and report."""
    return _public(request, service.get_upload(engine=_engine(request), upload_id=upload_id))


@router.get("/uploads/{upload_id}/preview", summary="The upload's first features as GeoJSON")
def get_preview(request: Request, upload_id: str) -> Response:
    """Up to 500 importable features in lon/lat, for a preview map."""
    path = service.preview_file(engine=_engine(request), settings=request.app.state.settings,
                                upload_id=upload_id)
    return Response(path.read_bytes(), media_type="application/geo+json")


@router.get("/uploads/{upload_id}/problems.xlsx", include_in_schema=False)
def get_problem_sheet(request: Request, upload_id: str, lang: LangDep = "zh") -> Response:
    """The upload's problems as XLSX for the field team (formula starts made text)."""
    state = service.get_upload(engine=_engine(request), upload_id=upload_id)
    return Response(problem_sheet(state, lang), media_type=TEMPLATE_FORMATS["xlsx"][1],
                    headers={"Content-Disposition": f'attachment; filename="problems-{upload_id}.xlsx"'})


@router.post("/uploads/{upload_id}/commit", summary="Write a checked upload, all or nothing")
def post_commit(request: Request, upload_id: str, confirm: Annotated[bool, Query(
        description="true: a replace may delete the layer's features (else 409 `confirmation_required`)")]
        = False) -> Response:
    """Commit: every feature is written in one transaction, or none is (else 409 ``upload_busy``).

    A large upload is committed by a job: 202 and ``links.job``.
    """
    state, job_id = _commit_or_queue(request, upload_id, confirm)
    if job_id is not None:
        return _queued(request, state, job_id)
    return JSONResponse(_public(request, state))


# -- the page ---------------------------------------------------------------------------


def _page(request: Request, lang: str, upload_id: str | None, error: dict | None = None,
          status_code: int = 200, chosen: dict[str, Any] | None = None) -> Response:
    """The page: the form, the upload's report, the templates and the recent uploads.

    The form shows ``chosen`` (the values of a refused form), else the upload's options.
    """
    state = service.get_upload(engine=_engine(request), upload_id=upload_id) if upload_id else None
    if state is not None and state.get("report"):
        state["report"] = localise_report(state["report"], lang)
    layers = [(layer.id, layer.title(lang)) for layer in LAYERS.values()]
    if chosen is None and state is not None:
        opts = state["options"] or {}
        cols = ", ".join(f"{k}={v}" for k, v in (opts.get("columns") or {}).items())
        chosen = {**opts, "layer": state["layer"], "columns": cols}
    by_id = {layer.id: layer for layer in LAYERS.values()}
    size = by_id[state["layer"]].size if state and state["layer"] in by_id else None
    return render(request, "uploads/page.html", lang, status_code=status_code, upload=state, layers=layers,
                  error=error, links=_links(request, upload_id) if upload_id else None,
                  chosen=chosen or {}, recent=service.recent_uploads(engine=_engine(request)),
                  formats=list(TEMPLATE_FORMATS), size=size,
                  titles={layer.id: layer.title(lang) for layer in LAYERS.values()})


@router.get("/uploads", include_in_schema=False)
def uploads_page(request: Request, lang: LangDep = "zh", id: str | None = None) -> Response:
    """The upload form, and the report of upload ``id``."""
    return _page(request, lang, id)


@router.post("/uploads/form", include_in_schema=False)
def uploads_form(request: Request, file: Annotated[UploadFile, File()], layer: Annotated[str, Form()],
                 mode: Annotated[str, Form()] = "insert", crs: Annotated[str | None, Form()] = None,
                 encoding: Annotated[str | None, Form()] = None,
                 dataset: Annotated[str | None, Form()] = None, columns: Annotated[str | None, Form()] = None,
                 skip_refused: Annotated[str | None, Form()] = None,
                 lang: LangDep = "zh", _: CsrfForm = None) -> Response:
    """The page's form: check, then show the report.

    A refused file is explained on the page, with the choices kept.
    """
    try:
        chosen = _columns(columns)
        opts = _options(layer, json.dumps({"columns": chosen}) if chosen else None, mode=mode, crs=crs,
                        encoding=encoding, dataset=dataset, skip_refused=skip_refused)
        state, job_id = _create_or_queue(request, file, layer, opts)
    except LandecoError as exc:
        kept = {"layer": layer, "mode": mode, "crs": crs, "encoding": encoding, "dataset": dataset,
                "columns": columns, "skip_refused": (skip_refused or "").lower() in _TRUE,
                "file": file.filename}
        return _page(request, lang, None, error=_page_error(exc, lang),
                     status_code=exc.status, chosen=kept)
    suffix = "&lang=en" if lang == "en" else ""
    if job_id is not None:  # a large file: the job's page follows the check, then links the report
        return RedirectResponse(f"{request.base_url}jobs/{job_id}{suffix.replace('&', '?')}", status_code=303)
    return RedirectResponse(f"{request.base_url}uploads?id={state['id']}{suffix}", status_code=303)


@router.post("/uploads/{upload_id}/commit/form", include_in_schema=False)
def commit_form(request: Request, upload_id: str, _: CsrfForm, lang: LangDep = "zh",
                confirm: Annotated[str | None, Form()] = None) -> Response:
    """The page's commit button (a replace's needs its confirmation box ticked)."""
    try:
        _, job_id = _commit_or_queue(request, upload_id, (confirm or "").lower() in _TRUE)
    except LandecoError as exc:
        return _page(request, lang, upload_id, error=_page_error(exc, lang),
                     status_code=exc.status)
    suffix = "&lang=en" if lang == "en" else ""
    if job_id is not None:
        return RedirectResponse(f"{request.base_url}jobs/{job_id}{suffix.replace('&', '?')}", status_code=303)
    return RedirectResponse(f"{request.base_url}uploads?id={upload_id}{suffix}", status_code=303)
