"""Planners' routes: queries by size and place, statistics, conflicts between layers, exports.

Thin: parse, call :mod:`layers.query`, :mod:`layers.stats`, :mod:`layers.conflicts`,
:mod:`layers.export`, answer. GeoJSON answers are built in PostGIS and passed on as text.
"""

from __future__ import annotations

import shutil
from datetime import date
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from api.pages import LangDep
from layers import conflicts as conflicts_mod
from layers import stats as stats_mod
from layers.database import engine_for
from layers.export import ExportFile, export_layer, export_query
from layers.query import QueryResult, QuerySpec, feature_collection, run_query

__all__ = ["map_links", "router"]

router = APIRouter(tags=["query"])

FormatName = Literal["json", "geojson", "gpkg", "shp", "csv", "xlsx"]
FileFormat = Literal["geojson", "gpkg", "shp", "csv", "xlsx"]
CrsDep = Annotated[int, Query(description="EPSG code of the file: 4326 (WGS 84), 4490 (CGCS2000) or "
                              "4545 (CGCS2000 3° Gauss-Krüger CM 108E)")]
EncodingDep = Annotated[Literal["utf-8", "gbk"], Query(
    description="shapefile text encoding: utf-8 (.cpg UTF-8) or gbk (.cpg 936, for older ArcGIS)")]
CsvGeomDep = Annotated[Literal["wkt", "none"], Query(description="CSV geometry column: WKT, or none")]
#: Ids per map link (the maps route takes at most 5000).
_MAP_IDS = 5000


def _connect(request: Request) -> sa.Connection:
    url = request.app.state.database_url
    return engine_for(url.render_as_string(hide_password=False)).connect()


def _file(exported: ExportFile) -> FileResponse:
    """Send the file, then remove its temporary folder."""
    return FileResponse(exported.path, media_type=exported.media_type, filename=exported.filename,
                        background=BackgroundTask(shutil.rmtree, exported.path.parent, ignore_errors=True))


def map_links(base: str, result: QueryResult, lang: str = "zh") -> list[dict[str, str]]:
    """Links to a map of each layer's returned features (``/maps/{layer}?ids=…``)."""
    suffix = "&lang=en" if lang == "en" else ""
    return [{"rel": "map", "layer": r.layer.id, "type": "text/html",
             "href": f"{base}/maps/{r.layer.id}?ids={','.join(map(str, r.ids[:_MAP_IDS]))}{suffix}"}
            for r in result.layers if r.ids]


@router.post("/query", summary="Features of one or more layers by size, place and attributes",
             responses={200: {"content": {"application/geo+json": {}, "application/zip": {}}}})
def query(request: Request, spec: QuerySpec, format: FormatName = "json", crs: CrsDep = 4326,
          encoding: EncodingDep = "utf-8", geometry: CsvGeomDep = "wkt", lang: LangDep = "zh") -> Response:
    """A GeoJSON FeatureCollection with a ``summary`` (count, 亩, 万亩, ha per layer), or a file.

    For a place query each feature carries ``area_inside_mu`` (clipped, ellipsoidal) and the
    totals are of clipped areas. JSON answers at most ``limit`` (default 1000) features per
    layer while the totals count every match; a file holds every match unless ``limit`` is given.
    """
    with _connect(request) as conn:
        if format != "json":
            return _file(export_query(conn, spec, format, crs=crs, encoding=encoding,
                                      csv_geometry=geometry, lang=lang))
        result = run_query(conn, spec)
    base = str(request.base_url).rstrip("/")
    return Response(feature_collection(result, map_links(base, result, lang)),
                    media_type="application/geo+json")


@router.get("/export/{layer_id}", summary="A whole layer as a file",
            responses={200: {"content": {"application/zip": {}, "application/geopackage+sqlite3": {}}}})
def export(request: Request, layer_id: str, format: FileFormat = "gpkg", crs: CrsDep = 4326,
           encoding: EncodingDep = "utf-8", geometry: CsvGeomDep = "wkt", lang: LangDep = "zh") -> Response:
    """GeoJSON, GeoPackage, zipped shapefile (UTF-8 or GBK, .prj of the CRS), CSV or XLSX."""
    with _connect(request) as conn:
        return _file(export_layer(conn, layer_id, format, crs=crs, encoding=encoding,
                                  csv_geometry=geometry, lang=lang))


# --- statistics -------------------------------------------------------------------------------

@router.get("/stats/{layer_id}", summary="Totals per village and category",
            responses={200: {"content": {"text/csv": {}, stats_mod.XLSX: {}}}})
def stats(request: Request, layer_id: str,
          by: Annotated[str | None, Query(description="comma-separated fields to group by, e.g. "
                                          "village_code,planted_year")] = None,
          format: Literal["json", "csv", "xlsx"] = "json",
          on: Annotated[date | None, Query(description="grazing bans in force on this day")] = None,
          expiring_days: Annotated[int | None, Query(
              ge=0, le=3650, description="leases: only active ones ending within N days of `on`")] = None,
          lang: LangDep = "zh") -> Response:
    """Count, area (亩, 万亩, ha) and the layer's own measures, grouped by ``by``."""
    groups = [b.strip() for b in by.split(",") if b.strip()] if by else []
    with _connect(request) as conn:
        table = stats_mod.layer_stats(conn, layer_id, groups, on=on, expiring_days=expiring_days)
    if format == "csv":
        return Response(stats_mod.to_csv(table, lang), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{layer_id}-stats.csv"'})
    if format == "xlsx":
        return Response(stats_mod.to_xlsx(table, lang), media_type=stats_mod.XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{layer_id}-stats.xlsx"'})
    return Response(stats_mod.to_json(table), media_type="application/json")


# --- conflicts --------------------------------------------------------------------------------

@router.get("/conflicts", summary="The conflict checks between layers")
def conflict_checks(request: Request) -> dict[str, Any]:
    """Every check, with its Chinese and English title and a link to its answer."""
    base = str(request.base_url).rstrip("/")
    return {"checks": [{**c.describe(), "href": f"{base}/conflicts/{c.id}"}
                       for c in conflicts_mod.CHECKS.values()]}


@router.get("/conflicts/{check_id}", summary="Overlaps found by one conflict check",
            responses={200: {"content": {"application/geo+json": {}}}})
def conflict(request: Request, check_id: str,
             on: Annotated[date | None, Query(description="day the check is for (leases active, bans "
                                              "in force); default today")] = None,
             village: Annotated[str | None, Query(description="only this village (code)")] = None,
             lang: LangDep = "zh") -> Response:
    """GeoJSON of the overlapping pieces: both sides' layer, id and code, the overlap in 亩."""
    base = str(request.base_url).rstrip("/")
    with _connect(request) as conn:
        text = conflicts_mod.run_check(conn, check_id, on=on or date.today(), village=village,
                                       map_base=base, lang=lang)
    return Response(text, media_type="application/geo+json")


# --- the page ---------------------------------------------------------------------------------
