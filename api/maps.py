"""Map pages for ecology staff: every layer, one layer, one village, one feature, printed maps.

Thin routes: parse, fetch the map layers (:mod:`layers.mapdata`), draw them
(:mod:`gis.maps`, :mod:`gis.printing`), answer. Pages load scripts only from
``/static/vendor``; basemap tiles are the only thing from outside.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from api.deps import get_engine, get_settings
from api.pages import LangDep, render
from api.security import add_nonce
from gis.maps import NO_BASEMAP, Basemap, PageParts, build_map, osm_basemap, page_parts, tianditu_basemaps
from gis.measure import measure
from gis.printing import print_map
from layers.columns import InvalidBboxError
from layers.errors import BadRequestError
from layers.history import parse_asof
from layers.mapdata import MapScope, data_date, find_features, map_bounds, map_layers, scope_for
from layers.model import Layer
from layers.raster_tiles import raster_overlays
from layers.rasters import get_raster
from layers.registry import LAYERS, get_layer
from layers.settings import Settings
from layers.symbology import InvalidStyleFieldError, MapContext, style_fields
from layers.values import InvalidParameterError, check_text, finite_float

__all__ = ["MAX_IDS", "BasemapUnavailableError", "InvalidIdsError", "InvalidMapLayersError",
           "NothingToPrintError", "basemap_hosts", "printed_map", "router", "township"]

router = APIRouter(tags=["maps"])


BasemapName = Literal["osm", "tianditu_vec", "tianditu_img", "none"]
BasemapDep = Annotated[BasemapName | None, Query(
    description="background shown first: osm, tianditu_vec, tianditu_img (need "
    "LANDECO_TIANDITU_KEY) or none; default Tianditu vector with a key, else OpenStreetMap")]
OnDep = Annotated[date | None, Query(
    description="map date (YYYY-MM-DD, default today): grazing bans in force and their rest "
    "season, leases ending within 90 days")]
IdsDep = Annotated[str | None, Query(
    description="only these features (comma-separated ids), e.g. a query result or a conflict check")]
#: Most feature ids one selection map takes (a longer URL would not survive proxies anyway).
MAX_IDS = 5000
ByDep = Annotated[str | None, Query(
    description="field to colour the layer by, e.g. survival_rate for caragana plots")]
AsofDep = Annotated[str | None, Query(
    description="the layers as they were at this RFC 3339 time (e.g. 2026-11-30T08:00:00+08:00)")]
RasterDep = Annotated[str | None, Query(
    description="a raster id (GET /rasters) to show at once; raster overlays are otherwise off")]

_TITLES = {
    "overview": ("{township} · 土地与生态总图", "{township} · land and ecology overview"),
    "layer": ("{title}", "{title}"),
    "village": ("{name} · 土地与生态图", "{name} · land and ecology"),
    "feature": ("{title} · {code}", "{title} · {code}"),
    "selection": ("{title} · 选定的 {n} 个要素", "{title} · {n} selected features"),
}


class InvalidIdsError(BadRequestError):
    """``ids`` is not a list of feature ids."""

    code = "invalid_ids"
    title = "Invalid feature ids"


class BasemapUnavailableError(BadRequestError):
    """A Tianditu basemap was asked for but no key is configured."""

    code = "basemap_unavailable"
    title = "Basemap unavailable"

    def __init__(self, basemap: str) -> None:
        super().__init__(f"basemap {basemap!r} needs a Tianditu key: set LANDECO_TIANDITU_KEY")
        self.basemap = basemap

    def extra(self) -> dict[str, object]:
        """The basemap asked for."""
        return {"basemap": self.basemap}


def _basemaps(lang: str, wanted: str | None, key: str) -> tuple[list[Basemap], str]:
    """The backgrounds on offer and the one shown first (Tianditu's need a ``key``)."""
    key = key.strip()
    en = lang == "en"
    maps = [osm_basemap("OpenStreetMap")]
    if key:
        maps += tianditu_basemaps(key, "Tianditu vector" if en else "天地图矢量",
                                  "Tianditu imagery" if en else "天地图影像")
    maps.append(Basemap(NO_BASEMAP.key, "No basemap" if en else NO_BASEMAP.title))
    if wanted is None:
        return maps, "tianditu_vec" if key else "osm"
    if wanted.startswith("tianditu") and not key:
        raise BasemapUnavailableError(wanted)
    return maps, wanted


def basemap_hosts(tianditu_key: str = "") -> list[str]:
    """Origins basemap tiles come from, for the pages' Content-Security-Policy ``img-src``."""
    hosts = ["https://tile.openstreetmap.org"]
    if tianditu_key.strip():
        hosts += [f"https://t{i}.tianditu.gov.cn" for i in range(8)]
    return hosts


def _ordered() -> list[str]:
    """Every registered layer in drawing order (frames first)."""
    return list(LAYERS)  # the registry keeps the declared drawing order


def _inline_limit(request: Request) -> int:
    """Features per layer drawn inline; beyond, vector tiles (``LANDECO_MAP_INLINE_LIMIT``)."""
    return get_settings(request).map_inline_limit


def _connect(request: Request) -> sa.Connection:
    return get_engine(request).connect()


def _page(request: Request, lang: str, basemap: str | None, title: str, layer_ids: list[str],
          ctx: MapContext, scope_args: dict, scope: MapScope | None = None,
          raster: str | None = None) -> HTMLResponse:
    base = str(request.base_url).rstrip("/")
    maps, first = _basemaps(lang, basemap, get_settings(request).tianditu_key)
    # links to other maps keep the reader's language and background
    kept = {k: v for k, v in (("lang", lang if lang == "en" else None), ("basemap", basemap)) if v}
    suffix = "?" + urlencode(kept) if kept else ""
    with _connect(request) as conn:
        if scope is None:
            scope = scope_for(conn, **scope_args) if scope_args else MapScope()
        if scope.feature is not None:
            code = conn.scalar(sa.text(f"SELECT code FROM {scope.feature[0]} WHERE id = :i"),
                               {"i": scope.feature[1]})
            title = title.format(code=code)
        if scope.village is not None:
            name = conn.scalar(sa.text("SELECT name FROM villages WHERE code = :c"), {"c": scope.village})
            title = title.format(name=name)
        layers = map_layers(conn, layer_ids, ctx, scope=scope,
                            inline_limit=_inline_limit(request),
                            tiles_url=f"{base}/collections/{{layer}}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}",
                            feature_link=f"{base}/maps/{{layer}}/features/{{id}}{suffix}",
                            village_link=f"{base}/maps/villages/{{code}}{suffix}")
        bounds = map_bounds(conn, scope)
        # rasters over the map, one overlay per kind with a date slider (issue 12)
        shown = [get_raster(conn, raster).id] if raster is not None else []
        rasters = raster_overlays(conn, lang=lang, on=ctx.on, bounds=bounds, show=shown,
                                  tiles_url=f"{base}/rasters/{{id}}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png")
    en = lang == "en"
    m = build_map(layers, title=title, bounds=bounds, basemaps=maps, basemap=first,
                  legend_title="Legend" if en else "图例", vendor_url=f"{base}/static/vendor",
                  link_text="Map of this feature" if en else "要素地图", rasters=rasters)
    parts = page_parts(m)
    nonce = request.state.csp_nonce
    # Folium's head and body carry inline scripts of their own: they run with this page's nonce
    parts = PageParts(header=add_nonce(parts.header, nonce), body=add_nonce(parts.body, nonce),
                      script=parts.script)
    return render(request, "maps/map.html", lang, title=title, map=parts,
                  config=_page_config(base, lang, layer_ids, ctx, scope, dated=scope.feature is None))


def _page_config(base: str, lang: str, layer_ids: list[str], ctx: MapContext, scope: MapScope,
                 dated: bool) -> dict[str, Any]:
    """What the page's tools need: where to print, search and measure, the map date."""
    params: dict[str, str] = {}
    if scope.village is not None:
        path = f"/maps/villages/{quote(scope.village, safe='')}"
    elif scope.feature is not None:
        path, params = f"/maps/{scope.feature[0]}", {"ids": str(scope.feature[1])}
    elif scope.selection is not None:
        path, params = f"/maps/{scope.selection[0]}", {"ids": ",".join(map(str, scope.selection[1]))}
    elif len(layer_ids) == 1:
        path = f"/maps/{layer_ids[0]}"
    else:
        path = "/maps"
    if ctx.by and len(layer_ids) == 1:
        params["by"] = ctx.by
    return {"lang": lang, "on": ctx.on.isoformat() if dated else None,
            "print": base + path, "print_params": params, "print_layers": path in ("/maps",) or
            scope.village is not None, "find": f"{base}/maps/search", "measure": f"{base}/maps/measure"}


def _title(kind: str, lang: str, request: Request, **values: str) -> str:
    return _title_text(kind, lang, get_settings(request), **values)


def _title_text(kind: str, lang: str, settings: Settings, **values: str) -> str:
    """A map's title in ``lang``; ``{name}`` (village) and ``{code}`` (feature) filled later."""
    zh, en = _TITLES[kind]
    values = {"name": "{name}", "code": "{code}", "township": township(settings, lang), **values}
    return (en if lang == "en" else zh).format(**values)


@router.get("/maps", response_class=HTMLResponse, summary="Overview map of every layer")
def overview(request: Request, lang: LangDep = "zh", basemap: BasemapDep = None,
             on: OnDep = None, asof: AsofDep = None, raster: RasterDep = None) -> HTMLResponse:
    """Every layer over the village frames, with layer control, legend, scale and popups."""
    ctx = MapContext(lang=lang, on=on or date.today(), asof=parse_asof(asof))
    return _page(request, lang, basemap, _title("overview", lang, request), _ordered(), ctx, {},
                 raster=raster)


@router.get("/maps/{layer_id}/features/{feature_id}", response_class=HTMLResponse,
            summary="Map of one feature")
def feature_map(request: Request, layer_id: str, feature_id: int, lang: LangDep = "zh",
                basemap: BasemapDep = None) -> HTMLResponse:
    """One feature, zoomed to it, over the village frames."""
    layer = get_layer(layer_id)
    ctx = MapContext(lang=lang)
    title = _title("feature", lang, request, title=layer.title(lang))
    return _page(request, lang, basemap, title, [layer.id], ctx, {"feature": (layer, feature_id)})


#: Widest box (degrees) a printed map takes: a township is a few tenths of a degree.
MAX_PRINT_SPAN = 5.0

BboxDep = Annotated[str | None, Query(
    description="printed extent west,south,east,north in degrees (what the screen shows); "
    "default the map's own extent")]
LayersDep = Annotated[str | None, Query(
    description="layers printed (comma-separated ids, those visible on the screen); default all "
    "the map shows. The village frames are always printed")]


class InvalidMapLayersError(BadRequestError):
    """``layers`` names a layer that does not exist or is not on that map."""

    code = "invalid_map_layers"
    title = "Invalid map layers"


class NothingToPrintError(BadRequestError):
    """The printed map would be empty: no feature of any asked layer exists."""

    code = "nothing_to_print"
    title = "Nothing to print"
    status = 404


def _parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``west,south,east,north`` in degrees: finite, in range, not inverted, not continental."""
    if value is None:
        return None
    parts = check_text(value, "bbox").split(",")
    if len(parts) != 4:
        raise InvalidBboxError("bbox: give four comma-separated numbers west,south,east,north")
    try:
        west, south, east, north = (finite_float(v, "bbox") for v in parts)
    except BadRequestError as exc:
        raise InvalidBboxError(str(exc)) from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidBboxError("bbox: west < east within ±180 and south < north within ±90 degrees")
    if max(east - west, north - south) > MAX_PRINT_SPAN:
        raise InvalidBboxError(f"bbox: a printed map spans at most {MAX_PRINT_SPAN:g} degrees")
    return west, south, east, north


def _parse_layers(value: str | None, allowed: list[str]) -> list[str]:
    """The layer ids asked for, each one of ``allowed``, in drawing order."""
    if value is None:
        return allowed
    asked = [v.strip() for v in check_text(value, "layers").split(",") if v.strip()]
    wrong = [v for v in asked if v not in allowed]
    if wrong or len(asked) > len(LAYERS):
        raise InvalidMapLayersError(f"layers: {', '.join(wrong)[:200] or 'too many'} not on this map; "
                                    f"choose from {', '.join(allowed)}")
    return [i for i in allowed if i in asked]


def township(settings_or_request: Request | Settings, lang: str) -> str:
    """The township's name in ``lang`` (``LANDECO_TOWNSHIP``, ``LANDECO_TOWNSHIP_EN``)."""
    settings = (settings_or_request if isinstance(settings_or_request, Settings)
                else get_settings(settings_or_request))
    return settings.township_en if lang == "en" else settings.township


def printed_map(conn: sa.Connection, layer_ids: list[str], ctx: MapContext, fmt: Literal["png", "pdf"],
                *, title: str, township_name: str, scope: MapScope | None = None,
                printed_at: datetime | None = None) -> bytes:
    """A printable map of ``layer_ids`` over the village frames, as PNG or PDF bytes.

    Title, legend of the layers on the page, scale bar, north arrow, the township, the
    date of the data (the newest write to those layers), the map date and the printing time.
    """
    scope = scope or MapScope()
    layers = map_layers(conn, layer_ids, ctx, scope=scope, inline_limit=10**9, popups=False)
    en = ctx.lang == "en"
    linear = all(LAYERS[i].is_linear for i in layer_ids if not LAYERS[i].is_frame) and any(
        not LAYERS[i].is_frame for i in layer_ids)
    sizes = ("lengths", "长度") if linear else ("areas", "面积")  # what the layers measure
    subtitle = (f"{township_name} · map date {ctx.on.isoformat()} · UTM projection, {sizes[0]} on the "
                "ellipsoid · landeco" if en else
                f"{township_name} · 地图日期 {ctx.on.isoformat()} · UTM 投影，{sizes[1]}按椭球计算 · landeco")
    if scope.village is not None:
        title = title.format(name=conn.scalar(sa.text("SELECT name FROM villages WHERE code = :c"),
                                              {"c": scope.village}))
    newest = data_date(conn, [la.key for la in layers])
    printed_at = printed_at or datetime.now()
    stamp = printed_at.strftime("%Y-%m-%d %H:%M")
    data = newest.isoformat() if newest else "—"
    notes = ([f"Township: {township_name}", f"Data as of: {data}", f"Map date: {ctx.on.isoformat()}",
              f"Printed: {stamp}"] if en else
             [f"乡镇：{township_name}", f"数据日期：{data}", f"地图日期：{ctx.on.isoformat()}",
              f"打印时间：{stamp}"])
    try:
        return print_map(layers, title=title, subtitle=subtitle, lang=ctx.lang, fmt=fmt,
                         extent=scope.bbox, notes=notes)
    except ValueError:
        raise NothingToPrintError("no feature to print: the layers asked for are empty") from None


def _send(body: bytes, fmt: str, name: str) -> Response:
    media = "image/png" if fmt == "png" else "application/pdf"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'inline; filename="{name}.{fmt}"'})


