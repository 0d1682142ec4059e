"""Vector tiles (OGC API – Tiles, Mapbox Vector Tile) of each layer and of all layers.

Thin routes: the address is checked and the tile built whole by PostGIS
(:mod:`layers.tiles`), or taken from the shared cache while its layers are unchanged
(:mod:`layers.tile_cache`, ``X-Tile-Cache: hit``); the bytes go out as they came, gzipped here when the client
accepts it, with a weak ``ETag`` of the bytes (``If-None-Match`` → 304) and a
``Cache-Control`` that lets a map keep a tile instead of asking again. A tile with
nothing in it is a 204. Maps ask for versioned URLs (``?v=…``, changed when the layer
changes), which may be kept for a day.
"""

from __future__ import annotations

import gzip
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.caching import not_modified, weak_etag
from api.deps import get_engine, get_settings
from layers.collections import extents
from layers.history import parse_asof
from layers.model import Layer
from layers.registry import LAYERS, get_layer
from layers.store.citus import any_distributed
from layers.store.database import fetch_pipelined
from layers.tile_cache import cached_tile
from layers.tiles import (
    DETAIL_ZOOM,
    MAX_ZOOM,
    MIN_ZOOM,
    TILE_MATRIX_SET,
    TileAddress,
    UnknownTileMatrixSetError,
    multi_tile_sql,
    parse_tile,
    tile_columns,
    tile_settings,
    tile_sql,
)

__all__ = ["MVT", "router"]

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
#: Unversioned tiles: kept a minute, then asked again (cheap: the ETag answers 304).
CACHE_CONTROL = "public, max-age=60"
#: Versioned tiles (``?v=``): a new version is a new URL, so the old one may be kept.
CACHE_CONTROL_VERSIONED = "public, max-age=86400, immutable"
_TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
_CRS = "http://www.opengis.net/def/crs/EPSG/0/3857"
#: The map does not zoom further; tiles exist up to MAX_ZOOM all the same.
TILEJSON_MAXZOOM = 22

LayerId = Annotated[str, Path(description="collection (layer) id, e.g. caragana_plots")]
Tms = Annotated[str, Path(description="tile matrix set: WebMercatorQuad")]
Z = Annotated[str, Path(description=f"zoom level (tile matrix), {MIN_ZOOM} … {MAX_ZOOM}")]
X = Annotated[str, Path(description="column, 0 … 2^z − 1 from the west")]
Y = Annotated[str, Path(description="row, 0 … 2^z − 1 from the north")]
_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MVT: {}}, "description": "a Mapbox Vector Tile"},
    204: {"description": "nothing in this tile"},
    304: {"description": "the client's copy (If-None-Match) is current"},
}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _fetch(request: Request, sql: str) -> bytes:
    timeout = get_settings(request).tile_timeout_ms
    late = f"the tile took longer than {timeout / 1000:g} s to build: zoom in"
    rows = fetch_pipelined(get_engine(request), tile_settings(timeout), sql, timeout_message=late)
    return bytes(rows[0][0] or b"") if rows else b""


def _distributed(request: Request) -> bool:
    """Whether Citus distributes the layers (asked once per process: distributing takes a restart)."""
    state = request.app.state
    if getattr(state, "layers_distributed", None) is None:
        with get_engine(request).connect() as conn:
            state.layers_distributed = any_distributed(conn)
    return state.layers_distributed


def _cached(request: Request, layers: list[Layer], t: TileAddress, sql: str, past: bool = False) -> Response:
    """The tile from the shared cache when its layers have not changed since, else built.

    A tile of the past (``asof``) is built each time: the cache holds the present.
    """
    if past:
        return _tile_response(request, _fetch(request, sql), False)
    data, hit = cached_tile(get_engine(request), layers, t, lambda: _fetch(request, sql))
    return _tile_response(request, data, hit)


