"""PNG tiles and legends of registered rasters, for the maps' raster overlays.

Thin routes: the raster looked up (:func:`layers.rasters.get_raster`, 404
``raster_not_found``), the tile address checked as the vector tiles' (400 ``invalid_tile``,
404 ``tile_out_of_range``, ``unknown_tile_matrix_set``) and its zoom against the range
drawn (404 ``raster_zoom_out_of_range``), the tile drawn by :mod:`layers.raster_tiles`. A
stored raster never changes, so the ``ETag`` is known before drawing and ``If-None-Match``
costs no drawing; versioned URLs (``?v=``, what the maps ask for) may be kept for a day.
A tile beside the raster is a small transparent PNG, not a 204, so that an ``<img>`` shows
nothing rather than a broken image.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from api.caching import not_modified
from api.deps import get_engine
from api.pages import LangDep
from api.tiles import CACHE_CONTROL, CACHE_CONTROL_VERSIONED
from layers.raster_tiles import (
    MAX_RASTER_ZOOM,
    MIN_RASTER_ZOOM,
    check_zoom,
    raster_legend,
    raster_tile,
    tile_etag,
)
from layers.rasters import get_raster
from layers.tiles import parse_tile

__all__ = ["router"]

router = APIRouter(tags=["rasters"])

RasterId = Annotated[str, Path(description="raster id, e.g. 1 (GET /rasters lists them)")]
Tms = Annotated[str, Path(description="tile matrix set: WebMercatorQuad")]
Z = Annotated[str, Path(description=f"zoom level, {MIN_RASTER_ZOOM} … {MAX_RASTER_ZOOM}")]
X = Annotated[str, Path(description="column, 0 … 2^z − 1 from the west")]
Y = Annotated[str, Path(description="row, 0 … 2^z − 1 from the north")]
_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}},
          "description": "a 256 × 256 RGBA PNG; transparent where the raster has no data or is not"},
    304: {"description": "the client's copy (If-None-Match) is current"},
}


@router.get("/rasters/{raster_id}/tiles/{tms}/{z}/{x}/{y}.png", summary="A PNG map tile of a raster",
            response_class=Response, responses=_TILE_RESPONSES)
def raster_tile_png(request: Request, raster_id: RasterId, tms: Tms, z: Z, x: X, y: Y) -> Response:
    """Band 1 of the raster in tile z/x/y, coloured by the ramp of its kind (see its legend)."""
    t = check_zoom(parse_tile(tms, z, x, y))
    with get_engine(request).connect() as conn:
        raster = get_raster(conn, raster_id)
    etag = tile_etag(raster, t)
    headers = {"ETag": etag,
               "Cache-Control": CACHE_CONTROL_VERSIONED if "v" in request.query_params else CACHE_CONTROL}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(raster_tile(raster, t), media_type="image/png", headers=headers)


@router.get("/rasters/{raster_id}/legend", summary="The legend of a raster's map tiles")
def raster_legend_json(request: Request, raster_id: RasterId, lang: LangDep = "zh") -> JSONResponse:
    """Title, unit, colour stops (value, colour), a CSS gradient and labelled values, in ``lang``."""
    with get_engine(request).connect() as conn:
        raster = get_raster(conn, raster_id)
    return JSONResponse(raster_legend(raster, lang), headers={"Cache-Control": "public, max-age=3600"})