def _now(request: Request) -> datetime:
    """Now in the township's time zone (``LANDECO_TIMEZONE``): when a map was printed."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(get_settings(request).timezone))


FmtPath = Literal["png", "pdf"]


@router.get("/maps.{fmt}", summary="Printable overview map, or what the screen shows (PNG or PDF)",
            responses={200: {"content": {"image/png": {}, "application/pdf": {}}}})
def overview_print(request: Request, fmt: FmtPath, lang: LangDep = "zh", on: OnDep = None,
                   bbox: BboxDep = None, layers: LayersDep = None) -> Response:
    """Every layer (or ``layers``) over the village frames, of the township or of ``bbox``.

    The print button of every map page calls this with the screen's box and visible layers.
    """
    ctx = MapContext(lang=lang, on=on or date.today())
    chosen = _parse_layers(layers, _ordered())
    scope = MapScope(bbox=_parse_bbox(bbox))
    with _connect(request) as conn:
        body = printed_map(conn, chosen, ctx, fmt, title=_title("overview", lang, request),
                           township_name=township(request, lang), scope=scope, printed_at=_now(request))
    return _send(body, fmt, "landeco-map")


@router.get("/maps/villages/{code}.{fmt}", summary="Printable map of one village (PNG or PDF)",
            responses={200: {"content": {"image/png": {}, "application/pdf": {}}}})
def village_print(request: Request, code: str, fmt: FmtPath, lang: LangDep = "zh", on: OnDep = None,
                  bbox: BboxDep = None, layers: LayersDep = None) -> Response:
    """One village's features of every layer (or ``layers``), zoomed to it or to ``bbox``."""
    check_text(code, "code")
    ctx = MapContext(lang=lang, on=on or date.today())
    chosen = _parse_layers(layers, _ordered())
    box = _parse_bbox(bbox)
    with _connect(request) as conn:
        scope = replace(scope_for(conn, village=code), bbox=box)
        if box is None:  # the village's own box: its frame, not the whole township
            (s, w), (n, e) = map_bounds(conn, scope)
            scope = replace(scope, bbox=(w, s, e, n))
        body = printed_map(conn, chosen, ctx, fmt, title=_title("village", lang, request),
                           township_name=township(request, lang), scope=scope, printed_at=_now(request))
    return _send(body, fmt, f"village-{code}")