def _tile_response(request: Request, data: bytes, hit: bool) -> Response:
    # weak: the same tile is sent gzipped or not, byte-different but equivalent
    etag = weak_etag(data)
    headers = {"ETag": etag, "Vary": "Accept-Encoding", "X-Tile-Cache": "hit" if hit else "miss",
               "Cache-Control": CACHE_CONTROL_VERSIONED if "v" in request.query_params else CACHE_CONTROL}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    if not data:
        return Response(status_code=204, headers=headers)
    if len(data) > 256 and "gzip" in request.headers.get("accept-encoding", "").lower():
        data = gzip.compress(data, compresslevel=5, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=MVT, headers=headers)


AsofDep = Annotated[str | None, Query(
    description="the layers as they were at this RFC 3339 time (e.g. 2026-11-30T08:00:00+08:00)")]


@router.get("/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}", summary="A vector tile of one layer",
            response_class=Response, responses=_TILE_RESPONSES)
def collection_tile(request: Request, collection_id: LayerId, tms: Tms, z: Z, x: X, y: Y,
                    asof: AsofDep = None) -> Response:
    """The layer's features in tile z/x/y, one MVT layer named after the collection."""
    layer = get_layer(collection_id)
    t = parse_tile(tms, z, x, y)
    past = parse_asof(asof)
    sql = tile_sql(layer, t.z, t.x, t.y, asof=past, materialize=_distributed(request))
    return _cached(request, [layer], t, sql, past is not None)


def _collections(value: str | None) -> list[Layer]:
    if not value:
        return list(LAYERS.values())
    return [get_layer(v.strip()) for v in value.split(",") if v.strip()]


CollectionsDep = Annotated[str | None, Query(
    description="only these collections (comma-separated ids); default every layer")]


@router.get("/tiles/{tms}/{z}/{x}/{y}", summary="A vector tile of every layer",
            response_class=Response, responses=_TILE_RESPONSES)
def dataset_tile(request: Request, tms: Tms, z: Z, x: X, y: Y,
                 collections: CollectionsDep = None, asof: AsofDep = None) -> Response:
    """Every layer (or ``collections``) in tile z/x/y, one MVT layer per collection."""
    layers = _collections(collections)
    t = parse_tile(tms, z, x, y)
    past = parse_asof(asof)
    sql = multi_tile_sql(layers, t.z, t.x, t.y, asof=past, materialize=_distributed(request))
    return _cached(request, layers, t, sql, past is not None)


def _vector_layer(layer: Layer) -> dict[str, Any]:
    fields = {}
    for name in tile_columns(layer):
        f = layer.get_field(name) if name in {g.name for g in layer.all_fields} else None
        size = layer.size if layer.size is not None and layer.size.name == name else None
        kind = "Number" if f is None or f.type in ("integer", "real") else "String"
        fields[name] = f"{kind}: {f.en if f else name}" if f else (
            f"Number: {size.en.lower()} in {size.unit}" if size else "Number: feature id")
    if layer.is_polygonal:
        fields["parcels"] = f"Number: features a generalised cell stands for (below zoom {DETAIL_ZOOM})"
    return {"id": layer.id, "description": layer.title("en"), "minzoom": MIN_ZOOM,
            "maxzoom": TILEJSON_MAXZOOM, "fields": fields}


def _tilejson(request: Request, layers: list[Layer], tiles_url: str, name: str) -> dict[str, Any]:
    with get_engine(request).connect() as conn:
        ext = extents(conn, layers)
    boxes = [e["spatial"]["bbox"][0] for e in ext.values() if "spatial" in e]
    bounds = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
               max(b[3] for b in boxes)] if boxes else [-180.0, -85.0511, 180.0, 85.0511])
    return {"tilejson": "3.0.0", "name": name, "scheme": "xyz", "tiles": [tiles_url],
            "minzoom": MIN_ZOOM, "maxzoom": TILEJSON_MAXZOOM, "bounds": bounds,
            "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, 10],
            "vector_layers": [_vector_layer(la) for la in layers]}


