"""Access log and Prometheus metrics: one pure ASGI middleware and ``/metrics``.

Each request gives one JSON line on the ``landeco.access`` logger (stderr) with the method,
the route *template* (``/collections/{collection_id}/items``, never the raw path), status,
duration, response bytes, client address and the upload id when the route has one. Query
strings, headers and cookies are never logged: a ``?tk=`` or an ``Authorization`` header
cannot leak through the log.

The middleware is plain ASGI, not ``BaseHTTPMiddleware``, which buffers streamed answers
and costs a task per request on the hot path. It sits outside gzip, so sizes are bytes on
the wire.

Metrics live in a :class:`~prometheus_client.CollectorRegistry` per application (tests build
many apps; the global registry refuses a second metric of the same name). Multi-process
serving (``landeco serve --workers N``) is not aggregated: prometheus_client's multi-process
mode (``PROMETHEUS_MULTIPROC_DIR`` set before import, ``MultiProcessCollector`` over files)
supports neither per-app registries nor collectors computed at scrape time such as the pool
and upload gauges, so each worker answers ``/metrics`` with its own counts. Run one worker
per port (the default) and scrape each when counts must be complete.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.uploads import upload_counts

__all__ = ["ACCESS_LOGGER", "AccessMiddleware", "install_observability", "upload_states"]

ACCESS_LOGGER = "landeco.access"
#: Route label of a request no route matched (a 404): raw paths would make labels unbounded.
UNMATCHED = "<unmatched>"
#: Latency buckets (seconds): items and tiles answer in milliseconds, exports and maps in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

log = logging.getLogger(ACCESS_LOGGER)


def _route_template(scope: Scope) -> str:
    """The template of the route that answered (FastAPI puts it in the scope), or ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path or UNMATCHED


class AccessMiddleware:
    """Times each HTTP request, writes its access line and counts it in the app's metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, watching the answer's status and bytes go by."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering
        size = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            seconds = time.perf_counter() - start
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.observe(method, route, status, seconds)
            if self.log_requests and log.isEnabledFor(logging.INFO):
                log.info(_line(scope, method, route, status, seconds, size))


def _line(scope: Scope, method: str, route: str, status: int, seconds: float, size: int) -> str:
    entry: dict[str, Any] = {"method": method, "route": route, "status": status,
                             "duration_ms": round(seconds * 1000, 2), "bytes": size,
                             "client": (scope.get("client") or ("", 0))[0]}
    upload_id = (scope.get("path_params") or {}).get("upload_id")
    if upload_id:
        entry["upload_id"] = upload_id
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def _configure_logger() -> None:
    """One stderr handler writing the bare JSON line; idempotent across apps."""
    log.setLevel(logging.INFO)
    log.propagate = False  # a root handler set up by someone else must not print each line twice
    if not any(getattr(h, "_landeco_access", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._landeco_access = True  # type: ignore[attr-defined]
        log.addHandler(handler)


# -- metrics ------------------------------------------------------------------------------


def upload_states(engine: sa.Engine) -> dict[str, int]:
    """Uploads per state, from the ``uploads`` table (a commit whose worker died: ``interrupted``).

    Empty when the database cannot say: a scrape must not fail because the database is away.
    """
    try:
        with engine.connect() as conn:
            return upload_counts(conn)
    except (sa.exc.SQLAlchemyError, OSError):
        return {}


class _StateCollector(Collector):
    """Gauges computed at scrape time: the database pool and uploads by state."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine = getattr(self.app.state, "engine", None)
        if engine is not None:
            pool = engine.pool
            for name, doc, read in (
                ("landeco_db_pool_size", "connections the pool keeps", "size"),
                ("landeco_db_pool_checked_out", "connections in use by requests", "checkedout"),
                ("landeco_db_pool_checked_in", "idle connections in the pool", "checkedin"),
                ("landeco_db_pool_overflow", "connections beyond the pool size", "overflow"),
            ):
                method: Callable[[], int] | None = getattr(pool, read, None)
                if method is not None:  # overflow() is negative until the pool has opened size connections
                    yield GaugeMetricFamily(name, doc, value=max(0, method()))
        uploads = GaugeMetricFamily("landeco_uploads", "uploads by state", labels=["state"])
        for state, n in sorted(upload_states(engine).items() if engine is not None else ()):
            uploads.add_metric([state], n)
        yield uploads


class Metrics:
    """The metrics of one application, in its own registry."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("landeco_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("landeco_http_request_duration_seconds",
                                 "time from request to the last byte of the answer",
                                 ["route"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(_StateCollector(app))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


router = APIRouter()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    """Requests by route, method and status; latency by route; database pool; uploads by state."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def install_observability(app: FastAPI, *, access_log: bool = True) -> None:
    """Add ``/metrics`` and the access middleware (call last, so it wraps gzip: bytes on the wire)."""
    app.state.metrics = Metrics(app)
    if access_log:
        _configure_logger()
    app.include_router(router)
    app.add_middleware(AccessMiddleware, metrics=app.state.metrics, log_requests=access_log)

