"""Planners' routes: queries by size and place, statistics, conflicts between layers, exports.

Thin: parse, call :mod:`layers.query`, :mod:`layers.stats`, :mod:`layers.conflicts`,
:mod:`layers.export`, answer. GeoJSON answers are built in PostGIS and passed on as text.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from api.deps import ConnDep, get_settings
from api.pages import LangDep, render
from layers import conflicts as conflicts_mod
from layers import stats as stats_mod
from layers.errors import BadRequestError, LandecoError
from layers.export import ExportFile, export_layer, export_query
from layers.query import (
    InvalidBboxError,
    InvalidGeometryError,
    QueryResult,
    QuerySpec,
    category_field,
    feature_collection,
    next_page,
    run_query,
    subtotals,
)
from layers.registry import LAYERS
from layers.values import InvalidParameterError, finite_float, integer, iso_date, parse_json

__all__ = ["map_links", "router", "spec_from_form"]

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


def _attachment(name: str) -> str:
    """A Content-Disposition naming a file in Chinese (RFC 6266: an ASCII name, then UTF-8)."""
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def _max(request: Request) -> int:
    """Most features one export may hold (``LANDECO_EXPORT_MAX_FEATURES``)."""
    return get_settings(request).export_max_features


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
def query(request: Request, conn: ConnDep, spec: QuerySpec, format: FormatName = "json", crs: CrsDep = 4326,
          encoding: EncodingDep = "utf-8", geometry: CsvGeomDep = "wkt", lang: LangDep = "zh") -> Response:
    """A GeoJSON FeatureCollection with a ``summary`` (count, 亩, 万亩, ha per layer), or a file.

    For a place query each feature carries ``area_inside_mu`` (clipped, ellipsoidal) and the
    totals are of clipped areas. JSON answers at most ``limit`` (default 1000) features per
    layer while the totals count every match; a file holds every match unless ``limit`` is given.
    """
    if format != "json":
        return _file(export_query(conn, spec, format, crs=crs, encoding=encoding,
                                  csv_geometry=geometry, lang=lang, max_features=_max(request)))
    result = run_query(conn, spec)
    base = str(request.base_url).rstrip("/")
    links: list[dict[str, Any]] = list(map_links(base, result, lang))
    following = next_page(spec, result)
    if following is not None:  # OGC API style: the next page is the same POST with this body
        links.append({"rel": "next", "href": f"{base}/query", "method": "POST",
                      "type": "application/geo+json", "body": following})
    return Response(feature_collection(result, links), media_type="application/geo+json")


@router.get("/export/{layer_id}", summary="A whole layer as a file",
            responses={200: {"content": {"application/zip": {}, "application/geopackage+sqlite3": {}}}})
def export(request: Request, conn: ConnDep, layer_id: str, format: FileFormat = "gpkg", crs: CrsDep = 4326,
           encoding: EncodingDep = "utf-8", geometry: CsvGeomDep = "wkt", lang: LangDep = "zh") -> Response:
    """GeoJSON, GeoPackage, zipped shapefile (UTF-8 or GBK, .prj of the CRS), CSV or XLSX."""
    return _file(export_layer(conn, layer_id, format, crs=crs, encoding=encoding,
                              csv_geometry=geometry, lang=lang, max_features=_max(request)))


# --- statistics -------------------------------------------------------------------------------

@router.get("/stats/{layer_id}", summary="Totals per village and category",
            responses={200: {"content": {"text/csv": {}, stats_mod.XLSX: {}}}})
def stats(request: Request, conn: ConnDep, layer_id: str,
          by: Annotated[str | None, Query(description="comma-separated fields to group by, e.g. "
                                          "village_code,planted_year")] = None,
          format: Literal["json", "csv", "xlsx"] = "json",
          on: Annotated[date | None, Query(description="grazing bans in force on this day")] = None,
          expiring_days: Annotated[int | None, Query(
              ge=0, le=3650, description="leases: only active ones ending within N days of `on`")] = None,
          lang: LangDep = "zh") -> Response:
    """Count, area (亩, 万亩, ha) and the layer's own measures, grouped by ``by``."""
    groups = [b.strip() for b in by.split(",") if b.strip()] if by else []
    table = stats_mod.layer_stats(conn, layer_id, groups, on=on, expiring_days=expiring_days)
    if format in ("csv", "xlsx"):
        body = stats_mod.to_csv(table, lang) if format == "csv" else stats_mod.to_xlsx(table, lang)
        name = _attachment(stats_mod.file_name(table, lang, format))
        return Response(body, media_type="text/csv; charset=utf-8" if format == "csv" else stats_mod.XLSX,
                        headers={"Content-Disposition": name})
    return Response(stats_mod.to_json(table), media_type="application/json")


