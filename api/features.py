"""OGC API – Features (Parts 1, 2 and 3) over the registry's layers, JSON and HTML.

Thin routes: parameters are checked by :mod:`layers.features` and :mod:`layers.cql2`,
the database builds every feature's GeoJSON and joins a page into one value, which is
streamed back as it came (gzip is the application's middleware), with a weak ``ETag``
of those bytes so a client that holds the page gets a 304 instead of the body.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from api.caching import not_modified, weak_etag
from api.deps import FDep, LayerId, get_engine, get_settings, wants_html
from api.pages import LangDep, render
from layers.collections import extents, queryables
from layers.cql2 import filter_sql
from layers.editing import current_etag
from layers.errors import BadRequestError, LandecoError
from layers.features import (
    CRS84,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SUPPORTED_CRS,
    FeatureNotFoundError,
    InvalidParameterError,
    ItemsQuery,
    feature_sql,
    page_sql,
    parse_bbox,
    parse_crs,
    parse_datetime,
    parse_properties,
    parse_sortby,
    property_columns,
)
from layers.history import parse_asof
from layers.model import Layer
from layers.registry import LAYERS, get_layer
from layers.store.database import fetch_pipelined
from layers.symbology import unit_label
from layers.values import integer

__all__ = ["CONFORMANCE", "UnknownParameterError", "router",
           "wants_html"]

router = APIRouter(tags=["features"])

GEOJSON = "application/geo+json"
CACHE_CONTROL = "no-cache"  # keep, but ask again: the ETag makes asking cheap
#: Bytes of features per streamed chunk.
CHUNK = 1024 * 1024

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting",
    "http://www.opengis.net/spec/ogcapi-features-6/1.0/conf/properties",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    # Part 4 (api/editing.py): clients such as QGIS and OWSLib enable editing on these
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]

#: Furthest a page may start (features skipped): more than any layer will hold.
MAX_OFFSET = 2**31 - 1

_ITEMS_PARAMS = {"f", "lang", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "filter",
                 "filter-lang", "filter-crs", "sortby", "properties", "skipGeometry", "asof"}


class UnknownParameterError(BadRequestError):
    """A query parameter the API does not define (OGC API – Features asks for a 400)."""

    code = "unknown_parameter"
    title = "Unknown parameter"

    def __init__(self, names: list[str], allowed: list[str]) -> None:
        super().__init__(f"unknown parameter(s) {', '.join(names)}; this path takes: "
                         f"{', '.join(sorted(allowed))}")
        self.names = names

    def extra(self) -> dict[str, object]:
        """The problem members a client acts on."""
        return {"parameters": self.names}


# --- negotiation and links ----------------------------------------------------------------------

def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _url(request: Request, path: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{_base(request)}{path}{'?' + query if query else ''}"


def _lang_params(lang: str) -> dict[str, str]:
    return {"lang": "en"} if lang == "en" else {}


def _check_params(request: Request, allowed: set[str]) -> None:
    unknown = [k for k in request.query_params if k not in allowed]
    if unknown:
        raise UnknownParameterError(unknown, sorted(allowed))


def _etag(*parts: object) -> str:
    return weak_etag("|".join(map(str, parts)).encode())


def _json(request: Request, body: dict, etag: str | None = None,
          media_type: str = "application/json", **headers: str) -> Response:
    """A JSON answer with caching headers (304 when the client holds it)."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    etag = etag or weak_etag(data)
    common = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept", **headers}
    if not_modified(request, etag):
        return Response(status_code=304, headers=common)
    return Response(data, media_type=media_type, headers=common)


class FeaturesResponse(StreamingResponse):
    """A FeatureCollection sent as its head, the database's features in chunks, and its tail."""

    media_type = GEOJSON

    def __init__(self, head: bytes, body: bytes, tail: bytes, headers: dict[str, str]) -> None:
        super().__init__(self._parts(head, body, tail), headers=headers, media_type=GEOJSON)

    @staticmethod
    async def _parts(head: bytes, body: bytes, tail: bytes) -> AsyncIterator[bytes]:
        # the head rides with the first chunk and the tail with the last: fewer sends
        view = memoryview(body)
        starts = range(0, len(body), CHUNK) or [0]
        for start in starts:
            chunk = bytes(view[start:start + CHUNK])
            if start == 0:
                chunk = head + chunk
            if start + CHUNK >= len(body):
                chunk += tail
            yield chunk


