"""The API description as OpenAPI 3.0, and its documentation page served from landeco itself.

OGC API – Features Part 1 names OpenAPI 3.0 (conformance class ``oas30``) and its clients
read 3.0; FastAPI writes 3.1, whose JSON Schema differs in a few spellings. Rewriting those
spellings is all it takes, so the document stays generated from the routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from api.security import add_nonce

__all__ = ["install_openapi", "schema_to_30", "to_openapi_30"]

OPENAPI_VERSION = "3.0.3"
_VENDOR = "/static/vendor/swagger-ui"


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


def install_openapi(app: FastAPI, docs_path: str = "/api.html") -> None:
    """Serve the 3.0 document at ``app.openapi_url`` and Swagger UI from /static/vendor."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = to_openapi_30(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes))
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
