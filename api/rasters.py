"""Rasters over HTTP: add a GeoTIFF (checked, stored as a COG), list them, show one (routes only).

``POST /rasters`` takes a multipart ``file`` with ``kind``, ``acquired``, ``source`` and
``band_meaning``; a file of ``raster_job_bytes`` or more is checked and stored by a job (202 and
``links.job``). ``GET /rasters`` and ``GET /rasters/{raster_id}`` answer JSON, or a page for a
browser; ``/rasters/new`` is the form. The registry and its checks are :mod:`layers.rasters`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api import openapi
from api.audit import who
from api.auth import CsrfForm
from api.deps import ConnDep, get_engine, wants_html
from api.pages import LangDep, render
from api.problems import localised
from layers import rasters as service
from layers.errors import LandecoError

__all__ = ["router"]

router = APIRouter(tags=["rasters"])

FQuery = Annotated[Literal["json", "html"] | None, Query(description="json (default for API clients) or "
                                                          "html (default for browsers)")]
KindForm = Annotated[str, Form(description="ndvi, fvc, dem or other")]
DateForm = Annotated[str, Form(description="acquisition date, YYYY-MM-DD")]
TextForm = Annotated[str | None, Form()]


# -- the OpenAPI document: this module's rows of api/openapi.py's tables ---------------------------
# (kept here, so that the branches adding raster routes touch no shared lines)

_R = "#/components/schemas/"
openapi.SCHEMAS["Raster"] = {
    "type": "object", "required": ["id", "kind", "acquired", "crs", "footprint", "links"],
    "properties": {"id": {"type": "integer"}, "kind": {"type": "string", "enum": list(service.KINDS)},
                   "acquired": {"type": "string", "format": "date"}, "crs": {"type": "string"},
                   "width": {"type": "integer"}, "height": {"type": "integer"},
                   "band_count": {"type": "integer"}, "footprint": {"type": "object"},
                   "bounds_4326": {"type": "array", "items": {"type": "number"}},
                   "links": {"type": "array", "items": {"$ref": _R + "Link"}}},
    "additionalProperties": True}
openapi.SCHEMAS["Rasters"] = {
    "type": "object", "required": ["rasters", "links"],
    "properties": {"rasters": {"type": "array", "items": {"$ref": _R + "Raster"}},
                   "links": {"type": "array", "items": {"$ref": _R + "Link"}}},
    "additionalProperties": True}
openapi.SCHEMAS["RasterJob"] = {"type": "object", "required": ["job", "links"],
                                "properties": {"job": {"type": "integer"}, "links": {"type": "object"}},
                                "additionalProperties": True}
openapi.SUCCESS[("get", "/rasters")] = {200: {"application/json": {"$ref": _R + "Rasters"},
                                              openapi.HTML: {"type": "string"}}}
openapi.SUCCESS[("get", "/rasters/{raster_id}")] = {200: {"application/json": {"$ref": _R + "Raster"},
                                                          openapi.HTML: {"type": "string"}}}
openapi.SUCCESS[("post", "/rasters")] = {201: {"application/json": {"$ref": _R + "Raster"}},
                                         202: {"application/json": {"$ref": _R + "RasterJob"}}}
openapi._HEADERS[("post", "/rasters", 201)] = {"Location": {"required": True, "schema": {"type": "string"},
                                                            "description": "the raster's address"}}
openapi._HEADERS[("post", "/rasters", 202)] = {"Location": {"required": True, "schema": {"type": "string"},
                                                            "description": "the job's address"}}
openapi._MORE_ERRORS[("post", "/rasters")] = {413, 415, 422, 507}
openapi._HTML_ERRORS[("get", "/rasters")] = {400}
openapi.RATE_LIMITED.add(("post", "/rasters"))
openapi.EXAMPLES.setdefault("raster_id", "1")
openapi.ERRORS.setdefault(507, "the server's storage could not take the file (`raster_storage_failed`, "
                               "`upload_quota_exceeded`)")


# -- JSON -------------------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _public(request: Request, raster: service.Raster, lang: str = "zh") -> dict[str, Any]:
    """The raster as JSON with its links (the storage path stays on the server)."""
    base = _base(request)
    body = raster.as_json()
    body["kind_label"] = raster.label(lang)
    body["links"] = [
        {"href": f"{base}/rasters/{raster.id}", "rel": "self", "type": "application/json"},
        {"href": f"{base}/rasters/{raster.id}?f=html", "rel": "alternate", "type": "text/html"},
        {"href": f"{base}/rasters", "rel": "collection", "type": "application/json"},
    ]
    return body


def _kind(kind: str | None) -> str | None:
    return None if kind is None or kind == "" else service.check_kind(kind)


@router.get("/rasters", summary="The rasters: kind, acquisition date, source, grid, footprint")
def list_rasters(request: Request, conn: ConnDep, kind: Annotated[str | None, Query(
                     description="only rasters of this kind: ndvi, fvc, dem or other")] = None,
                 f: FQuery = None, lang: LangDep = "zh") -> Response:
    """Every raster, by kind and date; a page for a browser."""
    found = [_public(request, r, lang) for r in service.list_rasters(conn, kind=_kind(kind))]
    if wants_html(request, f):
        return render(request, "rasters/list.html", lang, rasters=found, kind=kind or "",
                      kinds=_kinds(lang))
    base = _base(request)
    return JSONResponse({"rasters": found, "links": [
        {"href": f"{base}/rasters", "rel": "self", "type": "application/json"},
        {"href": f"{base}/rasters?f=html", "rel": "alternate", "type": "text/html"}]})


def _kinds(lang: str) -> dict[str, str]:
    return {k: (en if lang == "en" else zh) for k, (zh, en) in service.KINDS.items()}


@router.get("/rasters/new", include_in_schema=False)
def new_raster_page(request: Request, lang: LangDep = "zh") -> Response:
    """The form to add a raster (before ``/rasters/{raster_id}``, which would take it)."""
    return _form_page(request, lang)


@router.get("/rasters/{raster_id}", summary="One raster: metadata, footprint (GeoJSON) and links")
def get_raster(request: Request, conn: ConnDep, raster_id: str, f: FQuery = None,
               lang: LangDep = "zh") -> Response:
    """The raster's metadata; a page with its footprint on a map for a browser."""
    raster = _public(request, service.get_raster(conn, raster_id), lang)
    if wants_html(request, f):
        return render(request, "rasters/raster.html", lang, raster=raster, kinds=_kinds(lang))
    return JSONResponse(raster)


