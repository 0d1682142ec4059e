"""The landing document and the health check."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.problems import problem
from layers.database import engine_for, ping
from layers.migrate import current_revision, head_revision
from layers.registry import LAYERS

router = APIRouter()


@router.get("/", summary="Landing page")
def landing(request: Request) -> dict:
    """What landeco is and where to go next."""
    base = str(request.base_url).rstrip("/")
    return {
        "title": "landeco — 鄂托克前旗土地与生态管理",
        "description": "Land and ecology layers of the township in PostGIS: villages, "
        "coal-mining subsidence zones, grazing bans, caragana plots and land leases.",
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/"},
            {"rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0",
             "href": f"{base}/api"},
            {"rel": "service-doc", "type": "text/html", "href": f"{base}/api.html"},
            {"rel": "status", "type": "application/json", "href": f"{base}/health"},
        ],
        "layers": [{"id": layer.id, "title": layer.zh, "title_en": layer.en}
                   for layer in LAYERS.values()],
    }


@router.get("/health", summary="Database state")
def health(request: Request) -> JSONResponse:
    """Whether the database answers, its versions, and the schema revision."""
    url = request.app.state.database_url
    versions = ping(url)
    revision = current_revision(url)
    counts: dict[str, int] = {}
    if revision is not None:
        with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
            for layer_id in LAYERS:
                counts[layer_id] = conn.scalar(sa.text(f"SELECT count(*) FROM {layer_id}"))
    if revision != head_revision():
        return problem(503, "schema_not_migrated", "Schema not migrated",
                       "the database schema is behind the code: run `landeco db migrate`",
                       database=versions, schema_revision=revision, schema_head=head_revision())
    return JSONResponse({"status": "ok", "database": versions, "schema_revision": revision,
                         "features": counts})