@router.get("/maps/{layer_id}.{fmt}", summary="Printable map of one layer or a selection (PNG or PDF)",
            responses={200: {"content": {"image/png": {}, "application/pdf": {}}}})
def layer_print(request: Request, layer_id: str, fmt: FmtPath, lang: LangDep = "zh",
                on: OnDep = None, by: ByDep = None, ids: IdsDep = None, bbox: BboxDep = None) -> Response:
    """A static map for reports: title, legend, scale bar, north arrow, dates, Chinese text.

    With ``ids``, only those features (a query result, a conflict check), zoomed to them.
    """
    layer = get_layer(layer_id)
    _check_by(layer, by)
    ctx = MapContext(lang=lang, on=on or date.today(), by=by)
    title = layer.title(lang)
    if by:
        title += f" · {layer.get_field(by).label(lang)}"
    box = _parse_bbox(bbox)
    scope = MapScope(bbox=box)
    if ids is not None:
        selection = _parse_ids(ids)
        title = _title("selection", lang, request, title=title, n=str(len(selection)))
        scope = MapScope(selection=(layer.id, selection), bbox=box)
    with _connect(request) as conn:
        if ids is not None and box is None:
            (s, w), (n, e) = map_bounds(conn, scope)
            pad = max(e - w, n - s, 0.002) * 0.1  # a selection of one point still has a page
            scope = replace(scope, bbox=(w - pad, s - pad, e + pad, n + pad))
        body = printed_map(conn, [layer.id], ctx, fmt, title=title,
                           township_name=township(request, lang), scope=scope, printed_at=_now(request))
    return _send(body, fmt, layer.id)


