"""Jobs over HTTP: queue long work, follow its progress, fetch its file, cancel it.

A job belongs to whoever queued it: another account gets 404 (not 403: job ids are
sequential and should not tell what others do); an administrator sees every job. Jobs
queued anonymously (when reads are public) are visible to anyone who knows the id.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from api.audit import who
from api.deps import ConnDep, get_engine, wants_html
from api.pages import LangDep, render
from gis.export import FORMATS
from layers import jobs
from layers.registry import LAYERS

__all__ = ["queue_of", "router"]

router = APIRouter(tags=["jobs"])

_JSON_OR_PAGE = {200: {"content": {"application/json": {}, "text/html": {}},
                       "description": "JSON, or a page for a browser (`f=html`)"}}
#: What a job's file can be: the export formats.
_FILES = {200: {"content": {media: {} for _, media in FORMATS.values()},
                "description": "the file the job wrote"}}


def queue_of(app: FastAPI) -> jobs.JobQueue:
    """The application's job queue, made on first use."""
    state = app.state
    if getattr(state, "jobs", None) is None:
        state.jobs = jobs.JobQueue(state.settings, state.database_url)
    return state.jobs


def _visible(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    principal = getattr(request.state, "principal", None)
    if job["owner"] is not None and (principal is None or (
            principal.name != job["owner"] and not principal.has("admin"))):
        raise jobs.JobNotFoundError(f"no job {job['id']}")
    return job


def _links(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    out = dict(job)
    out["links"] = {"self": f"{base}/jobs/{job['id']}", "cancel": f"{base}/jobs/{job['id']}/cancel"}
    if job["state"] == "succeeded" and (job.get("result") or {}).get("file"):
        out["links"]["result"] = f"{base}/jobs/{job['id']}/result"
    page = (job.get("result") or {}).get("page")
    if isinstance(page, str) and page.startswith(("/uploads?id=", "/rasters/")):  # the work's outcome
        out["links"]["page"] = f"{base}{page}"
    return out


def _accepted(request: Request, job_id: int) -> Response:
    with get_engine(request).connect() as conn:
        job = _links(request, jobs.get_job(conn, job_id))
    return JSONResponse(job, status_code=202, headers={"Location": job["links"]["self"]})


@router.post("/jobs/export/{layer_id}", status_code=202,
             summary="Queue the export of a whole layer as a job; follow it at Location")
def queue_export(request: Request, layer_id: str,
                 format: Annotated[Literal["geojson", "gpkg", "shp", "csv", "xlsx"], Query(
                     description="file format")] = "gpkg",
                 crs: Annotated[int, Query(description="EPSG code: 4326, 4490 or 4545")] = 4326,
                 encoding: Annotated[Literal["utf-8", "gbk"], Query(
                     description="shapefile encoding")] = "utf-8",
                 lang: LangDep = "zh") -> Response:
    """The job's state at once (202, ``Location``); its file at ``/jobs/{id}/result`` when done."""
    if layer_id not in LAYERS:
        from layers.errors import UnknownLayerError
        raise UnknownLayerError(layer_id)
    params = {"layer": layer_id, "format": format, "crs": crs, "encoding": encoding, "lang": lang}
    job_id = jobs.submit(queue_of(request.app), get_engine(request), "export", params, who(request).actor)
    return _accepted(request, job_id)


@router.get("/jobs", summary="Your newest jobs (every job for administrators)", responses=_JSON_OR_PAGE)
def list_jobs(request: Request, conn: ConnDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              f: Annotated[Literal["json", "html"] | None, Query()] = None, lang: LangDep = "zh") -> Response:
    principal = getattr(request.state, "principal", None)
    owner = None if principal is not None and principal.has("admin") else who(request).actor
    found = [_links(request, j) for j in jobs.list_jobs(conn, owner=owner, limit=limit)]
    if owner is None and (principal is None or not principal.has("admin")):
        found = [j for j in found if j["owner"] is None]
    if wants_html(request, f):
        return render(request, "jobs/list.html", lang, jobs=found, kinds=_kind_titles(lang))
    return JSONResponse({"jobs": found})


def _kind_titles(lang: str) -> dict[str, str]:
    return {k.name: (k.title_en if lang == "en" else k.title_zh) for k in jobs._kinds().values()}


@router.get("/jobs/{job_id}", summary="A job: state, progress, message, result links or error",
            responses=_JSON_OR_PAGE)
def get_job(request: Request, conn: ConnDep, job_id: int,
            f: Annotated[Literal["json", "html"] | None, Query()] = None, lang: LangDep = "zh") -> Response:
    job = _links(request, _visible(request, jobs.get_job(conn, job_id)))
    if wants_html(request, f):
        return render(request, "jobs/job.html", lang, job=job, kinds=_kind_titles(lang))
    return JSONResponse(job)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued job or stop a running one")
def cancel(request: Request, job_id: int) -> Response:
    engine = get_engine(request)
    with engine.connect() as conn:
        _visible(request, jobs.get_job(conn, job_id))
    with engine.begin() as conn:
        job = jobs.cancel_job(queue_of(request.app), conn, job_id)
    return JSONResponse(_links(request, job))


@router.get("/jobs/{job_id}/result", summary="The file a finished job wrote", responses=_FILES)
def result(request: Request, conn: ConnDep, job_id: int) -> Response:
    job = _visible(request, jobs.get_job(conn, job_id))
    path = jobs.result_file(request.app.state.settings, job)
    return FileResponse(path, media_type=job["result"].get("media_type") or "application/octet-stream",
                        filename=path.name)
