"""The kinds of job landeco runs in its workers (see :mod:`layers.jobs`).

Each kind checks its parameters when it is queued (a bad one is refused at once, not found
by a worker later) and writes its files into the job's folder.
"""

from __future__ import annotations

import shutil
from typing import Any

from gis.errors import InputError
from gis.export import CRSS, ENCODINGS, FORMATS
from layers.errors import BadRequestError
from layers.jobs import JobContext, job_kind
from layers.registry import get_layer

__all__ = ["check_export"]


class JobParameterError(BadRequestError):
    code = "invalid_job_parameter"
    title = "Invalid job parameter"


def check_export(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters of a layer export: ``layer``, ``format``, ``crs``, ``encoding``, ``lang``."""
    unknown = set(params) - {"layer", "format", "crs", "encoding", "lang"}
    if unknown:
        raise JobParameterError(f"an export takes no {', '.join(sorted(unknown))}")
    layer = get_layer(str(params.get("layer", "")))
    fmt = str(params.get("format", "gpkg"))
    crs = params.get("crs", 4326)
    encoding = str(params.get("encoding", "utf-8"))
    lang = str(params.get("lang", "zh"))
    if fmt not in FORMATS:
        raise JobParameterError(f"no export format {fmt!r}: {', '.join(FORMATS)}")
    if not isinstance(crs, int) or isinstance(crs, bool) or crs not in CRSS:
        raise JobParameterError(f"EPSG:{crs} is not offered: {', '.join(map(str, CRSS))}")
    if encoding not in ENCODINGS:
        raise JobParameterError(f"no shapefile encoding {encoding!r}: {', '.join(ENCODINGS)}")
    if lang not in ("zh", "en"):
        raise JobParameterError("lang is zh or en")
    return {"layer": layer.id, "format": fmt, "crs": crs, "encoding": encoding, "lang": lang}


@job_kind("export", zh="导出图层", en="Export a layer", check=check_export)
def export(ctx: JobContext, *, layer: str, format: str, crs: int, encoding: str, lang: str) -> dict[str, Any]:
    """A whole layer written to a file in the job's folder."""
    from layers.export import export_layer

    ctx.progress(0.05, "正在读取图层" if lang == "zh" else "reading the layer", force=True)
    with ctx.engine.connect() as conn:
        try:
            out = export_layer(conn, layer, format, crs=crs, encoding=encoding, lang=lang)
        except InputError as err:  # pragma: no cover - checked at submit
            raise JobParameterError(str(err)) from None
    ctx.progress(0.95, "正在保存文件" if lang == "zh" else "saving the file", force=True)
    target = ctx.folder / out.filename
    shutil.move(str(out.path), target)
    shutil.rmtree(out.path.parent, ignore_errors=True)
    return {"file": target.name, "media_type": out.media_type, "bytes": target.stat().st_size}


def _check_upload_params(params: dict[str, Any]) -> dict[str, Any]:
    """``upload_id`` of a stored upload, who asked (``actor``, ``address``), ``confirm`` (commit)."""
    from layers.uploads import _check_id

    unknown = set(params) - {"upload_id", "actor", "address", "confirm"}
    if unknown:
        raise JobParameterError(f"an upload job takes no {', '.join(sorted(unknown))}")
    upload_id = str(params.get("upload_id", ""))
    _check_id(upload_id)
    out = {"upload_id": upload_id, "actor": params.get("actor"), "address": params.get("address")}
    for key in ("actor", "address"):
        if out[key] is not None and not isinstance(out[key], str):
            raise JobParameterError(f"{key} is a text")
    if "confirm" in params:
        out["confirm"] = bool(params["confirm"])
    return out


def _follow(ctx: JobContext) -> Any:
    """An upload's (stage, fraction) as the job's progress."""
    from layers.uploads import _STAGES

    words = {"reading": "正在读取文件", "checking": "正在检查", "writing": "正在写入"}

    def report(stage: str, fraction: float) -> None:
        low, high = _STAGES[stage]
        ctx.progress((low + (high - low) * fraction) / 100, words.get(stage, stage))
    return report


def _who(actor: str | None, address: str | None, route: str) -> Any:
    from layers.audit import Who

    return Who(actor=actor, address=address, route=route)


@job_kind("upload_check", zh="检查上传文件", en="Check an upload", check=_check_upload_params)
def upload_check(ctx: JobContext, *, upload_id: str, actor: str | None,
                 address: str | None) -> dict[str, Any]:
    """A large upload checked outside the request; the report is the upload's."""
    from layers.uploads import check_upload

    state = check_upload(engine=ctx.engine, settings=ctx.settings, upload_id=upload_id,
                         who=_who(actor, address, "job: upload_check"), progress=_follow(ctx))
    return {"upload_id": upload_id, "state": state["state"], "can_commit": state["report"].get("can_commit"),
            "page": f"/uploads?id={upload_id}"}


@job_kind("upload_commit", zh="写入上传文件", en="Commit an upload", check=_check_upload_params)
def upload_commit(ctx: JobContext, *, upload_id: str, actor: str | None, address: str | None,
                  confirm: bool = False) -> dict[str, Any]:
    """A large upload written outside the request, all or nothing, as a commit in the request."""
    from layers.uploads import commit_upload

    state = commit_upload(engine=ctx.engine, settings=ctx.settings, upload_id=upload_id, confirm=confirm,
                          who=_who(actor, address, "job: upload_commit"), on_progress=_follow(ctx))
    return {"upload_id": upload_id, "state": state["state"], "written": state["report"].get("written"),
            "page": f"/uploads?id={upload_id}"}


def _check_raster_params(params: dict[str, Any]) -> dict[str, Any]:
    """A received raster (``incoming``), what it is (kind, acquired, source, band_meaning, name), who."""
    from layers.rasters import RasterParameterError, check_incoming, check_kind

    known = {"incoming", "kind", "acquired", "source", "band_meaning", "name", "actor", "address"}
    unknown = set(params) - known
    if unknown:
        raise JobParameterError(f"a raster job takes no {', '.join(sorted(unknown))}")
    check_incoming(params.get("incoming"))
    check_kind(params.get("kind"))
    for key in ("acquired", "source", "band_meaning", "name", "actor", "address"):
        if params.get(key) is not None and not isinstance(params[key], str):
            raise RasterParameterError(key, "is a text")
    return {k: params.get(k) for k in known}


@job_kind("raster_add", zh="添加栅格", en="Add a raster", check=_check_raster_params)
def raster_add(ctx: JobContext, *, incoming: str, kind: str, acquired: str, source: str | None,
               band_meaning: str | None, name: str | None, actor: str | None,
               address: str | None) -> dict[str, Any]:
    """A large raster checked, converted to a COG and registered outside the request."""
    from layers.rasters import add_received

    words = {"checking": "正在检查", "converting": "正在转换为 COG", "overviews": "正在生成金字塔",
             "storing": "正在保存", "stored": "已保存"}
    raster = add_received(ctx.engine, ctx.settings, incoming, kind=kind, acquired=acquired, source=source,
                          band_meaning=band_meaning, name=name, who=_who(actor, address, "job: raster_add"),
                          on_progress=lambda f, stage: ctx.progress(f, words.get(stage, stage)))
    return {"raster_id": raster.id, "kind": raster.kind, "acquired": raster.acquired.isoformat(),
            "page": f"/rasters/{raster.id}?f=html"}


# kinds declared beside their work
from layers import zonal as _zonal  # noqa: E402,F401  (the "zonal" kind)