class FoundFeature(BaseModel):
    """One feature found by code or name."""

    layer: str
    layer_title: str
    id: int
    code: str | None
    label: str | None
    bbox: list[float]
    geometry: dict[str, Any]
    exact: bool
    url: str


class FoundFeatures(BaseModel):
    """The features whose code or name holds the text searched for."""

    q: str
    results: list[FoundFeature]


SearchDep = Annotated[str, Query(min_length=1, max_length=100,
                                 description="code or name, or part of one, e.g. NT-2019-001 or 乌兰")]


@router.get("/maps/search", summary="Find a plot, lease, village … by code or name")
def find(request: Request, q: SearchDep, lang: LangDep = "zh") -> FoundFeatures:
    """The map's search box: features whose code or name holds ``q``, exact codes first."""
    text = check_text(q, "q").strip()
    if not text:
        raise InvalidParameterError("q", "give a code or a name")
    base = str(request.base_url).rstrip("/")
    suffix = "?lang=en" if lang == "en" else ""
    with _connect(request) as conn:
        found = find_features(conn, text, lang)
    results = [FoundFeature(**f, url=(f"{base}/maps/villages/{quote(f['code'] or '')}{suffix}"
                                       if f["layer"] == "villages" else
                                       f"{base}/maps/{f['layer']}/features/{f['id']}{suffix}"))
               for f in found]
    return FoundFeatures(q=text, results=results)