@router.delete("/rasters/{raster_id}", summary="Remove a raster: its file, its row and its zonal statistics",
               status_code=204, response_class=Response)
def delete_raster(request: Request, raster_id: str) -> Response:
    """The raster goes (an administrator): its COG, its row and the zonal statistics computed from it.

    The audit trail keeps what it was (``raster.delete``); change patches detected from it keep
    their dates.
    """
    service.delete_raster(get_engine(request), raster_id, who=who(request))
    return Response(status_code=204)


# -- adding ------------------------------------------------------------------------------------


def _add(request: Request, file: UploadFile, kind: str, acquired: str, source: str | None,
         band_meaning: str | None) -> tuple[dict[str, Any] | None, int | None]:
    """The raster added, or (a large file) the job adding it; nothing is kept on a refusal."""
    settings = request.app.state.settings
    options = service.check_options(kind=kind, acquired=acquired, source=source, band_meaning=band_meaning,
                                    name=file.filename)
    incoming = service.receive_raster(settings, file.file, file.size)
    asker = who(request)
    if (file.size or 0) < settings.raster_job_bytes:
        raster = service.add_received(get_engine(request), settings, incoming, **options, who=asker)
        return _public(request, raster), None
    from api.jobs import queue_of
    from layers.jobs import submit

    try:  # what the headers tell is refused at once, not by the job
        service.precheck(get_engine(request), settings, service.incoming_path(settings, incoming))
    except BaseException:
        service.incoming_path(settings, incoming).unlink(missing_ok=True)
        raise
    params = {"incoming": incoming, **options, "acquired": options["acquired"].isoformat(),
              "actor": asker.actor, "address": asker.address}
    try:
        return None, submit(queue_of(request.app), get_engine(request), "raster_add", params, asker.actor)
    except BaseException:
        service.incoming_path(settings, incoming).unlink(missing_ok=True)
        raise


def _job_links(request: Request, job_id: int) -> dict[str, Any]:
    base = _base(request)
    return {"job": job_id, "state": "queued",
            "links": {"job": f"{base}/jobs/{job_id}", "list": f"{base}/rasters"}}


@router.post("/rasters", status_code=201, summary="Add a GeoTIFF: checked, stored as a COG, registered")
def post_raster(request: Request, file: Annotated[UploadFile, File(description="a GeoTIFF")], kind: KindForm,
                acquired: DateForm, source: Annotated[str | None, Form(
                    description="where it comes from (sensor, provider)")] = None,
                band_meaning: Annotated[str | None, Form(description="what the band values mean")] = None,
                ) -> Response:
    """201 and the raster; a file of ``LANDECO_RASTER_JOB_BYTES`` or more: 202 and the job adding it.

    A file landeco will not store (not a TIFF, damaged, too large, too many pixels or bands, no
    CRS, far from the township) is refused with its code, and nothing is kept.
    """
    raster, job_id = _add(request, file, kind, acquired, source, band_meaning)
    if job_id is not None:
        body = _job_links(request, job_id)
        return JSONResponse(body, status_code=202, headers={"Location": body["links"]["job"]})
    assert raster is not None
    return JSONResponse(raster, status_code=201, headers={"Location": raster["links"][0]["href"]})


# -- the form ----------------------------------------------------------------------------------


def _form_page(request: Request, lang: str, error: dict[str, Any] | None = None, status_code: int = 200,
               chosen: dict[str, Any] | None = None) -> Response:
    settings = request.app.state.settings
    return render(request, "rasters/new.html", lang, status_code=status_code, error=error,
                  chosen=chosen or {}, kinds=_kinds(lang), max_bytes=settings.raster_max_bytes,
                  max_bands=settings.raster_max_bands)


@router.post("/rasters/form", include_in_schema=False)
def raster_form(request: Request, file: Annotated[UploadFile, File()], kind: Annotated[str, Form()] = "",
                acquired: Annotated[str, Form()] = "", source: TextForm = None, band_meaning: TextForm = None,
                lang: LangDep = "zh", _: CsrfForm = None) -> Response:
    """The page's form: add, then show the raster (or follow its job); a refusal is explained."""
    try:
        raster, job_id = _add(request, file, kind, acquired, source, band_meaning)
    except LandecoError as exc:
        title, detail, extra = localised(lang, exc.code, exc.status, exc.title, str(exc), exc.extra())
        kept = {"kind": kind, "acquired": acquired, "source": source, "band_meaning": band_meaning,
                "file": service.display_name(file.filename)}
        return _form_page(request, lang, error={**extra, "code": exc.code, "title": title, "detail": detail},
                          status_code=exc.status, chosen=kept)
    suffix = "&lang=en" if lang == "en" else ""
    if job_id is not None:
        return RedirectResponse(f"{request.base_url}jobs/{job_id}{suffix.replace('&', '?')}", status_code=303)
    assert raster is not None
    return RedirectResponse(f"{request.base_url}rasters/{raster['id']}?f=html{suffix}", status_code=303)
