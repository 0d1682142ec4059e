"""The past of features (routes only): versions, a version whole, restore, and undoing an upload.

The history itself is the database's (:mod:`layers.history`); writes need ``surveyor``
(api/permissions.py) and land in the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.audit import who
from api.deps import CollectionDep, get_engine, get_settings
from layers import history
from layers.history import FeatureVersionNotFoundError
from layers.model import Layer
from layers.values import feature_number

__all__ = ["router"]

router = APIRouter(tags=["history"])

GEOJSON = "application/geo+json"
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_CONFLICT = {409: {"description": "`restore_conflict`, `undo_conflict` (later changes: `feature_ids`, "
                                  "`count`; force to override) or `undo_refused`", "content": _PROBLEM}}

FeatureId = Annotated[str, Path(description="the feature's id")]
VersionNo = Annotated[str, Path(description="the version's number, 1 the oldest")]


def _fid(layer: Layer, feature_id: str) -> int:
    fid = feature_number(feature_id)
    if fid is None:
        raise FeatureVersionNotFoundError(f"{layer.id} has no feature {feature_id!r}")
    return fid


def _number(layer: Layer, fid: int, version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        number = 0
    if not 0 < number < 2**31:
        raise FeatureVersionNotFoundError(f"{layer.id} feature {fid} has no version {version!r}")
    return number


@router.get("/collections/{collection_id}/items/{feature_id}/versions", summary="Versions of a feature")
def feature_versions(request: Request, layer: CollectionDep, feature_id: FeatureId) -> dict[str, Any]:
    """Every version, oldest first, and what changed from the one before.

    When it was current, who made it (person, upload or edit), the attributes that differ,
    the size's change (亩 or m) and how far the boundary moved (m).
    """
    fid = _fid(layer, feature_id)
    with get_engine(request).connect() as conn:
        found = history.versions(conn, layer, fid)
    base = f"{str(request.base_url).rstrip('/')}/collections/{layer.id}/items/{fid}"
    for v in found:
        v["href"] = f"{base}/versions/{v['version']}"
    return {"layer": layer.id, "feature_id": fid, "exists": bool(found and found[-1]["current"]),
            "versions": found,
            "links": [{"rel": "self", "href": f"{base}/versions"},
                      {"rel": "latest-version", "type": GEOJSON, "href": base}]}


@router.get("/collections/{collection_id}/items/{feature_id}/versions/{version}",
            summary="One version of a feature, whole", response_class=Response,
            responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON Feature as it was"}})
def feature_version(request: Request, layer: CollectionDep, feature_id: FeatureId,
                    version: VersionNo) -> Response:
    """The feature as version ``version`` held it: attributes and geometry, with who made it."""
    fid = _fid(layer, feature_id)
    number = _number(layer, fid, version)
    with get_engine(request).connect() as conn:
        body = history.version(conn, layer, fid, number)
    return JSONResponse(body, media_type=GEOJSON)


@router.post("/collections/{collection_id}/items/{feature_id}/versions/{version}/restore",
             summary="Make a version the feature's current one", responses=_CONFLICT)
def restore_version(request: Request, layer: CollectionDep, feature_id: FeatureId,
                    version: VersionNo) -> dict[str, Any]:
    """Write the version back (re-creating a deleted feature with its id); recorded like any change."""
    fid = _fid(layer, feature_id)
    number = _number(layer, fid, version)
    done = history.restore_feature(get_engine(request), layer, fid, number, who(request))
    return done.as_dict()


@router.post("/uploads/{upload_id}/undo", summary="Undo a committed upload, in one transaction",
             responses=_CONFLICT)
def undo(request: Request, upload_id: Annotated[str, Path(description="the upload's id")],
         force: Annotated[bool, Query(description="undo even when later changes touched its features "
                                      "(they are put back to before the upload)")] = False) -> dict[str, Any]:
    """Inserted features removed, updated and deleted ones restored.

    Refused (409 ``undo_conflict``) when later changes touched them, unless ``force=true``.
    """
    return history.undo_upload(get_engine(request), upload_id, who(request), force=force,
                               statement_timeout_ms=get_settings(request).import_timeout_ms)
