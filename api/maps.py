"""Map pages for ecology staff: every layer, one layer, one village, one feature, printed maps.

Thin routes: parse, fetch the map layers (:mod:`layers.mapdata`), draw them
(:mod:`gis.maps`, :mod:`gis.printing`), answer. Pages load scripts only from
``/static/vendor``; basemap tiles are the only thing from outside.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import get_engine, get_settings
from api.pages import LangDep, render
from api.security import add_nonce
from gis.maps import NO_BASEMAP, Basemap, PageParts, build_map, osm_basemap, page_parts, tianditu_basemaps
from gis.printing import print_map
from layers.errors import BadRequestError
from layers.mapdata import MapScope, map_bounds, map_layers, scope_for
from layers.model import Layer
from layers.registry import LAYERS, get_layer
from layers.symbology import InvalidStyleFieldError, MapContext, style_fields

__all__ = ["MAX_IDS", "BasemapUnavailableError", "InvalidIdsError", "basemap_hosts", "printed_map",
           "router"]

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

_TITLES = {
    "overview": ("鄂托克前旗某镇 · 土地与生态总图", "Township land and ecology overview"),
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
          ctx: MapContext, scope_args: dict, scope: MapScope | None = None) -> HTMLResponse:
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
    en = lang == "en"
    m = build_map(layers, title=title, bounds=bounds, basemaps=maps, basemap=first,
                  legend_title="Legend" if en else "图例", vendor_url=f"{base}/static/vendor",
                  link_text="Map of this feature" if en else "要素地图")
    parts = page_parts(m)
    nonce = request.state.csp_nonce
    # Folium's head and body carry inline scripts of their own: they run with this page's nonce
    parts = PageParts(header=add_nonce(parts.header, nonce), body=add_nonce(parts.body, nonce),
                      script=parts.script)
    return render(request, "maps/map.html", lang, title=title, map=parts)


def _title(kind: str, lang: str, **values: str) -> str:
    zh, en = _TITLES[kind]
    # keep the placeholders filled later (village name, feature code) for the second format
    values = {"name": "{name}", "code": "{code}", **values}
    return (en if lang == "en" else zh).format(**values)


@router.get("/maps", response_class=HTMLResponse, summary="Overview map of every layer")
def overview(request: Request, lang: LangDep = "zh", basemap: BasemapDep = None,
             on: OnDep = None) -> HTMLResponse:
    """Every layer over the village frames, with layer control, legend, scale and popups."""
    ctx = MapContext(lang=lang, on=on or date.today())
    return _page(request, lang, basemap, _title("overview", lang), _ordered(), ctx, {})


@router.get("/maps/villages/{code}", response_class=HTMLResponse, summary="Map of one village")
def village_map(request: Request, code: str, lang: LangDep = "zh", basemap: BasemapDep = None,
                on: OnDep = None) -> HTMLResponse:
    """One village's features of every layer, zoomed to it; the other frames for orientation."""
    ctx = MapContext(lang=lang, on=on or date.today())
    return _page(request, lang, basemap, _title("village", lang), _ordered(), ctx,
                 {"village": code})


@router.get("/maps/{layer_id}/features/{feature_id}", response_class=HTMLResponse,
            summary="Map of one feature")
def feature_map(request: Request, layer_id: str, feature_id: int, lang: LangDep = "zh",
                basemap: BasemapDep = None) -> HTMLResponse:
    """One feature, zoomed to it, over the village frames."""
    layer = get_layer(layer_id)
    ctx = MapContext(lang=lang)
    title = _title("feature", lang, title=layer.title(lang))
    return _page(request, lang, basemap, title, [layer.id], ctx, {"feature": (layer, feature_id)})


def printed_map(conn: sa.Connection, layer: Layer, ctx: MapContext, fmt: Literal["png", "pdf"]) -> bytes:
    """A printable map of ``layer`` over the village frames, as PNG or PDF bytes."""
    layers = map_layers(conn, [layer.id], ctx, inline_limit=10**9, popups=False)
    en = ctx.lang == "en"
    sizes = ("lengths", "长度") if layer.is_linear else ("areas", "面积")  # what the layer measures
    subtitle = (f"Map date {ctx.on.isoformat()} · landeco · UTM projection, {sizes[0]} on the ellipsoid" if en
                else f"制图日期 {ctx.on.isoformat()} · landeco · UTM 投影，{sizes[1]}按椭球计算")
    title = layer.title(ctx.lang)
    if ctx.by:
        title += f" · {layer.get_field(ctx.by).label(ctx.lang)}"
    return print_map(layers, title=title, subtitle=subtitle, lang=ctx.lang, fmt=fmt)


@router.get("/maps/{layer_id}.{fmt}", summary="Printable map of one layer (PNG or PDF)",
            responses={200: {"content": {"image/png": {}, "application/pdf": {}}}})
def layer_print(request: Request, layer_id: str, fmt: Literal["png", "pdf"], lang: LangDep = "zh",
                on: OnDep = None, by: ByDep = None) -> Response:
    """A static map for reports: title, legend, scale bar, north arrow, Chinese text."""
    layer = get_layer(layer_id)
    _check_by(layer, by)
    ctx = MapContext(lang=lang, on=on or date.today(), by=by)
    with _connect(request) as conn:
        body = printed_map(conn, layer, ctx, fmt)
    media = "image/png" if fmt == "png" else "application/pdf"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'inline; filename="{layer.id}.{fmt}"'})


@router.get("/maps/{layer_id}", response_class=HTMLResponse, summary="Map of one layer")
def layer_map(request: Request, layer_id: str, lang: LangDep = "zh", basemap: BasemapDep = None,
              on: OnDep = None, by: ByDep = None, ids: IdsDep = None) -> HTMLResponse:
    """One layer over the village frames, coloured by its style field or by ``by``.

    With ``ids`` (e.g. a query result or the features of a conflict check), only those
    features, zoomed to them.
    """
    layer = get_layer(layer_id)
    _check_by(layer, by)
    ctx = MapContext(lang=lang, on=on or date.today(), by=by)
    if ids is None:
        return _page(request, lang, basemap, _title("layer", lang, title=layer.title(lang)), [layer.id],
                     ctx, {})
    selection = _parse_ids(ids)
    title = _title("selection", lang, title=layer.title(lang), n=str(len(selection)))
    return _page(request, lang, basemap, title, [layer.id], ctx, {},
                 scope=MapScope(selection=(layer.id, selection)))


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

