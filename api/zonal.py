"""Zonal statistics over HTTP: queue the ``zonal`` job for a raster, read a feature's time series.

Thin: the body is checked at the edge (:func:`layers.zonal.check_zonal`: unknown layer or
statistic, NaN threshold, bad ring or filter → 400 with a stable code) before a job is queued;
the series is read from ``zonal_stats`` (:func:`layers.zonal.feature_series`).
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field

from api.audit import who
from api.deps import CollectionDep, ConnDep, get_engine
from api.jobs import _accepted, queue_of
from api.pages import LangDep
from layers import jobs
from layers.columns import FeatureNotFoundError
from layers.rasters import KINDS, get_raster
from layers.values import RequestModel, feature_number
from layers.zonal import MAX_RING_M, check_zonal, feature_series

__all__ = ["ZonalRequest", "router"]

router = APIRouter(tags=["rasters"])

RasterId = Annotated[str, Path(description="the raster's id")]
FeatureId = Annotated[str, Path(description="the feature's id")]


class ZonalRequest(RequestModel):
    """What to summarize: a polygon layer's features (those ``where`` selects) over the raster."""

    layer: str = Field(description="a polygon layer, e.g. caragana_plots or grazing_bans")
    stats: list[str] | None = Field(None, max_length=16, description="mean, median, min, max, stdev, "
                                    "area_m2, area_mu, share_above (default: all but share_above, which is "
                                    "added with a threshold)")
    where: str | dict[str, Any] | None = Field(None, description="a CQL2 filter (text or JSON) on the "
                                               "layer's queryables, e.g. planted_year >= 2018")
    threshold: float | None = Field(None, description="share_above: the share of each feature whose "
                                    "value is above this")
    ring_m: float | None = Field(None, description=f"also a ring this many metres wide outside each "
                                 f"feature (1–{MAX_RING_M:g}), stored as zone ring_<m>")

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"layer": "caragana_plots", "stats": ["mean", "area_mu", "share_above"], "threshold": 0.3},
        {"layer": "grazing_bans", "where": "regime = 'full_ban'", "ring_m": 500}]})


_LOCATION = {"Location": {"description": "the job's address", "schema": {"type": "string"}}}


@router.post("/rasters/{raster_id}/zonal", status_code=202,
             summary="Queue zonal statistics of a layer's features over this raster; follow the job",
             responses={202: {"description": "the job, queued; follow it at Location", "headers": _LOCATION}})
def queue_zonal(request: Request, raster_id: RasterId, body: ZonalRequest, lang: LangDep = "zh") -> Response:
    """202 with the job (``Location``); the rows are stored as the job goes (``/jobs/{id}``)."""
    with get_engine(request).connect() as conn:
        raster = get_raster(conn, raster_id)
    params = check_zonal({"raster_id": raster.id, "layer": body.layer, "stats": body.stats,
                          "where": body.where, "threshold": body.threshold, "ring_m": body.ring_m,
                          "lang": lang})
    job_id = jobs.submit(queue_of(request.app), get_engine(request), "zonal", params, who(request).actor)
    return _accepted(request, job_id)


@router.get("/collections/{collection_id}/items/{feature_id}/zonal",
            summary="A feature's zonal statistics over every raster: its time series")
def feature_zonal(request: Request, layer: CollectionDep, feature_id: FeatureId, conn: ConnDep,
                  lang: LangDep = "zh") -> JSONResponse:
    """One series per raster kind and zone (``feature``, ``ring_500`` …), its points by date."""
    fid = feature_number(feature_id)
    exists = fid is not None and conn.execute(
        sa.text(f"SELECT EXISTS (SELECT 1 FROM {layer.table} WHERE id = :fid)"), {"fid": fid}).scalar()
    if not exists:
        raise FeatureNotFoundError(f"{layer.id} has no feature {feature_id[:40]!r}")
    series: list[dict[str, Any]] = []
    for row in feature_series(conn, layer.id, fid):  # ordered by kind, zone, date
        kind, zone = row.pop("kind"), row.pop("zone")
        if not series or (series[-1]["kind"], series[-1]["zone"]) != (kind, zone):
            zh, en = KINDS.get(kind, (kind, kind))
            series.append({"kind": kind, "label": en if lang == "en" else zh, "zone": zone, "points": []})
        series[-1]["points"].append(row)
    base = str(request.base_url).rstrip("/")
    return JSONResponse({
        "layer": layer.id, "feature_id": fid, "series": series,
        "links": [{"rel": "self", "type": "application/json",
                   "href": f"{base}/collections/{layer.id}/items/{fid}/zonal"},
                  {"rel": "item", "type": "application/geo+json",
                   "href": f"{base}/collections/{layer.id}/items/{fid}"}]})