# --- conflicts --------------------------------------------------------------------------------

@router.get("/conflicts", summary="The conflict checks between layers")
def conflict_checks(request: Request) -> dict[str, Any]:
    """Every check, with its Chinese and English title and a link to its answer."""
    base = str(request.base_url).rstrip("/")
    return {"checks": [{**c.describe(), "href": f"{base}/conflicts/{c.id}"}
                       for c in conflicts_mod.CHECKS.values()]}


@router.get("/conflicts/{check_id}", summary="Overlaps found by one conflict check",
            responses={200: {"content": {"application/geo+json": {}, stats_mod.XLSX: {}}}})
def conflict(request: Request, conn: ConnDep, check_id: str,
             on: Annotated[date | None, Query(description="day the check is for (leases active, bans "
                                              "in force); default today")] = None,
             village: Annotated[str | None, Query(description="only this village (code)")] = None,
             format: Annotated[Literal["geojson", "xlsx"], Query(
                 description="geojson, or xlsx: a table people read (lessee, project, regime as words, "
                 "totals)")] = "geojson",
             lang: LangDep = "zh") -> Response:
    """GeoJSON of the overlapping pieces: both sides' layer, id and code, the overlap in 亩; or XLSX."""
    if format == "xlsx":
        body, name = conflicts_mod.to_xlsx(conn, check_id, on=on or date.today(), village=village, lang=lang)
        return Response(body, media_type=stats_mod.XLSX,
                        headers={"Content-Disposition": _attachment(name)})
    base = str(request.base_url).rstrip("/")
    text = conflicts_mod.run_check(conn, check_id, on=on or date.today(), village=village,
                                   map_base=base, lang=lang)
    return Response(text, media_type="application/geo+json")


# --- the page ---------------------------------------------------------------------------------

_PAGE_LIMIT = 200  # features per layer on the page; the download holds every match
_T = {  # page words: (zh, en)
    "title": ("按面积和位置查询", "Query by area and place"),
    "conflicts": ("图层冲突检查", "Conflicts between layers"),
}


def _where_text(text: str | None) -> dict[str, Any]:
    """``purpose=solar; status=active,expired`` → the ``where`` of a query."""
    out: dict[str, Any] = {}
    for item in (text or "").replace("；", ";").split(";"):
        if item.strip():
            name, _, value = item.partition("=")
            values = [v.strip() for v in value.replace("，", ",").split(",") if v.strip()]
            out[name.strip()] = values if len(values) != 1 else values[0]
    return out


