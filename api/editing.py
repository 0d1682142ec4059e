"""Editing features (routes only): OGC API – Features Part 4, and the surveyors' edit page.

``POST /collections/{id}/items`` creates (201 with ``Location``), ``PUT`` replaces,
``PATCH`` merges (RFC 7396) and ``DELETE`` removes one feature; the last three need
``If-Match`` with the feature's ETag (428 without, 412 when stale). The checks are an
upload's (:mod:`layers.editing`); writes need ``surveyor`` (api/permissions.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.audit import who
from api.deps import CollectionDep, LayerDep, get_engine
from api.pages import LangDep, render
from layers import editing
from layers.errors import LandecoError
from layers.features import FeatureNotFoundError, parse_crs
from layers.model import Layer
from layers.values import feature_number

__all__ = ["router"]

router = APIRouter(tags=["editing"])

GEOJSON = "application/geo+json"
_FEATURE = {"schema": {"$ref": "#/components/schemas/Feature"}}
_BODY = {"requestBody": {"required": True, "description": "a GeoJSON Feature (lon/lat, or in Content-Crs)",
                         "content": {GEOJSON: _FEATURE, "application/json": _FEATURE}}}
_PATCH = {"requestBody": {"required": True, "description": "a JSON merge patch (RFC 7396) of the feature: "
                          "{\"properties\": {\"method\": \"restoration\", \"note\": null}} ",
                          "content": {"application/merge-patch+json": _FEATURE,
                                      "application/json": _FEATURE}}}
_IF_MATCH = ("Send `If-Match` with the feature's ETag (from its GET): 428 `precondition_required` "
             "without it, 412 `precondition_failed` when someone changed the feature since.")

FeatureId = Annotated[str, Path(description="the feature's id")]


class UnsupportedMediaTypeError(LandecoError):
    """The body is not JSON (GeoJSON, merge patch)."""

    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


def _fid(layer: Layer, feature_id: str) -> int:
    fid = feature_number(feature_id)
    if fid is None:
        raise FeatureNotFoundError(f"{layer.id} has no feature {feature_id!r}")
    return fid


async def _body(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and "json" not in kind and kind != "text/plain":
        raise UnsupportedMediaTypeError(f"the body is {kind}: send application/geo+json "
                                        "(or application/merge-patch+json for PATCH)")
    return await request.body()


def _answer(request: Request, done: editing.Edited, status: int = 200) -> Response:
    base = f"{str(request.base_url).rstrip('/')}/collections/{done.layer}/items/{done.feature_id}"
    body = {**(done.feature or {}),
            "links": [{"rel": "self", "type": GEOJSON, "href": f"{base}?f=json"},
                      {"rel": "version-history", "type": "application/json", "href": f"{base}/versions"}]}
    if done.warnings:
        body["warnings"] = done.warnings
    headers = {"ETag": done.etag or "", "Cache-Control": "no-cache"}
    if status == 201:
        headers["Location"] = base
    return Response(json.dumps(body, ensure_ascii=False).encode(), status_code=status, media_type=GEOJSON,
                    headers=headers)


@router.post("/collections/{collection_id}/items", summary="Add a feature (OGC API – Features Part 4)",
             status_code=201, response_class=Response, openapi_extra=_BODY)
async def create_item(request: Request, layer: CollectionDep) -> Response:
    """Check the feature as an upload's (domains, village, geometry, overlaps) and add it.

    201 with ``Location`` and ``ETag``; refused: 422 ``edit_refused`` with the ``problems``.
    """
    crs = parse_crs(request.headers.get("content-crs"), "Content-Crs")
    feature = editing.parse_feature(layer, await _body(request))
    done = await run_in_threadpool(editing.create_feature, get_engine(request), layer, feature,
                                   who(request), crs)
    return _answer(request, done, 201)


@router.put("/collections/{collection_id}/items/{feature_id}", summary="Replace a feature (Part 4)",
            response_class=Response, openapi_extra=_BODY, description=_IF_MATCH)
async def replace_item(request: Request, layer: CollectionDep, feature_id: FeatureId) -> Response:
    """The feature becomes the body, checked as an upload's; its ``extra`` is kept unless given."""
    fid = _fid(layer, feature_id)
    crs = parse_crs(request.headers.get("content-crs"), "Content-Crs")
    feature = editing.parse_feature(layer, await _body(request))
    done = await run_in_threadpool(editing.replace_feature, get_engine(request), layer, fid, feature,
                                   request.headers.get("if-match"), who(request), crs)
    return _answer(request, done)


