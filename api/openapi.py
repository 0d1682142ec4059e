"""The API description as OpenAPI 3.0, and its documentation page served from landeco itself.

OGC API – Features Part 1 names OpenAPI 3.0 (conformance class ``oas30``) and its clients
read 3.0; FastAPI writes 3.1, whose JSON Schema differs in a few spellings. Rewriting those
spellings is all it takes, so the document stays generated from the routes.

FastAPI only knows a route's 200 and its own 422; landeco answers more (400 for any invalid
input, 404, 409, 413, 415, 422 for uploads, 429, 503, all ``application/problem+json``) and
sends GeoJSON, HTML, tiles and files. :func:`describe_responses` writes those into the document
from the small tables below, by method and path, so the routes stay free of repeated
``responses=`` declarations and the contract test (tests/api/test_contract.py) holds the
server to them.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from api.permissions import PERMISSIONS
from api.security import add_nonce

__all__ = ["describe_responses", "install_openapi", "schema_to_30", "to_openapi_30"]

OPENAPI_VERSION = "3.0.3"
_VENDOR = "/static/vendor/swagger-ui"

# --- the contract tables ---------------------------------------------------------------------

PROBLEM_JSON = "application/problem+json"
GEOJSON = "application/geo+json"
HTML = "text/html"
MVT = "application/vnd.mapbox-vector-tile"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_REF = "#/components/schemas/"
_STRING = {"type": "string"}
_BINARY = {"type": "string", "format": "binary"}
#: What an export answers: one file per format (see gis.export.FORMATS).
_FILES = {GEOJSON: {"$ref": _REF + "FeatureCollection"}, "application/geopackage+sqlite3": _BINARY,
          "application/zip": _BINARY, "text/csv": _STRING, XLSX: _BINARY}

#: Shared schemas: the problem document (RFC 9457, with landeco's stable ``code``) and the
#: shapes a client relies on; loose on purpose (``additionalProperties``), strict on what is there.
SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "code", "detail"],
        "description": "RFC 9457 problem details; `code` is stable, `detail` is for people",
        "properties": {"type": {"type": "string", "format": "uri-reference"}, "title": _STRING,
                       "status": {"type": "integer", "minimum": 400, "maximum": 599},
                       "code": {"type": "string", "example": "invalid_parameter"}, "detail": _STRING},
        "additionalProperties": True},
    "Link": {"type": "object", "required": ["href"],
             "properties": {"href": _STRING, "rel": _STRING, "type": _STRING, "title": _STRING},
             "additionalProperties": True},
    "Feature": {"type": "object", "required": ["type"],
                "properties": {"type": {"type": "string", "enum": ["Feature"]},
                               "id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                               "geometry": {"type": "object", "nullable": True},
                               "properties": {"type": "object", "nullable": True},
                               "links": {"type": "array", "items": {"$ref": _REF + "Link"}}},
                "additionalProperties": True},
    "FeatureCollection": {"type": "object", "required": ["type", "features"],
                          "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                                         "features": {"type": "array", "items": {"$ref": _REF + "Feature"}},
                                         "numberMatched": {"type": "integer", "minimum": 0},
                                         "numberReturned": {"type": "integer", "minimum": 0},
                                         "links": {"type": "array", "items": {"$ref": _REF + "Link"}}},
                          "additionalProperties": True},
    "LandingPage": {"type": "object", "required": ["links"],
                    "properties": {"title": _STRING, "description": _STRING,
                                   "links": {"type": "array", "items": {"$ref": _REF + "Link"}}},
                    "additionalProperties": True},
    "Conformance": {"type": "object", "required": ["conformsTo"],
                    "properties": {"conformsTo": {"type": "array", "items": _STRING}}},
    "Collection": {"type": "object", "required": ["id", "links"],
                   "properties": {"id": _STRING, "title": _STRING,
                                  "links": {"type": "array", "items": {"$ref": _REF + "Link"}}},
                   "additionalProperties": True},
    "Collections": {"type": "object", "required": ["collections", "links"],
                    "properties": {"collections": {"type": "array", "items": {"$ref": _REF + "Collection"}},
                                   "links": {"type": "array", "items": {"$ref": _REF + "Link"}}},
                    "additionalProperties": True},
    "Upload": {"type": "object", "required": ["id", "state", "layer", "links"],
               "properties": {"id": _STRING, "layer": _STRING, "file": _STRING,
                              "state": {"type": "string", "enum": ["checking", "checked", "committing",
                                                                    "committed", "failed", "interrupted"]},
                              "percentage": {"type": "number", "minimum": 0, "maximum": 100},
                              "report": {"type": "object"},
                              "links": {"type": "object", "additionalProperties": _STRING}},
               "additionalProperties": True},
}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"$ref": _REF + name}}


#: Success answers by (method, path): status → media type → schema. Every operation not named
#: here keeps what FastAPI wrote (JSON).
SUCCESS: dict[tuple[str, str], dict[int, dict[str, Any]]] = {
    ("get", "/"): {200: {**_json("LandingPage"), HTML: _STRING}},
    ("get", "/conformance"): {200: {**_json("Conformance"), HTML: _STRING}},
    ("get", "/collections"): {200: {**_json("Collections"), HTML: _STRING}},
    ("get", "/collections/{collection_id}"): {200: {**_json("Collection"), HTML: _STRING}},
    ("get", "/collections/{collection_id}/queryables"): {200: {"application/schema+json": {"type": "object"},
                                                               HTML: _STRING}},
    ("get", "/collections/{collection_id}/items"): {200: {GEOJSON: {"$ref": _REF + "FeatureCollection"},
                                                          HTML: _STRING}},
    ("get", "/collections/{collection_id}/items/{feature_id}"): {200: {GEOJSON: {"$ref": _REF + "Feature"},
                                                                       HTML: _STRING}},
    ("get", "/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}"): {200: {MVT: _BINARY}},
    ("get", "/tiles/{tms}/{z}/{x}/{y}"): {200: {MVT: _BINARY}},
    ("post", "/uploads"): {201: _json("Upload")},
    ("get", "/uploads/{upload_id}"): {200: _json("Upload")},
    ("get", "/uploads/{upload_id}/preview"): {200: {GEOJSON: {"$ref": _REF + "FeatureCollection"}}},
    ("post", "/uploads/{upload_id}/commit"): {200: _json("Upload")},
    # editing (api/editing.py): the feature as written
    ("post", "/collections/{collection_id}/items"): {201: {GEOJSON: {"$ref": _REF + "Feature"}}},
    ("put", "/collections/{collection_id}/items/{feature_id}"): {200: {GEOJSON: {"$ref": _REF + "Feature"}}},
    ("patch", "/collections/{collection_id}/items/{feature_id}"): {
        200: {GEOJSON: {"$ref": _REF + "Feature"}}},
    ("post", "/query"): {200: _FILES},
    ("get", "/query"): {200: {HTML: _STRING}},
    ("get", "/query/export"): {200: _FILES},
    ("get", "/export/{layer_id}"): {200: _FILES},
    ("get", "/stats/{layer_id}"): {200: {"application/json": {"type": "object"}, "text/csv": _STRING,
                                         XLSX: _BINARY}},
    ("get", "/conflicts/{check_id}"): {200: {GEOJSON: {"$ref": _REF + "FeatureCollection"}, XLSX: _BINARY}},
    ("get", "/maps/{layer_id}.{fmt}"): {200: {"image/png": _BINARY, "application/pdf": _BINARY}},
    ("get", "/maps.{fmt}"): {200: {"image/png": _BINARY, "application/pdf": _BINARY}},
    ("get", "/maps/villages/{code}.{fmt}"): {200: {"image/png": _BINARY, "application/pdf": _BINARY}},
    ("get", "/audit"): {200: {"application/json": {"type": "object"}, HTML: _STRING, "text/csv": _STRING}},
}

#: Pages left out of the routes' schema (``include_in_schema=False``) whose path is an API
#: operation's too: a client must learn that the path answers GET (no 405 there).
PAGES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/uploads"): {
        "tags": ["uploads"], "summary": "The upload page (HTML): the form, and the report of upload `id`",
        "operationId": "uploads_page",
        "parameters": [
            {"name": "lang", "in": "query", "required": False, "description": "zh (default) or en",
             "schema": {"type": "string", "enum": ["zh", "en"], "default": "zh"}},
            {"name": "id", "in": "query", "required": False, "description": "an upload's id",
             "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the page", "content": {HTML: {"schema": _STRING}}}}},
}

#: Response headers a client may act on, by status.
_RETRY_AFTER = {"Retry-After": {"required": True, "description": "seconds to wait before asking again",
                                "schema": {"type": "integer", "minimum": 0}}}
_HEADERS: dict[tuple[str, str, int], dict[str, Any]] = {
    ("post", "/uploads", 201): {"Location": {"required": True, "description": "the upload's address",
                                             "schema": {"type": "string"}}},
    ("post", "/jobs/export/{layer_id}", 202): {"Location": {"required": True, "schema": {"type": "string"},
                                                            "description": "the job's address"}},
    ("post", "/collections/{collection_id}/items", 201): {
        "Location": {"required": True, "description": "the new feature's address",
                     "schema": {"type": "string"}},
        "ETag": {"required": True, "description": "its ETag (If-Match of a later edit)",
                 "schema": {"type": "string"}}},
    ("put", "/collections/{collection_id}/items/{feature_id}", 200): {
        "ETag": {"required": True, "description": "the feature's new ETag", "schema": {"type": "string"}}},
    ("patch", "/collections/{collection_id}/items/{feature_id}", 200): {
        "ETag": {"required": True, "description": "the feature's new ETag", "schema": {"type": "string"}}},
}

#: Why each error status is given (every one is a Problem).
ERRORS: dict[int, str] = {
    400: "invalid input: a parameter, the body or an option is wrong (`code` says which)",
    401: "`authentication_required`: the route needs an account (a session or `Authorization: Bearer "
         "<token>`), or the token sent is unknown, expired or revoked",
    403: "`forbidden`: the account lacks the role the route needs (`required_role`); or `csrf_failed`",
    404: "no such thing: the layer, feature, village, upload, check or tile asked for",
    412: "`precondition_failed`: the feature changed since its ETag was read (`current_etag`): GET it again",
    409: "the upload cannot be committed: it has errors, or is committed or being committed; the job "
         "has no file (not finished, failed or pruned); a feature other layers refer to cannot be deleted "
         "(`feature_in_use`)",
    413: "the file is larger than the upload limit",
    415: "the file's format is not one landeco reads",
    422: "the file is read but its content cannot be imported; an edit refused by the same checks "
         "(`edit_refused`, with its `problems`)",
    428: "`precondition_required`: changing a feature needs `If-Match` with its ETag",
    429: "too many requests: wait `Retry-After` seconds",
    503: "the database is unavailable or the query took too long: retry after `Retry-After` seconds",
}

#: Operations that never reach the database (no 503).
_NO_DATABASE = {("get", "/conformance"), ("get", "/collections/{collection_id}/queryables"),
                ("get", "/conflicts")}
#: Operations that look up layers or villages named outside the path (404 without a path id).
_FINDS = {("post", "/query"), ("get", "/query"), ("get", "/query/export"),
          ("get", "/uploads")}
#: Operations limited per client (query, export, uploads, tiles below z10).
RATE_LIMITED = {("post", "/query"), ("get", "/query"), ("get", "/query/export"),
                ("get", "/export/{layer_id}"), ("post", "/uploads"), ("post", "/uploads/{upload_id}/commit"),
                ("get", "/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}"),
                ("get", "/tiles/{tms}/{z}/{x}/{y}"), ("post", "/jobs/export/{layer_id}")}
#: Further errors of one operation.
_MORE_ERRORS: dict[tuple[str, str], set[int]] = {
    ("post", "/uploads"): {413, 415, 422},
    ("post", "/uploads/{upload_id}/commit"): {409},
    ("get", "/jobs/{job_id}/result"): {409},
    ("post", "/collections/{collection_id}/items"): {413, 415, 422},
    ("put", "/collections/{collection_id}/items/{feature_id}"): {412, 413, 415, 422, 428},
    ("patch", "/collections/{collection_id}/items/{feature_id}"): {412, 413, 415, 422, 428},
    ("delete", "/collections/{collection_id}/items/{feature_id}"): {409, 412, 428},
}
#: Operations that answer a browser's (HTML) request's errors as an HTML page, by status.
_HTML_ERRORS: dict[tuple[str, str], set[int]] = {
    ("get", "/collections/{collection_id}/items"): {400},
    ("get", "/query"): {400, 404},
}
#: Operations that answer 304 to a current If-None-Match (ETag sent with the 200).
_ETAG = {("get", "/conformance"), ("get", "/collections"), ("get", "/collections/{collection_id}"),
         ("get", "/collections/{collection_id}/queryables"), ("get", "/collections/{collection_id}/items"),
         ("get", "/collections/{collection_id}/items/{feature_id}")}
#: Path parameter values that exist in the demo township, for clients and for the contract test.
EXAMPLES: dict[str, str] = {
    "collection_id": "caragana_plots", "layer_id": "caragana_plots", "feature_id": "1",
    "tms": "WebMercatorQuad", "z": "12", "x": "3288", "y": "1561", "check_id": "leases_on_subsidence",
    "code": "150623101201", "fmt": "png", "job_id": "1",
}


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def schema_to_30(schema: Any) -> Any:
    """One JSON Schema (2020-12, as in OpenAPI 3.1) rewritten as an OpenAPI 3.0 schema object."""
    if isinstance(schema, list):
        return [schema_to_30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: schema_to_30(v) if k not in ("example", "default", "enum") else v for k, v in schema.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and any(_is_null(o) for o in options):
            rest = [o for o in options if not _is_null(o)]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out = {**rest[0], **out}
            elif len(rest) == 1:
                out["allOf"] = rest
            elif rest:
                out[key] = rest
            out["nullable"] = True
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) == 1:
            out["type"] = kinds[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": k} for k in kinds]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "examples" in out:
        examples = out.pop("examples")
        if isinstance(examples, list) and examples:
            out.setdefault("example", examples[0])
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out[bound], bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    if "contentMediaType" in out:
        out.pop("contentMediaType")
        out.setdefault("format", "binary")
    out.pop("contentEncoding", None)
    out.pop("$schema", None)
    return out


def _walk(node: Any) -> Any:
    """Rewrite every schema object found under ``schema`` keys and in components."""
    if isinstance(node, list):
        return [_walk(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: schema_to_30(v) if k == "schema" else _walk(v) for k, v in node.items()}


def to_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """A FastAPI (OpenAPI 3.1) document as OpenAPI 3.0."""
    out = _walk({k: v for k, v in document.items() if k not in ("webhooks", "jsonSchemaDialect")})
    schemas = out.get("components", {}).get("schemas")
    if schemas:
        out["components"]["schemas"] = {name: schema_to_30(s) for name, s in schemas.items()}
    out["openapi"] = OPENAPI_VERSION
    return out


def _error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    key = (method, path)
    statuses = set(_MORE_ERRORS.get(key, ()))
    if operation.get("parameters") or operation.get("requestBody") or "{" in path:
        statuses.add(400)
    if "{" in path or key in _FINDS:
        statuses.add(404)
    if key in RATE_LIMITED:
        statuses.add(429)
    if key not in _NO_DATABASE or PERMISSIONS.get((method.upper(), path)) != "public":
        statuses.add(503)  # also where a token or a session must be checked in the database
    statuses.add(401)  # a dead bearer token is refused on every route
    if PERMISSIONS.get((method.upper(), path), "admin") != "public":
        statuses.add(403)
    return statuses


def _error_response(status: int, html: bool) -> dict[str, Any]:
    content: dict[str, Any] = {PROBLEM_JSON: {"schema": {"$ref": _REF + "Problem"}}}
    if html:
        content[HTML] = {"schema": _STRING}
    response: dict[str, Any] = {"description": ERRORS[status], "content": content}
    if status in (429, 503):
        response["headers"] = dict(_RETRY_AFTER)
    return response


def describe_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Write every status and media type each operation answers into ``document`` (in place).

    FastAPI's 422 ``HTTPValidationError`` goes: landeco answers invalid requests 400 problem+json.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(SCHEMAS)
    # API tokens (landeco users token NAME); pages use a session cookie from /login
    document["components"].setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer", "description": "an API token: `landeco users token NAME`"}
    document.setdefault("security", [{}, {"bearer": []}])
    for (method, path), page in PAGES.items():
        document.setdefault("paths", {}).setdefault(path, {}).setdefault(method, copy.deepcopy(page))
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "delete", "patch"):
                continue
            key = (method, path)
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, content in SUCCESS.get(key, {}).items():
                answer = responses.setdefault(str(status), {"description": "success"})
                answer["content"] = {media: {"schema": schema} for media, schema in content.items()}
            if key in _ETAG:
                responses.setdefault("304", {"description": "the client's copy (If-None-Match) is current"})
            for (m, p, status), headers in _HEADERS.items():
                if (m, p) == key:
                    responses[str(status)].setdefault("headers", {}).update(headers)
            html_errors = _HTML_ERRORS.get(key, set())
            for status in sorted(_error_statuses(method, path, operation)):
                responses[str(status)] = _error_response(status, status in html_errors)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in EXAMPLES:
                    parameter.setdefault("example", EXAMPLES[parameter["name"]])
    return document


def install_openapi(app: FastAPI, docs_path: str = "/api.html") -> None:
    """Serve the 3.0 document at ``app.openapi_url`` and Swagger UI from /static/vendor."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_responses(to_openapi_30(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(docs_path, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=app.openapi_url or "/api", title=f"{app.title} API",
                                   swagger_js_url=f"{_VENDOR}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{_VENDOR}/swagger-ui.css",
                                   swagger_favicon_url=f"{_VENDOR}/favicon-32x32.png",
                                   # no badge fetched from validator.swagger.io
                                   swagger_ui_parameters={"validatorUrl": None})
        # the page's inline script starts Swagger UI: it runs with this request's CSP nonce
        nonce = getattr(request.state, "csp_nonce", "")
        return HTMLResponse(add_nonce(bytes(page.body).decode(), nonce))