def _num(value: str | float | None, name: str) -> float | None:
    """A form's number; an empty field is no value."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return finite_float(value, name)


def spec_from_form(*, layers: list[str] | None, area_min: str | float | None, area_max: str | float | None,
                   unit: str, villages: list[str] | None, bbox: str | None, geometry: str | None,
                   buffer_m: str | float | None, where: str | None, sort: str | None,
                   limit: str | int | None) -> QuerySpec:
    """The query the page's form describes (the same one ``POST /query`` takes)."""
    area_min, area_max = _num(area_min, "area_min"), _num(area_max, "area_max")
    buffer_m = _num(buffer_m, "buffer_m")
    limit = integer(limit, "limit") if limit not in (None, "") else None
    place: dict[str, Any] | None = None
    villages = [v for v in villages or [] if v]
    if villages:
        place = {"villages": villages}
    elif bbox and bbox.strip():
        try:
            place = {"bbox": [finite_float(x, "bbox") for x in bbox.replace("，", ",").split(",")]}
        except BadRequestError:
            raise InvalidBboxError("bbox is four numbers: west,south,east,north") from None
    elif geometry and geometry.strip():
        try:
            place = {"geometry": parse_json(geometry, "geometry")}
        except BadRequestError as exc:
            raise InvalidGeometryError(f"the place is not GeoJSON: {exc}") from None
    area = {"min": area_min, "max": area_max, "unit": unit} if area_min is not None or area_max is not None \
        else None
    try:
        return QuerySpec(layers=layers or [], area=area, place=place, buffer_m=buffer_m or None,
                         where=_where_text(where), sort=sort or None, limit=limit)
    except ValidationError as exc:
        first = exc.errors()[0]
        where_ = ".".join(str(x) for x in first.get("loc", ())) or "query"
        raise InvalidParameterError(where_, first.get("msg", "invalid value")) from None


def _village_options(conn: sa.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute(sa.text("SELECT code, name FROM villages ORDER BY code"))]


def _villages_geojson(conn: sa.Connection) -> str:
    return conn.scalar(sa.text(
        "SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg("
        "json_build_object('type', 'Feature', 'geometry', ST_AsGeoJSON(geom, 5)::json, "
        "'properties', json_build_object('code', code, 'name', name))), '[]'))::text FROM villages"))


@router.get("/query", response_class=HTMLResponse, summary="The planners' query page")
def page(request: Request, conn: ConnDep, lang: LangDep = "zh",
         layers: Annotated[list[str] | None, Query(description="layers to query")] = None,
         area_min: str | None = None, area_max: str | None = None,
         unit: Literal["mu", "ha", "m2"] = "mu",
         villages: Annotated[list[str] | None, Query()] = None,
         bbox: str | None = None, geometry: str | None = None, buffer_m: str | None = None,
         where: str | None = None, sort: str | None = None, limit: str | None = None,
         check: str | None = None,
         on: Annotated[str | None, Query(description="the day conflict checks and statistics are for "
                                         "(YYYY-MM-DD); default today")] = None) -> HTMLResponse:
    """A form in Chinese (English with ``lang=en``), and the answer below it.

    With ``layers``: totals, a table, a map and download links; with ``check``: a conflict
    check drawn on the map.
    """
    base = str(request.base_url).rstrip("/")
    day: date | None = None
    try:
        day = iso_date(on, "on") if on and on.strip() else None
    except BadRequestError:
        day = None  # said below, on the page
    form = {"layers": layers or [], "area_min": area_min, "area_max": area_max, "unit": unit,
            "villages": villages or [], "bbox": bbox or "", "geometry": geometry or "",
            "buffer_m": buffer_m, "where": where or "", "sort": sort or "", "limit": limit,
            "check": check or "", "on": (day or date.today()).isoformat()}
    ctx: dict[str, Any] = {"form": form, "error": None, "result": None, "conflict": None, "subtotals": {}}
    status = 200
    ctx["village_options"] = _village_options(conn)
    ctx["village_names"] = dict(ctx["village_options"])
    ctx["villages_geojson"] = _villages_geojson(conn)
    try:
        if on and on.strip() and day is None:
            iso_date(on, "on")  # the problem, shown on the page
        if layers:
            spec = spec_from_form(layers=layers, area_min=area_min, area_max=area_max, unit=unit,
                                  villages=villages, bbox=bbox, geometry=geometry, buffer_m=buffer_m,
                                  where=where, sort=sort, limit=limit or _PAGE_LIMIT)
            result = run_query(conn, spec)
            links = map_links(base, result, lang)
            fc = feature_collection(result, links)
            ctx["result"] = {"summary": result.summary(), "geojson": fc, "links": links,
                             "features": json.loads(fc)["features"], "clipped": spec.place is not None}
            ctx["download"] = f"{base}/query/export?{request.url.query}"
            ctx["subtotals"] = subtotals(conn, spec, lang)
        elif check:
            text = conflicts_mod.run_check(conn, check, on=day or date.today(), map_base=base, lang=lang)
            ctx["conflict"] = {"geojson": text, **json.loads(text)}
            for f in ctx["conflict"]["features"]:
                f["words"] = _side_words(f["properties"], lang)
    except LandecoError as exc:
        ctx["error"] = {"code": exc.code, "detail": str(exc), **exc.extra()}
        status = exc.status
    except ValidationError as exc:
        ctx["error"] = {"code": "invalid_parameter", "detail": str(exc).splitlines()[0]}
        status = 400
    en = lang == "en"
    stats_suffix = (f"&on={day.isoformat()}" if day else "") + ("&lang=en" if en else "")
    return render(request, "query/page.html", lang, status_code=status,
                  title=_T["title"][1 if en else 0], layer_options=list(LAYERS.values()),
                  layer_titles={i: layer.title(lang) for i, layer in LAYERS.items()},
                  layer_by_id=LAYERS, categories=_categories(lang), stats_suffix=stats_suffix,
                  checks=list(conflicts_mod.CHECKS.values()), **ctx)


