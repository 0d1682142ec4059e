"""Who may call what: one table of every route's need, enforced by one middleware.

Every route is listed in :data:`PERMISSIONS` by method and path template; a route missing
from it is refused (and tests/api/test_permissions.py fails). The middleware runs before a
route reads its body: it finds the route, resolves the principal from the bearer token or
the session cookie (one indexed SELECT, none for an anonymous request), puts it on
``request.state.principal`` (``None`` when anonymous) and refuses:

- 401 ``authentication_required`` when the route needs an account and there is none (an
  unknown, expired or revoked bearer token is refused on every route); browsers asking
  for a page are sent to ``/login?next=…`` instead;
- 403 ``forbidden`` when the account lacks the role;
- 403 ``csrf_failed`` for a write of a signed-in browser that is not a landeco form (forms
  carry their token in a field, checked by :func:`api.auth.csrf_form`) and lacks the
  ``X-CSRF-Token`` header.

Levels: ``public`` (always open), ``public-read`` (open when ``LANDECO_PUBLIC_READ``, else
``viewer``), ``exports`` (``planner`` when ``LANDECO_PLANNER_ONLY_EXPORTS``, else as
``public-read``), ``metrics`` (open when ``LANDECO_PUBLIC_METRICS``, else ``admin``), and
the roles ``viewer``, ``surveyor``, ``planner``, ``admin`` (admin implies every role; any
role implies ``viewer``).
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

import anyio
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import database_problem, problem
from layers import accounts
from layers.settings import Settings

__all__ = ["FORMS", "LEVELS", "PERMISSIONS", "SESSION_COOKIE", "Gatekeeper", "required_role"]

#: The cookie of a signed-in browser (its value is the session's secret).
SESSION_COOKIE = "landeco_session"
LEVELS = ("public", "public-read", "exports", "metrics", "viewer", "surveyor", "planner", "admin")

_READ = "public-read"
#: (method, path template) → level. The README's roles table is this table (a test compares).
PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", "/"): _READ,
    ("GET", "/health"): "public",
    ("GET", "/api"): "public",
    ("GET", "/api.html"): "public",
    ("GET", "/metrics"): "metrics",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "public",
    ("GET", "/conformance"): _READ,
    ("GET", "/collections"): _READ,
    ("GET", "/collections/{collection_id}"): _READ,
    ("GET", "/collections/{collection_id}/queryables"): _READ,
    ("GET", "/collections/{collection_id}/items"): _READ,
    ("GET", "/collections/{collection_id}/items/{feature_id}"): _READ,
    ("GET", "/collections/{collection_id}/tiles"): _READ,
    ("GET", "/collections/{collection_id}/tiles/{tms}"): _READ,
    ("GET", "/collections/{collection_id}/tiles/{tms}/tilejson.json"): _READ,
    ("GET", "/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}"): _READ,
    ("GET", "/tiles"): _READ,
    ("GET", "/tiles/{tms}"): _READ,
    ("GET", "/tiles/{tms}/tilejson.json"): _READ,
    ("GET", "/tiles/{tms}/{z}/{x}/{y}"): _READ,
    ("GET", "/rasters/{raster_id}/tiles/{tms}/{z}/{x}/{y}.png"): _READ,
    ("GET", "/rasters/{raster_id}/legend"): _READ,
    ("GET", "/maps"): _READ,
    ("GET", "/maps/villages/{code}"): _READ,
    ("GET", "/maps/{layer_id}"): _READ,
    ("GET", "/maps/{layer_id}.{fmt}"): _READ,
    ("GET", "/maps/{layer_id}/features/{feature_id}"): _READ,
    ("GET", "/maps.{fmt}"): _READ,
    ("GET", "/maps/villages/{code}.{fmt}"): _READ,
    ("GET", "/maps/search"): _READ,
    ("GET", "/maps/measure"): _READ,
    ("GET", "/query"): "exports",
    ("POST", "/query"): "exports",
    ("GET", "/query/export"): "exports",
    ("GET", "/export/{layer_id}"): "exports",
    ("GET", "/stats/{layer_id}"): "exports",
    ("GET", "/reports/{period}"): "exports",
    ("GET", "/livestock"): "exports",
    ("POST", "/livestock"): "surveyor",
    ("GET", "/conflicts"): "exports",
    ("GET", "/conflicts/{check_id}"): "exports",
    ("GET", "/uploads"): "surveyor",
    ("GET", "/uploads/new"): "surveyor",
    ("GET", "/uploads/templates/{layer_id}.{fmt}"): "surveyor",
    ("POST", "/uploads"): "surveyor",
    ("POST", "/uploads/form"): "surveyor",
    ("GET", "/uploads/{upload_id}"): "surveyor",
    ("GET", "/uploads/{upload_id}/preview"): "surveyor",
    ("GET", "/uploads/{upload_id}/problems.xlsx"): "surveyor",
    ("POST", "/uploads/{upload_id}/commit"): "surveyor",
    ("POST", "/uploads/{upload_id}/commit/form"): "surveyor",
    ("GET", "/audit"): "admin",
    # jobs: each is its owner's (others get 404), an administrator sees all
    ("POST", "/jobs/export/{layer_id}"): "exports",
    ("GET", "/jobs"): _READ,
    ("GET", "/jobs/{job_id}"): _READ,
    ("POST", "/jobs/{job_id}/cancel"): _READ,
    ("GET", "/jobs/{job_id}/result"): _READ,
    # history (api/history.py): versions name who changed what, so an account reads them;
    # putting things back is a surveyor's
    ("GET", "/collections/{collection_id}/items/{feature_id}/versions"): "viewer",
    ("GET", "/collections/{collection_id}/items/{feature_id}/versions/{version}"): "viewer",
    ("POST", "/collections/{collection_id}/items/{feature_id}/versions/{version}/restore"): "surveyor",
    ("POST", "/uploads/{upload_id}/undo"): "surveyor",
    # editing (api/editing.py): OGC API – Features Part 4 and the edit page
    ("POST", "/collections/{collection_id}/items"): "surveyor",
    ("PUT", "/collections/{collection_id}/items/{feature_id}"): "surveyor",
    ("PATCH", "/collections/{collection_id}/items/{feature_id}"): "surveyor",
    ("DELETE", "/collections/{collection_id}/items/{feature_id}"): "surveyor",
    ("GET", "/maps/{layer_id}/features/{feature_id}/edit"): "surveyor",
    ("GET", "/maps/{layer_id}/new-feature"): "surveyor",
    # rasters (api/rasters.py): read like the layers, added by a surveyor
    ("GET", "/rasters"): _READ,
    ("GET", "/rasters/{raster_id}"): _READ,
    ("GET", "/rasters/new"): "surveyor",
    ("POST", "/rasters"): "surveyor",
    ("POST", "/rasters/form"): "surveyor",
    ("DELETE", "/rasters/{raster_id}"): "admin",
    # zonal statistics (api/zonal.py): computing them is a surveyor's job; the series are read as features
    ("POST", "/rasters/{raster_id}/zonal"): "surveyor",
    ("GET", "/collections/{collection_id}/items/{feature_id}/zonal"): _READ,
    # change patches (api/change_patches.py): a step needs an account, and the step's role inside
    # (verified, false_alarm: surveyor; rectified: surveyor or planner); detection is a surveyor's
    ("GET", "/change_patches"): _READ,
    ("POST", "/change_patches/detect"): "surveyor",
    ("POST", "/collections/change_patches/items/{feature_id}/status"): "viewer",
    ("GET", "/collections/change_patches/items/{feature_id}/steps"): "viewer",
    ("POST", "/change_patches/{feature_id}/status/form"): "viewer",
}

#: Routes of landeco's own forms: their CSRF token is a form field, checked by the route.
FORMS = frozenset({("POST", "/login"), ("POST", "/logout"), ("POST", "/uploads/form"),
                   ("POST", "/uploads/{upload_id}/commit/form"), ("POST", "/rasters/form"),
                   ("POST", "/change_patches/{feature_id}/status/form")})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def required_role(level: str, settings: Settings) -> str | None:
    """The role a level needs under ``settings``; None when anyone may.

    >>> s = Settings(public_read=False)
    >>> required_role("public-read", s), required_role("exports", s), required_role("public", s)
    ('viewer', 'viewer', None)
    >>> required_role("exports", Settings(planner_only_exports=True))
    'planner'
    """
    if level == "public":
        return None
    if level == "public-read":
        return None if settings.public_read else "viewer"
    if level == "exports":
        return "planner" if settings.planner_only_exports else required_role(_READ, settings)
    if level == "metrics":
        return None if settings.public_metrics else "admin"
    if level not in accounts.ROLES:
        raise ValueError(f"unknown permission level {level!r}")
    return level


def _wants_page(scope: Scope) -> bool:
    """A browser asking for a page (``f=html`` or an Accept that prefers HTML)."""
    from api.deps import wants_html

    request = Request(scope)
    return scope["method"] in ("GET", "HEAD") and wants_html(request, request.query_params.get("f"))


class Gatekeeper:
    """The one check of :data:`PERMISSIONS`, before any route runs (see the module)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._routes: list | None = None

    def _route(self, scope: Scope) -> tuple[object, str] | None:
        """The route answering ``scope`` and its path template, or None (a 404 or 405 follows)."""
        if self._routes is None:
            from api.app import api_routes

            self._routes = api_routes(scope["app"])
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route, route.path
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Resolve the principal, then pass the request on or refuse it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        path = scope["path"]
        found = self._route(scope)
        if found is None:
            template = "/api" if path == "/api" else None  # the OpenAPI document, outside the routers
            if template is None:  # /static, or nothing: the router answers (404, 405)
                scope.setdefault("state", {})["principal"] = None
                await self.app(scope, receive, send)
                return
        else:
            template = found[1]
            scope["route"] = found[0]  # the access log names the route of a refused request too
        level = PERMISSIONS.get((method, template))
        state = scope.setdefault("state", {})
        try:
            try:
                principal, refusal = await self._principal(scope)
            except sa.exc.DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                principal, refusal = await self._principal(scope)  # a pooled connection had died
        except Exception as exc:  # the database is away: 503 as every route answers it
            error = database_problem(exc)
            if error is None:
                raise
            principal, refusal = None, problem(error.status, error.code, error.title, str(error),
                                               headers={"Retry-After": str(self.settings.retry_after_s)})
        state["principal"] = principal
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        need = "admin" if level is None else required_role(level, self.settings)  # unlisted: admin only
        if need is not None and principal is None:
            if _wants_page(scope):
                target = quote(scope.get("root_path", "") + path + (
                    "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""), safe="")
                en = "&lang=en" if Request(scope).query_params.get("lang") == "en" else ""
                await RedirectResponse(f"{Request(scope).base_url}login?next={target}{en}", status_code=303)(
                    scope, receive, send)
                return
            await problem(401, "authentication_required", "Authentication required",
                          "sign in (a session cookie from /login) or send an API token "
                          "(Authorization: Bearer …)", headers={"WWW-Authenticate": "Bearer"})(
                scope, receive, send)
            return
        if need is not None and not principal.has(need):
            await problem(403, "forbidden", "Forbidden", f"this needs the {need} role",
                          required_role=need)(scope, receive, send)
            return
        if (principal is not None and principal.via == "session" and method in _WRITES
                and (method, template) not in FORMS):
            sent = Request(scope).headers.get("x-csrf-token", "")
            if not secrets.compare_digest(sent.encode(), (principal.csrf or "").encode()):
                await problem(403, "csrf_failed", "CSRF token missing or wrong",
                              "a signed-in browser's write must carry the page's CSRF token "
                              "(X-CSRF-Token)")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope):
        """``(principal, refusal)``: the account, and a response when a bearer token is dead."""
        auth = cookie = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                auth = value.decode("latin-1")
            elif key == b"cookie" and SESSION_COOKIE.encode() in value:
                cookie = Request(scope).cookies.get(SESSION_COOKIE)
        if auth is None and not cookie:
            return None, None  # a visitor: no query
        engine = scope["app"].state.auth_engine
        if auth is not None:
            kind, _, token = auth.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                return None, problem(401, "authentication_required", "Authentication required",
                                     "the Authorization header must be 'Bearer <token>'",
                                     headers={"WWW-Authenticate": "Bearer"})
            cache = scope["app"].state.token_cache
            principal = cache.get(accounts.token_hash(token.strip()))
            if principal is None:
                principal = await anyio.to_thread.run_sync(lambda: cache.lookup(engine, token.strip()))
            if principal is None:
                return None, problem(401, "authentication_required", "Authentication required",
                                     "the API token is unknown, expired or revoked, or its account "
                                     "is disabled",
                                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return principal, None
        if cookie:
            principal = await anyio.to_thread.run_sync(
                lambda: accounts.principal_for_session(engine=engine, secret=cookie,
                                                       idle_seconds=self.settings.session_idle_seconds))
            return principal, None  # a dead session is no session: anonymous
        return None, None