# --- documents -------------------------------------------------------------------------------

def _collection_doc(request: Request, layer: Layer, lang: str, extent: dict | None) -> dict:
    base, path = _base(request), f"/collections/{layer.id}"
    lp = _lang_params(lang)
    doc = {
        "id": layer.id,
        "title": layer.title(lang),
        "description": layer.description_en if lang == "en" else layer.description_zh,
        "x-title-zh": layer.zh,
        "x-title-en": layer.en,
        "itemType": "feature",
        "crs": [c.uri for c in SUPPORTED_CRS],
        "storageCrs": CRS84.uri,
        "links": [
            {"rel": "self", "type": "application/json", "title": "this document",
             "href": _url(request, path, f="json", **lp)},
            {"rel": "alternate", "type": "text/html", "title": "this document as HTML",
             "href": _url(request, path, f="html", **lp)},
            {"rel": "items", "type": GEOJSON, "title": "features",
             "href": f"{base}{path}/items?f=json"},
            {"rel": "items", "type": "text/html", "title": "features as HTML",
             "href": _url(request, f"{path}/items", f="html", **lp)},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
             "type": "application/schema+json", "title": "queryables",
             "href": f"{base}{path}/queryables"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "type": "application/json",
             "title": "vector tiles (Mapbox Vector Tile)", "href": f"{base}{path}/tiles"},
            {"rel": "describedby", "type": "application/schema+json",
             "title": "schema of the features (for GDAL and QGIS)", "href": f"{base}{path}/queryables"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/sortables",
             "type": "application/schema+json", "title": "sortables",
             "href": f"{base}{path}/queryables"},
        ],
    }
    if extent:
        doc["extent"] = extent
    return doc


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request, f: FDep = None, lang: LangDep = "zh") -> Response:
    """The OGC conformance classes landeco implements."""
    _check_params(request, {"f", "lang"})
    if wants_html(request, f):
        return render(request, "features/conformance.html", lang, classes=CONFORMANCE)
    return _json(request, {"conformsTo": CONFORMANCE})


@router.get("/collections", summary="Collections (layers)")
def collections(request: Request, f: FDep = None, lang: LangDep = "zh") -> Response:
    """Every layer, with its extent, titles and links."""
    _check_params(request, {"f", "lang"})
    layers = list(LAYERS.values())
    with get_engine(request).connect() as conn:
        found = extents(conn, layers)
    docs = [_collection_doc(request, layer, lang, found.get(layer.id)) for layer in layers]
    if wants_html(request, f):
        return render(request, "features/collections.html", lang, collections=docs)
    body = {
        "links": [
            {"rel": "self", "type": "application/json",
             "href": _url(request, "/collections", f="json", **_lang_params(lang))},
            {"rel": "alternate", "type": "text/html",
             "href": _url(request, "/collections", f="html", **_lang_params(lang))},
        ],
        "crs": [c.uri for c in SUPPORTED_CRS],
        "collections": docs,
    }
    return _json(request, body)


@router.get("/collections/{collection_id}", summary="One collection (layer)")
def collection(request: Request, collection_id: LayerId, f: FDep = None, lang: LangDep = "zh") -> Response:
    """A layer's description, extent and links."""
    layer = get_layer(collection_id)
    _check_params(request, {"f", "lang"})
    with get_engine(request).connect() as conn:
        extent = extents(conn, [layer]).get(layer.id)
    doc = _collection_doc(request, layer, lang, extent)
    if wants_html(request, f):
        return render(request, "features/collection.html", lang, c=doc, layer=layer,
                      queryables=queryables(layer, lang, ""))
    return _json(request, doc)


@router.get("/collections/{collection_id}/queryables", summary="Queryables (JSON Schema)")
def collection_queryables(request: Request, collection_id: LayerId, f: FDep = None,
                          lang: LangDep = "zh") -> Response:
    """The properties filters, equality parameters and ``sortby`` may use."""
    layer = get_layer(collection_id)
    _check_params(request, {"f", "lang"})
    doc = queryables(layer, lang, f"{_base(request)}/collections/{layer.id}/queryables")
    if wants_html(request, f):
        return render(request, "features/queryables.html", lang, layer=layer, schema=doc)
    return _json(request, doc, media_type="application/schema+json")


