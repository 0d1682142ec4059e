"""The FastAPI application: ``create_app(settings)`` builds it, nothing is read at import."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api import audit, auth, editing, features, history, home, jobs, maps, query, rasters, tiles, uploads
from api import zonal as zonal_routes
from api.edge import EdgeGuard
from api.observability import install_observability
from api.openapi import install_openapi
from api.pages import STATIC_DIR
from api.permissions import Gatekeeper
from api.problems import install_problem_handlers
from api.security import SecurityMiddleware
from layers import accounts
from layers.settings import Settings
from layers.store.database import database_url, make_engine

__all__ = ["api_routes", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """A landeco application for ``settings`` (from the environment when omitted)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database_url = database_url(settings)
        app.state.engine = make_engine(app.state.database_url,
                                       statement_timeout_ms=settings.query_timeout_ms)
        # who asks (api.permissions): one round trip per look-up, no ping, no transaction
        app.state.auth_engine = make_engine(app.state.database_url, statement_timeout_ms=5_000,
                                            autocommit=True)
        # bearer tokens already checked, forgotten at once on any change (NOTIFY)
        app.state.token_cache = accounts.TokenCache(app.state.database_url.render_as_string(
            hide_password=False).replace("postgresql+psycopg://", "postgresql://"))
        if settings.token_cache:
            app.state.token_cache.start()
        app.state.jobs = None  # made on first use (api.jobs.queue_of)
        worker = contextlib.nullcontext()
        if settings.inprocess_worker:  # landeco serve: one command runs the jobs too
            from api.jobs import queue_of
            from layers.jobs import worker_in_background

            worker = worker_in_background(queue_of(app), app.state.engine)
        try:
            with worker:
                yield
        finally:
            app.state.token_cache.stop()
            app.state.engine.dispose()
            app.state.auth_engine.dispose()

    app = FastAPI(
        title="landeco",
        description="鄂托克前旗 land and ecology management: layers in PostGIS, "
        "served as OGC API – Features",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/api",
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    # GeoJSON compresses 5-10x; level 1 (3 ms for 600 KB against 9 ms at level 5) keeps it fast.
    # Responses that set their own Content-Encoding pass through untouched.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)
    # who asks, and whether they may (api.permissions.PERMISSIONS), before a body is read
    app.add_middleware(Gatekeeper, settings=settings)
    # NUL characters, body sizes and rates are refused before any route runs
    app.add_middleware(EdgeGuard, settings=settings)
    # outside it: hosts and cross-site writes checked, security headers set on every answer
    app.add_middleware(SecurityMiddleware, settings=settings,
                       image_hosts=lambda: maps.basemap_hosts(app.state.settings.tianditu_key))
    for module in (home, auth, features, tiles, uploads, query, maps, audit, history, jobs, rasters):
        app.include_router(module.router)
    app.include_router(editing.router)
    app.include_router(zonal_routes.router)
    install_openapi(app, "/api.html")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_observability(app, access_log=settings.access_log)  # last: outermost, around gzip
    return app


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every route of the application, through the routers it includes (tests read the table)."""
    out: list[APIRoute] = []

    def walk(routes: list) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                out.append(route)
            elif hasattr(route, "original_router"):  # FastAPI's included router
                walk(route.original_router.routes)

    walk(app.routes)
    return out
