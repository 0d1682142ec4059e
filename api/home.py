"""The landing page (OGC API landing document, or the staff home page in a browser) and /health."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import FDep, wants_html
from api.pages import LangDep, render
from api.problems import problem
from layers.errors import DatabaseUnavailableError
from layers.registry import LAYERS
from layers.store.database import engine_for, ping
from layers.store.migrate import current_revision, head_revision

router = APIRouter()


@router.get("/", summary="Landing page", response_class=Response,
            responses={200: {"content": {"application/json": {}, "text/html": {}},
                             "description": "the OGC API landing page (JSON) or the staff home page"}})
def landing(request: Request, f: FDep = None, lang: LangDep = "zh") -> Response:
    """What landeco is and where to go next: JSON for API clients, the staff home page for browsers."""
    base = str(request.base_url).rstrip("/")
    if wants_html(request, f):
        from datetime import date

        from layers.periods import last_half_year

        return render(request, "home.html", lang, layers=list(LAYERS.values()),
                      report_period=last_half_year(date.today()))
    en = lang == "en"
    return JSONResponse({
        "title": "landeco — land and ecology of an Otog Front Banner township" if en
        else "landeco — 鄂托克前旗土地与生态管理",
        "description": "Land and ecology layers of the township in PostGIS: "
        + ", ".join(layer.en.lower() if i else layer.en for i, layer in enumerate(LAYERS.values())) + ".",
        "links": [
            {"rel": "self", "type": "application/json", "title": "this document", "href": f"{base}/?f=json"},
            {"rel": "alternate", "type": "text/html", "title": "the home page", "href": f"{base}/?f=html"},
            {"rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0",
             "title": "the API definition", "href": f"{base}/api"},
            {"rel": "service-doc", "type": "text/html", "title": "the API documentation",
             "href": f"{base}/api.html"},
            {"rel": "conformance", "type": "application/json", "title": "conformance classes",
             "href": f"{base}/conformance"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/conformance", "type": "application/json",
             "title": "conformance classes", "href": f"{base}/conformance"},
            {"rel": "data", "type": "application/json", "title": "collections (layers)",
             "href": f"{base}/collections"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/data", "type": "application/json",
             "title": "collections (layers)", "href": f"{base}/collections"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector", "type": "application/json",
             "title": "vector tiles of every layer together", "href": f"{base}/tiles"},
            {"rel": "status", "type": "application/json", "title": "health", "href": f"{base}/health"},
        ],
        "layers": [{"id": layer.id, "title": layer.zh, "title_en": layer.en}
                   for layer in LAYERS.values()],
    })


#: Seconds a client should wait before asking again when the database is away.
RETRY_AFTER_S = 5


@router.get("/health", summary="Database state",
            responses={503: {"content": {"application/problem+json": {}},
                             "description": "the database is away (with Retry-After) or not migrated"}})
def health(request: Request) -> JSONResponse:
    """Whether the database answers, the schema revision, and features per layer.

    No server versions: anyone may call this, and versions only help an attacker
    (``landeco db status`` shows them to the operator).
    """
    url = request.app.state.database_url
    try:
        ping(url)
        revision = current_revision(url)
        counts: dict[str, int] = {}
        if revision is not None:
            with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
                for layer_id in LAYERS:
                    counts[layer_id] = conn.scalar(sa.text(f"SELECT count(*) FROM {layer_id}"))
    except (DatabaseUnavailableError, sa.exc.OperationalError, sa.exc.InterfaceError):
        answer = problem(503, "database_unavailable", "Database unavailable",
                         "the database cannot be reached; try again shortly")
        answer.headers["Retry-After"] = str(RETRY_AFTER_S)
        return answer
    if revision != head_revision():
        return problem(503, "schema_not_migrated", "Schema not migrated",
                       "the database schema is behind the code: run `landeco db migrate`",
                       schema_revision=revision, schema_head=head_revision())
    return JSONResponse({"status": "ok", "schema_revision": revision, "features": counts})
