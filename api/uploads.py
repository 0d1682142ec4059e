"""Uploads in two steps: check and report, then commit in one transaction.

``POST /uploads`` checks a file and reports, ``POST /uploads/{id}/commit`` writes it in one
transaction; ``GET /uploads/{id}`` shows the state; ``GET /uploads`` is the page.
The file is stored under ``<home>/uploads/<id>/``; the check runs the whole import in a
transaction that is rolled back, so the report already knows about duplicate codes and
overlaps with what the layer holds. The commit runs it again and commits only when no
feature has an error.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.deps import get_engine
from api.pages import LangDep, render
from gis.archive import Limits
from gis.errors import InputError
from layers.errors import LandecoError
from layers.importer import ImportOptions, import_in_transaction
from layers.registry import LAYERS
from layers.upload_errors import UploadCommitError, UploadRefusedError
from layers.upload_store import UploadStore

router = APIRouter(tags=["uploads"])

_CHUNK = 1 << 20
#: Share of the percentage each stage covers (reading is the long one).
_STAGES = {"reading": (0, 80), "checking": (80, 90), "writing": (90, 100)}


def max_upload_bytes(request: Request) -> int:
    """The configured upload limit (``LANDECO_UPLOAD_MAX_BYTES``)."""
    return request.app.state.settings.upload_max_bytes


def _store(request: Request) -> UploadStore:
    return UploadStore(request.app.state.settings.home)


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
        extra = json.loads(options) if options else {}
    except ValueError as exc:
        raise UploadRefusedError(InputError("invalid_option", f"options is not JSON ({exc})")) from exc
    if not isinstance(extra, dict):
        raise UploadRefusedError(InputError("invalid_option", "options must be a JSON object"))
    merged = {**{k: v for k, v in fields.items() if v}, **extra}
    unknown = set(merged) - {"mode", "crs", "encoding", "dataset", "columns"}
    if unknown:
        raise UploadRefusedError(InputError("invalid_option",
                                            f"unknown options: {', '.join(sorted(unknown))}"))
    return ImportOptions(layer=layer, **merged)


def _save(request: Request, file: UploadFile, target: Path) -> int:
    limit = max_upload_bytes(request)
    declared = file.size
    if declared is not None and declared > limit:
        raise UploadRefusedError(InputError("too_large", f"the file has {declared:,} bytes; the limit is "
                                            f"{limit:,}", limit_bytes=limit))
    size = 0
    with open(target, "wb") as out:
        while chunk := file.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadRefusedError(InputError("too_large", f"the file is larger than the limit of "
                                                    f"{limit:,} bytes", limit_bytes=limit))
            out.write(chunk)
    return size


def _limits(request: Request) -> Limits:
    return Limits(max_bytes=max(10 * max_upload_bytes(request), 64 * 1024**2))


def _run(request: Request, folder: Path, state: dict[str, Any], write: bool, progress=None):
    """One import pass over the stored file, inside one transaction (committed only if ``write``)."""
    options = ImportOptions(**state["options"])
    work = folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    return import_in_transaction(_engine(request), folder / state["stored_as"], work, options, write=write,
                                 limits=_limits(request), progress=progress, file_name=state["file"])


def _links(request: Request, upload_id: str) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {"self": f"{base}/uploads/{upload_id}", "commit": f"{base}/uploads/{upload_id}/commit",
            "preview": f"{base}/uploads/{upload_id}/preview", "map": f"{base}/uploads?id={upload_id}"}


def _alive(pid: object) -> bool:
    """Whether the process that started a commit still runs (a crash leaves ``committing``)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _current(state: dict[str, Any]) -> dict[str, Any]:
    """The state, with a commit whose process died shown as ``interrupted`` (nothing was written)."""
    if state["state"] == "committing" and not _alive(state.get("pid")):
        return {**state, "state": "interrupted", "stage": None}
    return state


def _public(request: Request, state: dict[str, Any]) -> dict[str, Any]:
    state = _current(state)
    report = dict(state.get("report") or {})
    report.pop("preview", None)
    return {"id": state["id"], "state": state["state"], "stage": state.get("stage"),
            "percentage": state.get("percentage", 0), "layer": state["layer"], "file": state["file"],
            "options": state["options"], "report": report, "links": _links(request, state["id"])}


def create_upload(request: Request, file: UploadFile, layer: str, options: ImportOptions) -> dict[str, Any]:
    """Store and check an upload; a refused file leaves nothing behind."""
    if layer not in LAYERS:
        raise UploadRefusedError(InputError("invalid_option", f"no layer called {layer!r}", option="layer",
                                            layers=list(LAYERS)))
    store = _store(request)
    upload_id, folder = store.create()
    name = Path(file.filename or "upload").name
    suffix = "".join(Path(name).suffixes[-1:]).lower()[:8]
    state = {"id": upload_id, "layer": layer, "file": name, "stored_as": f"original{suffix}",
             "options": {k: v for k, v in vars(options).items()}, "state": "checking", "percentage": 0,
             "created": time.time()}
    try:
        state["size"] = _save(request, file, folder / state["stored_as"])
        store.write(folder, state)
        report = _run(request, folder, state, write=False)
    except BaseException:
        store.discard(folder)  # a refused or failed upload leaves nothing behind
        raise
    body = report.as_dict()
    (folder / "preview.geojson").write_text(json.dumps(body.pop("preview"), ensure_ascii=False), "utf-8")
    state.update(state="checked", stage=None, percentage=100, report=body)
    store.write(folder, state)
    return state