#: Most vertices one measurement takes.
MAX_MEASURE_POINTS = 1000
CoordsDep = Annotated[str, Query(
    max_length=40_000, description="the points clicked, lon,lat;lon,lat;… in degrees (WGS 84)")]


class MeasureResult(BaseModel):
    """A path's length and the closed ring's area, on the WGS 84 ellipsoid."""

    points: int
    length_m: float
    perimeter_m: float | None
    area_m2: float | None
    area_mu: float | None


@router.get("/maps/measure", summary="Length and area (亩) of a path on the ellipsoid")
def measure_path(coords: CoordsDep) -> MeasureResult:
    """The measuring tool: Karney's geodesics on WGS 84, areas in m² and 亩."""
    points = []
    for pair in check_text(coords, "coords").split(";"):
        if not pair.strip():
            continue
        parts = pair.split(",")
        if len(parts) != 2:
            raise InvalidParameterError("coords", "give lon,lat pairs separated by semicolons")
        lon, lat = finite_float(parts[0], "coords"), finite_float(parts[1], "coords")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidParameterError("coords", "longitudes within ±180, latitudes within ±90 degrees")
        points.append((lon, lat))
    if not 1 <= len(points) <= MAX_MEASURE_POINTS:
        raise InvalidParameterError("coords", f"give between 1 and {MAX_MEASURE_POINTS} points")
    m = measure(points)
    return MeasureResult(points=m.points, length_m=m.length_m, perimeter_m=m.perimeter_m, area_m2=m.area_m2,
                         area_mu=m.area_mu)