def _side_words(props: dict[str, Any], lang: str) -> dict[str, str]:
    """Each side's reported fields as people read them (``承租方: …; 用途: 光伏``)."""
    out = {}
    for side in ("a", "b"):
        layer = LAYERS.get(props.get(f"{side}_layer") or "")
        parts = []
        for f in layer.all_fields if layer else ():
            value = props.get(f"{side}_{f.name}")
            if value is None or f.name == "village_code":
                continue
            choice = f.choice(value) if f.choices and isinstance(value, str) else None
            word = (choice.en if lang == "en" else choice.zh) if choice else value
            parts.append(f"{f.label(lang)}: {word}")
        out[side] = "; ".join(parts)
    return out


def _categories(lang: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Per layer: the field its answers are subtotalled by, its label, and the words of its codes."""
    out = {}
    for layer in LAYERS.values():
        f = category_field(layer)
        if f is not None:
            words = {c.value: (c.en if lang == "en" else c.zh) for c in f.choices}
            out[layer.id] = (f.name, f.label(lang), words)
    return out


@router.get("/query/export", summary="The query page's answer as a file")
def page_export(request: Request, conn: ConnDep, format: FileFormat = "gpkg", crs: CrsDep = 4326,
                encoding: EncodingDep = "utf-8", csv_geometry: CsvGeomDep = "wkt", lang: LangDep = "zh",
                layers: Annotated[list[str] | None, Query()] = None,
                area_min: str | None = None, area_max: str | None = None,
                unit: Literal["mu", "ha", "m2"] = "mu",
                villages: Annotated[list[str] | None, Query()] = None,
                bbox: str | None = None, geometry: str | None = None, buffer_m: str | None = None,
                where: str | None = None, sort: str | None = None, limit: str | None = None) -> Response:
    """The form values of ``GET /query`` written to a file: every match, not only the page's."""
    spec = spec_from_form(layers=layers, area_min=area_min, area_max=area_max, unit=unit, villages=villages,
                          bbox=bbox, geometry=geometry, buffer_m=buffer_m, where=where, sort=sort, limit=None)
    return _file(export_query(conn, spec, format, crs=crs, encoding=encoding, csv_geometry=csv_geometry,
                              lang=lang, max_features=_max(request)))