@router.post("/uploads", status_code=201, summary="Upload a file and get its report")
def post_upload(request: Request, file: Annotated[UploadFile, File()], layer: Annotated[str, Form()],
                options: Annotated[str | None, Form()] = None, mode: Annotated[str | None, Form()] = None,
                crs: Annotated[str | None, Form()] = None, encoding: Annotated[str | None, Form()] = None,
                dataset: Annotated[str | None, Form()] = None) -> JSONResponse:
    """Check ``file`` for ``layer``: the report (counts, encoding, CRS, mapping, problems, preview)."""
    state = create_upload(request, file, layer, _options(layer, options, mode=mode, crs=crs,
                                                          encoding=encoding, dataset=dataset))
    body = _public(request, state)
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})


@router.get("/uploads/{upload_id}", summary="The state of an upload")
def get_upload(request: Request, upload_id: str) -> dict[str, Any]:
    """State (checked, committing, committed, failed, interrupted), percentage and report."""
    return _public(request, _store(request).read(upload_id))


@router.get("/uploads/{upload_id}/preview", summary="The upload's first features as GeoJSON")
def get_preview(request: Request, upload_id: str) -> Response:
    """Up to 500 importable features in lon/lat, for a preview map."""
    folder = _store(request).folder(upload_id)
    return Response((folder / "preview.geojson").read_bytes(), media_type="application/geo+json")


def commit_upload(request: Request, upload_id: str) -> dict[str, Any]:
    """Write a checked upload in one transaction; the state says how far it got."""
    store = _store(request)
    state = _current(store.read(upload_id))
    folder = store.folder(upload_id)
    if state["state"] == "committed":
        raise UploadCommitError("the upload is committed already", code="upload_already_committed")
    if state["state"] == "committing":
        raise UploadCommitError("the upload is being committed", code="upload_busy")
    if not state["report"].get("can_commit"):
        raise UploadCommitError("the upload has errors; correct the file and upload it again",
                                code="upload_has_errors", problems=state["report"]["problems"][:100])
    state = store.update(upload_id, state="committing", stage="reading", percentage=0, pid=os.getpid())
    last = [0.0]

    def progress(stage: str, fraction: float) -> None:
        low, high = _STAGES[stage]
        now = time.monotonic()
        if now - last[0] > 0.2 or fraction >= 1.0:
            last[0] = now
            store.update(upload_id, stage=stage, percentage=round(low + (high - low) * fraction, 1))

    try:
        report = _run(request, folder, state, write=True, progress=progress)
    except LandecoError as exc:
        store.update(upload_id, state="failed", stage=None, error={"code": exc.code, "detail": str(exc)})
        raise
    except Exception:
        store.update(upload_id, state="failed", stage=None, error={"code": "internal_error"})
        raise
    body = report.as_dict(preview=False)
    if not report.committed:
        store.update(upload_id, state="checked", stage=None, percentage=100, report=body)
        raise UploadCommitError("the layer changed since the check and the upload now has errors",
                                code="upload_has_errors", problems=body["problems"][:100])
    return store.update(upload_id, state="committed", stage=None, percentage=100, report=body)


@router.post("/uploads/{upload_id}/commit", summary="Write a checked upload, all or nothing")
def post_commit(request: Request, upload_id: str) -> dict[str, Any]:
    """Commit: every feature is written in one transaction, or none is."""
    return _public(request, commit_upload(request, upload_id))


# -- the page ---------------------------------------------------------------------------


def _page(request: Request, lang: str, upload_id: str | None, error: dict | None = None,
          status_code: int = 200) -> Response:
    state = _store(request).read(upload_id) if upload_id else None
    layers = [(layer.id, layer.title(lang)) for layer in LAYERS.values()]
    return render(request, "uploads/page.html", lang, status_code=status_code, upload=state, layers=layers,
                  error=error, links=_links(request, upload_id) if upload_id else None)


@router.get("/uploads", include_in_schema=False)
@router.get("/uploads/new", include_in_schema=False)
def uploads_page(request: Request, lang: LangDep = "zh", id: str | None = None) -> Response:
    """The upload form, and the report of upload ``id``."""
    return _page(request, lang, id)


@router.post("/uploads/form", include_in_schema=False)
def uploads_form(request: Request, file: Annotated[UploadFile, File()], layer: Annotated[str, Form()],
                 mode: Annotated[str, Form()] = "insert", crs: Annotated[str | None, Form()] = None,
                 encoding: Annotated[str | None, Form()] = None,
                 dataset: Annotated[str | None, Form()] = None, columns: Annotated[str | None, Form()] = None,
                 lang: LangDep = "zh") -> Response:
    """The page's form: check, then show the report (or the reason the file is refused)."""
    try:
        chosen = _columns(columns)
        opts = _options(layer, json.dumps({"columns": chosen}) if chosen else None, mode=mode, crs=crs,
                        encoding=encoding, dataset=dataset)
        state = create_upload(request, file, layer, opts)
    except LandecoError as exc:
        return _page(request, lang, None, error={"code": exc.code, "detail": str(exc), **exc.extra()},
                     status_code=exc.status)
    suffix = "&lang=en" if lang == "en" else ""
    return RedirectResponse(f"{request.base_url}uploads?id={state['id']}{suffix}", status_code=303)


@router.post("/uploads/{upload_id}/commit/form", include_in_schema=False)
def commit_form(request: Request, upload_id: str, lang: LangDep = "zh") -> Response:
    """The page's commit button."""
    try:
        commit_upload(request, upload_id)
    except LandecoError as exc:
        return _page(request, lang, upload_id, error={"code": exc.code, "detail": str(exc)},
                     status_code=exc.status)
    suffix = "&lang=en" if lang == "en" else ""
    return RedirectResponse(f"{request.base_url}uploads?id={upload_id}{suffix}", status_code=303)