@router.patch("/collections/{collection_id}/items/{feature_id}", summary="Change part of a feature (Part 4)",
              response_class=Response, openapi_extra=_PATCH, description=_IF_MATCH)
async def patch_item(request: Request, layer: CollectionDep, feature_id: FeatureId) -> Response:
    """A JSON merge patch: the properties given change (``null`` empties one), the rest stays."""
    fid = _fid(layer, feature_id)
    crs = parse_crs(request.headers.get("content-crs"), "Content-Crs")
    patch = editing.parse_feature(layer, await _body(request), partial=True)
    done = await run_in_threadpool(editing.patch_feature, get_engine(request), layer, fid, patch,
                                   request.headers.get("if-match"), who(request), crs)
    return _answer(request, done)


@router.delete("/collections/{collection_id}/items/{feature_id}", summary="Delete a feature (Part 4)",
               status_code=204, response_class=Response, description=_IF_MATCH)
async def delete_item(request: Request, layer: CollectionDep, feature_id: FeatureId) -> Response:
    """The feature goes; its versions stay (``/versions``, and a restore brings it back)."""
    fid = _fid(layer, feature_id)
    await run_in_threadpool(editing.delete_feature, get_engine(request), layer, fid,
                            request.headers.get("if-match"), who(request))
    return Response(status_code=204)


# -- the page ---------------------------------------------------------------------------------

def _form_fields(layer: Layer, lang: str) -> list[dict[str, Any]]:
    """The layer's fields as the page's form draws them: label, type, unit, choices, bounds."""
    return [{"name": f.name, "label": f.label(lang), "type": f.type, "unit": f.unit, "required": f.required,
             "minimum": f.minimum, "maximum": f.maximum,
             "choices": [{"value": c.value, "label": c.en if lang == "en" else c.zh} for c in f.choices]}
            for f in layer.all_fields]


def _page(request: Request, layer: Layer, lang: str, fid: int | None) -> Response:
    if fid is not None:
        with get_engine(request).connect() as conn:
            if editing.current_etag(conn, layer, fid) is None:
                raise FeatureNotFoundError(f"{layer.id} has no feature {fid}")
    base = str(request.base_url).rstrip("/")
    return render(request, "editing/edit.html", lang, layer=layer, feature_id=fid,
                  fields=_form_fields(layer, lang), page_data={
                      "layer": layer.id, "feature_id": fid, "geometry_type": layer.geometry_type,
                      "item_url": f"{base}/collections/{layer.id}/items/{fid}" if fid else None,
                      "items_url": f"{base}/collections/{layer.id}/items",
                      "frames_url": f"{base}/collections/villages/items?limit=1000&f=json",
                      "versions_url": f"{base}/collections/{layer.id}/items/{fid}/versions" if fid else None,
                      "read_only": [m.name for m in layer.stored_measures],
                      "problem_zh": editing.PROBLEM_ZH, "lang": lang})


@router.get("/maps/{layer_id}/features/{feature_id}/edit", include_in_schema=False)
def edit_page(request: Request, layer: LayerDep, feature_id: FeatureId, lang: LangDep = "zh") -> Response:
    """The edit page: the feature's fields as a form, its geometry on a map to reshape; save is a PUT."""
    return _page(request, layer, lang, _fid(layer, feature_id))


@router.get("/maps/{layer_id}/new-feature", include_in_schema=False)
def new_page(request: Request, layer: LayerDep, lang: LangDep = "zh") -> Response:
    """The same page for a new feature: draw it, fill the form; save is a POST."""
    return _page(request, layer, lang, None)