def _json(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


def _check_tms(tms: str) -> None:
    if tms != TILE_MATRIX_SET:
        raise UnknownTileMatrixSetError(tms)


@router.get("/collections/{collection_id}/tiles", summary="Tilesets of one layer")
def collection_tilesets(request: Request, collection_id: LayerId) -> JSONResponse:
    """The layer's vector tilesets (one: WebMercatorQuad)."""
    layer = get_layer(collection_id)
    return _json({"tilesets": [_tileset(request, layer, f"/collections/{layer.id}/tiles")],
                  "links": [{"rel": "self", "type": "application/json",
                             "href": f"{_base(request)}/collections/{layer.id}/tiles"}]})


def _tileset(request: Request, layer: Layer | None, path: str) -> dict[str, Any]:
    base = _base(request) + path
    return {
        "title": layer.title("en") if layer else "landeco: every layer",
        "dataType": "vector", "crs": _CRS, "tileMatrixSetURI": _TMS_URI,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/{TILE_MATRIX_SET}"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "type": "application/json",
             "href": _TMS_URI},
            {"rel": "item", "type": MVT, "templated": True,
             "href": f"{base}/{TILE_MATRIX_SET}/{{tileMatrix}}/{{tileCol}}/{{tileRow}}"},
            {"rel": "describedby", "type": "application/json", "title": "TileJSON",
             "href": f"{base}/{TILE_MATRIX_SET}/tilejson.json"},
        ],
    }


@router.get("/collections/{collection_id}/tiles/{tms}", summary="Tileset metadata of one layer")
def collection_tileset(request: Request, collection_id: LayerId, tms: Tms) -> JSONResponse:
    """OGC tileset metadata: the tile matrix set, the URL template, the vector layer."""
    layer = get_layer(collection_id)
    _check_tms(tms)
    body = _tileset(request, layer, f"/collections/{layer.id}/tiles")
    body["layers"] = [{"id": layer.id, "dataType": "vector", "geometryType": "polygons"
                       if layer.is_polygonal else "lines", "minTileMatrix": str(MIN_ZOOM),
                       "maxTileMatrix": str(MAX_ZOOM)}]
    return _json(body)


@router.get("/collections/{collection_id}/tiles/{tms}/tilejson.json", summary="TileJSON of one layer")
def collection_tilejson(request: Request, collection_id: LayerId, tms: Tms) -> JSONResponse:
    """TileJSON 3.0.0 for MapLibre, Leaflet.VectorGrid, QGIS and the like."""
    layer = get_layer(collection_id)
    _check_tms(tms)
    url = f"{_base(request)}/collections/{layer.id}/tiles/{TILE_MATRIX_SET}/{{z}}/{{x}}/{{y}}"
    return _json(_tilejson(request, [layer], url, layer.id))


@router.get("/tiles", summary="Tilesets of every layer together")
def dataset_tilesets(request: Request) -> JSONResponse:
    """The multi-layer tileset (one: WebMercatorQuad)."""
    return _json({"tilesets": [_tileset(request, None, "/tiles")],
                  "links": [{"rel": "self", "type": "application/json", "href": f"{_base(request)}/tiles"}]})


@router.get("/tiles/{tms}", summary="Tileset metadata of every layer together")
def dataset_tileset(request: Request, tms: Tms) -> JSONResponse:
    """OGC tileset metadata of the multi-layer tiles: one vector layer per collection."""
    _check_tms(tms)
    body = _tileset(request, None, "/tiles")
    body["layers"] = [{"id": la.id, "dataType": "vector", "minTileMatrix": str(MIN_ZOOM),
                       "maxTileMatrix": str(MAX_ZOOM)} for la in LAYERS.values()]
    return _json(body)


@router.get("/tiles/{tms}/tilejson.json", summary="TileJSON of every layer together")
def dataset_tilejson(request: Request, tms: Tms, collections: CollectionsDep = None) -> JSONResponse:
    """TileJSON 3.0.0 of the multi-layer tiles: one vector layer per collection."""
    _check_tms(tms)
    layers = _collections(collections)
    query = f"?collections={','.join(la.id for la in layers)}" if collections else ""
    url = f"{_base(request)}/tiles/{TILE_MATRIX_SET}/{{z}}/{{x}}/{{y}}{query}"
    return _json(_tilejson(request, layers, url, "landeco"))