@router.get("/maps/villages/{code}", response_class=HTMLResponse, summary="Map of one village")
def village_map(request: Request, code: str, lang: LangDep = "zh", basemap: BasemapDep = None,
                on: OnDep = None, asof: AsofDep = None, raster: RasterDep = None) -> HTMLResponse:
    """One village's features of every layer, zoomed to it; the other frames for orientation."""
    ctx = MapContext(lang=lang, on=on or date.today(), asof=parse_asof(asof))
    return _page(request, lang, basemap, _title("village", lang, request), _ordered(), ctx,
                 {"village": code}, raster=raster)


@router.get("/maps/{layer_id}", response_class=HTMLResponse, summary="Map of one layer")
def layer_map(request: Request, layer_id: str, lang: LangDep = "zh", basemap: BasemapDep = None,
              on: OnDep = None, by: ByDep = None, ids: IdsDep = None, asof: AsofDep = None,
              raster: RasterDep = None) -> HTMLResponse:
    """One layer over the village frames, coloured by its style field or by ``by``.

    With ``ids`` (e.g. a query result or the features of a conflict check), only those
    features, zoomed to them.
    """
    layer = get_layer(layer_id)
    _check_by(layer, by)
    ctx = MapContext(lang=lang, on=on or date.today(), by=by, asof=parse_asof(asof))
    if ids is None:
        return _page(request, lang, basemap, _title("layer", lang, request, title=layer.title(lang)),
                     [layer.id], ctx, {}, raster=raster)
    selection = _parse_ids(ids)
    title = _title("selection", lang, request, title=layer.title(lang), n=str(len(selection)))
    return _page(request, lang, basemap, title, [layer.id], ctx, {},
                 scope=MapScope(selection=(layer.id, selection)), raster=raster)


def _parse_ids(ids: str) -> tuple[int, ...]:
    try:
        parsed = tuple(dict.fromkeys(int(i) for i in ids.split(",") if i.strip()))
    except ValueError:
        raise InvalidIdsError("ids must be feature ids separated by commas, e.g. 3,17,42") from None
    if not parsed or len(parsed) > MAX_IDS:
        raise InvalidIdsError(f"give between 1 and {MAX_IDS} feature ids")
    return parsed


def _check_by(layer: Layer, by: str | None) -> None:
    if by is not None and by not in style_fields(layer):
        raise InvalidStyleFieldError(layer, by)