# --- items -----------------------------------------------------------------------------------

def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"{name}: {value!r} is neither true nor false")


def _items_query(request: Request, layer: Layer, limit: int, offset: int) -> ItemsQuery:
    qp = request.query_params
    cols = property_columns(layer)
    _check_params(request, _ITEMS_PARAMS | set(cols) | {"id"})
    for name in qp:
        if len(qp.getlist(name)) > 1:
            raise BadRequestError(f"{name} is given {len(qp.getlist(name))} times")
    q = ItemsQuery(
        layer=layer,
        limit=min(limit, MAX_LIMIT),
        offset=offset,
        bbox=parse_bbox(qp.get("bbox")),
        bbox_crs=parse_crs(qp.get("bbox-crs"), "bbox-crs"),
        crs=parse_crs(qp.get("crs"), "crs"),
        interval=parse_datetime(qp.get("datetime")),
        equals={k: v for k, v in qp.items() if k in cols or k == "id"},
        sortby=parse_sortby(qp.get("sortby"), layer),
        properties=parse_properties(qp.get("properties"), layer),
        skip_geometry=_flag(qp.get("skipGeometry"), "skipGeometry"),
        asof=parse_asof(qp.get("asof")),
    )
    if "id" in q.equals:
        q.equals.pop("id")
        raise BadRequestError("select one feature by its path: /collections/{id}/items/{featureId}")
    if qp.get("filter") is not None:
        q.filter_sql, q.filter_params = filter_sql(
            layer, qp["filter"], qp.get("filter-lang"), parse_crs(qp.get("filter-crs"), "filter-crs"))
    elif qp.get("filter-lang") or qp.get("filter-crs"):
        raise BadRequestError("filter-lang and filter-crs need a filter")
    return q


def _run(request: Request, sql: str, params: dict[str, Any], raw_text: bool = False) -> list[tuple]:
    timeout = get_settings(request).query_timeout_ms
    limit = f"SET LOCAL statement_timeout = {int(timeout)}"
    late = (f"the query ran longer than {timeout / 1000:g} s: narrow it "
            "(a smaller bbox, a filter, a lower limit)")
    return fetch_pipelined(get_engine(request), [limit], sql, params, text_as_bytes=raw_text,
                           timeout_message=late)


def _page_links(request: Request, path: str, q: ItemsQuery, matched: int, returned: int) -> list[dict]:
    kept = urlencode([(k, v) for k, v in request.query_params.multi_items()
                      if k not in ("offset", "limit", "f")])
    base = f"{_base(request)}{path}?{kept + '&' if kept else ''}limit={q.limit}&offset="

    def href(offset: int, fmt: str = "json") -> str:
        return f"{base}{offset}&f={fmt}"

    links = [{"rel": "self", "type": GEOJSON, "title": "this page", "href": href(q.offset)},
             {"rel": "alternate", "type": "text/html", "title": "this page as HTML",
              "href": href(q.offset, "html")},
             {"rel": "collection", "type": "application/json", "title": "the collection",
              "href": f"{_base(request)}/collections/{q.layer.id}"}]
    if q.offset + returned < matched:
        links.append({"rel": "next", "type": GEOJSON, "title": "next page",
                      "href": href(q.offset + q.limit)})
    if q.offset > 0:
        links.append({"rel": "prev", "type": GEOJSON, "title": "previous page",
                      "href": href(max(q.offset - q.limit, 0))})
    return links


def _param(name: str, description: str, schema: dict | None = None, style: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}, **(style or {})}


_ASOF = ("the layer as it was at this RFC 3339 time, e.g. 2026-11-30T08:00:00+08:00 (its history); "
         "datetime still compares the features' own dates")

#: The items parameters, documented here and parsed by hand: FastAPI's per-parameter
#: validation was a third of the time landeco spent on a request outside the database.
_ITEMS_OPENAPI = [
    _param("f", "json (default for API clients) or html (default for browsers)",
           {"type": "string", "enum": ["json", "geojson", "html"]}),
    _param("lang", "language of labels: zh (default) or en", {"type": "string", "enum": ["zh", "en"]}),
    _param("limit", f"features per page (default {DEFAULT_LIMIT}; at most {MAX_LIMIT} are returned)",
           {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET, "default": DEFAULT_LIMIT}),
    _param("offset", "features to skip (follow the next link)",
           {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
    _param("bbox", "minx,miny,maxx,maxy in bbox-crs (CRS84 by default)",
           {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
           {"style": "form", "explode": False}),
    _param("bbox-crs", "CRS of bbox (URI), e.g. http://www.opengis.net/def/crs/EPSG/0/4545"),
    _param("crs", "CRS of the answer: CRS84 (default), or EPSG 4326, 4490, 4545 as "
           "http://www.opengis.net/def/crs/EPSG/0/N", {"type": "string", "format": "uri"}),
    _param("datetime", "instant or interval (a/b, ../b, a/..), against the layer's own date fields"),
    _param("filter", "CQL2 text or JSON, e.g. area_mu > 100 AND village_code = '150623101201'"),
    _param("filter-lang", "cql2-text (default) or cql2-json",
           {"type": "string", "enum": ["cql2-text", "cql2-json"]}),
    _param("filter-crs", "CRS of geometries in the filter (CRS84 by default)"),
    _param("sortby", "properties to sort by, + ascending (default) or - descending: -area_mu,code"),
    _param("properties", "only these properties, comma-separated (empty: none)"),
    _param("skipGeometry", "true: features without geometry", {"type": "boolean", "default": False}),
    _param("asof", _ASOF, {"type": "string", "format": "date-time"}),
]


def _int(request: Request, name: str, default: int, minimum: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    return integer(value, name, minimum, MAX_OFFSET)


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise InvalidParameterError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


@router.get("/collections/{collection_id}/items", summary="Features of a collection",
            response_class=Response, openapi_extra={"parameters": _ITEMS_OPENAPI},
            responses={200: {"content": {GEOJSON: {}, "text/html": {}},
                             "description": "a GeoJSON FeatureCollection (or an HTML page)"}})
def items(request: Request, collection_id: LayerId) -> Response:
    """Features, paged, filtered by bbox, datetime, equality on a queryable, or CQL2.

    Any queryable may also be given as ``name=value`` for equality.
    """
    f = _choice(request, "f", ("json", "geojson", "html"))
    lang = _choice(request, "lang", ("zh", "en")) or "zh"
    layer = get_layer(collection_id)
    html = wants_html(request, f)
    try:
        q = _items_query(request, layer, _int(request, "limit", DEFAULT_LIMIT, 1),
                         _int(request, "offset", 0, 0))
    except LandecoError as exc:
        if not html:
            raise
        # staff typing a filter get the form back with what is wrong, not a JSON document
        return render(request, "features/items.html", lang, status_code=exc.status, layer=layer,
                      error=exc, error_extra=exc.extra(), features=[], heads=[], labels={}, matched=0,
                      q=ItemsQuery(layer=layer), links={}, sort_links={}, sort_key=None, geojson=None)
    if html:
        q.limit = min(q.limit, 1000)
    returned, matched, body = _run(request, *page_sql(q), raw_text=True)[0]
    links = _page_links(request, f"/collections/{layer.id}/items", q, matched, returned)
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept", "Content-Crs": f"<{q.crs.uri}>"}
    if html:
        features = json.loads(b"[" + body + b"]")
        return _items_page(request, layer, q, features, matched, links, lang, headers)
    head = (f'{{"type":"FeatureCollection","numberMatched":{matched},"numberReturned":{returned},'
            f'"links":{json.dumps(links, ensure_ascii=False)},"features":[').encode()
    # a weak validator: same head and same bytes of features (CRC-32 and length, fast on megabytes)
    headers["ETag"] = f'W/"{zlib.crc32(body, zlib.crc32(head)):08x}-{len(head) + len(body):x}"'
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return FeaturesResponse(head, body, b"]}", headers)


def _items_page(request: Request, layer: Layer, q: ItemsQuery, features: list[dict], matched: int,
                links: list[dict], lang: str, headers: dict[str, str]) -> HTMLResponse:
    cols = property_columns(layer)
    names = q.properties if q.properties is not None else list(cols)
    def head(c) -> str:
        if c.field is not None:
            return c.field.label(lang)
        m = c.measure
        return f"{m.en} ({unit_label(m.unit, 'en')})" if lang == "en" else f"{m.zh}（{m.unit}）"

    heads = [(n, head(cols[n])) for n in names]
    labels = {n: {c.value: (c.en if lang == "en" else c.zh) for c in cols[n].field.choices}
              for n in names if cols[n].field and cols[n].field.choices}
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("sortby", "offset", "f")]
    sort_key = (("-" if q.sortby[0][1] else "") + q.sortby[0][0]) if q.sortby else None
    sort_links = {n: f"?{urlencode([*kept, ('f', 'html'), ('sortby', ('-' if sort_key == n else '') + n)])}"
                  for n in names}
    geojson = {"type": "FeatureCollection", "features": features} if q.crs == CRS84 else None
    page = render(request, "features/items.html", lang, layer=layer, features=features, heads=heads,
                  labels=labels, matched=matched, q=q, links={ln["rel"]: ln["href"] for ln in links},
                  sort_links=sort_links, sort_key=sort_key,
                  geojson=json.dumps(geojson, ensure_ascii=False) if geojson else None)
    page.headers.update({k: v for k, v in headers.items() if k != "Content-Crs"})
    return page


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature",
            response_class=Response,
            responses={200: {"content": {GEOJSON: {}, "text/html": {}}, "description": "a GeoJSON Feature"}})
def item(
    request: Request,
    collection_id: LayerId,
    feature_id: Annotated[str, Path(description="the feature's id")],
    f: FDep = None,
    lang: LangDep = "zh",
    crs: Annotated[str | None, Query(description="CRS of the answer (as for items)")] = None,
    properties: Annotated[str | None, Query(description="only these properties")] = None,
    skip_geometry: Annotated[bool | None, Query(alias="skipGeometry")] = None,
    asof: Annotated[str | None, Query(description=_ASOF)] = None,
) -> Response:
    """One feature by id, with links to its collection (as it was at ``asof`` when given)."""
    layer = get_layer(collection_id)
    _check_params(request, {"f", "lang", "crs", "properties", "skipGeometry", "asof"})
    try:
        fid = int(feature_id)
    except ValueError:
        raise FeatureNotFoundError(f"{layer.id} has no feature {feature_id!r}") from None
    q = ItemsQuery(layer=layer, crs=parse_crs(crs), properties=parse_properties(properties, layer),
                   skip_geometry=bool(skip_geometry), asof=parse_asof(asof))
    sql, params = feature_sql(q, fid)
    found = _run(request, sql, params) if -2**63 <= fid < 2**63 else []
    if not found:
        when = f" at {asof}" if asof else ""
        raise FeatureNotFoundError(f"{layer.id} has no feature {feature_id!r}{when}")
    text = found[0][0]
    html = wants_html(request, f)
    etag = _etag(str(request.url.include_query_params(f="html" if html else "json")), text)
    if not html and crs is None and properties is None and not skip_geometry and asof is None:
        with get_engine(request).connect() as conn:  # the version's strong ETag: If-Match of an edit
            etag = current_etag(conn, layer, fid) or etag
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept",
               "Content-Crs": f"<{q.crs.uri}>"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    base = f"{_base(request)}/collections/{layer.id}"
    links = [{"rel": "self", "type": GEOJSON, "href": f"{base}/items/{fid}?f=json"},
             {"rel": "alternate", "type": "text/html", "href": f"{base}/items/{fid}?f=html"},
             {"rel": "collection", "type": "application/json", "href": base},
             {"rel": "version-history", "type": "application/json", "title": "versions of this feature",
              "href": f"{base}/items/{fid}/versions"}]
    if html:
        q.limit = 1
        return _items_page(request, layer, q, [json.loads(text)], 1, links, lang, headers)
    body = text[:-1] + ',"links":' + json.dumps(links) + "}"
    return Response(body.encode(), media_type=GEOJSON, headers=headers)
