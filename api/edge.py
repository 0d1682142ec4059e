"""The edge of the application: what every request passes before any route sees it.

One pure ASGI middleware (no buffering of answers, so the streamed items and tiles keep
their speed) that refuses, as problem+json:

- a path or query string holding a NUL character (``%00``): 400 ``invalid_text``;
  PostgreSQL text cannot hold one, and no landeco value has one;
- a body larger than the route allows (uploads: ``upload_max_bytes``; every other route:
  ``body_max_bytes``): 413 ``too_large``, whether the client declares its length or not;
- more requests per minute than a client may make to the expensive routes (queries,
  exports, uploads, vector tiles below zoom 10): 429 ``rate_limited`` with ``Retry-After``.

Rate-limit counters live where ``rate_limit_storage`` says (the ``limits`` library): in
memory they count per process, in Redis or Memcached for every process of the service.
"""

from __future__ import annotations

import json
import math
import re
import time
from urllib.parse import unquote_to_bytes

from limits import RateLimitItemPerMinute, storage, strategies
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.settings import Settings

__all__ = ["EdgeGuard", "rate_class"]

_PROBLEM = b"application/problem+json"
_TILE = re.compile(r"/tiles/[^/]+/(\d+)/\d+/\d+$")
#: Below this zoom a tile covers much of the township and costs the database most.
CHEAP_TILE_ZOOM = 10
_UPLOAD_PATHS = ("/uploads", "/rasters")
#: Multipart framing around an uploaded file (boundaries, part headers, small form fields).
_MULTIPART_SLACK = 64 * 1024


def rate_class(method: str, path: str) -> str | None:
    """Which rate limit a request counts against: ``expensive``, ``tiles`` or none.

    >>> rate_class("POST", "/query"), rate_class("GET", "/collections/x/tiles/WebMercatorQuad/8/1/2")
    ('expensive', 'tiles')
    >>> rate_class("GET", "/collections/x/tiles/WebMercatorQuad/14/1/2") is None
    True
    """
    if path.startswith(("/query", "/export/")) or (method == "POST" and path.startswith(
            (*_UPLOAD_PATHS, "/jobs/export/"))):
        return "expensive"
    if "/tiles/" in path:
        m = _TILE.search(path)
        if m and int(m.group(1)) < CHEAP_TILE_ZOOM:
            return "tiles"
    return None


def _problem(status: int, code: str, title: str, detail: str,
             headers: list[tuple[bytes, bytes]] = ()) -> tuple[dict, bytes]:
    body = json.dumps({"type": f"https://landeco.example/problems/{code}", "title": title,
                       "status": status, "code": code, "detail": detail}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", _PROBLEM), (b"content-length", str(len(body)).encode()),
                         *headers]}
    return start, body


class _TooLargeError(Exception):
    """The body ran past its limit while the route read it."""




class EdgeGuard:
    """Refuse NUL characters, oversized bodies and clients over their rate (see the module)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = None
        if settings.rate_limit_per_minute > 0 or settings.tile_rate_limit_per_minute > 0:
            self.limiter = strategies.MovingWindowRateLimiter(
                storage.storage_from_string(settings.rate_limit_storage))
        self.rates = {"expensive": RateLimitItemPerMinute(max(settings.rate_limit_per_minute, 1)),
                      "tiles": RateLimitItemPerMinute(max(settings.tile_rate_limit_per_minute, 1))}
        self.enabled = {"expensive": settings.rate_limit_per_minute > 0,
                        "tiles": settings.tile_rate_limit_per_minute > 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on counting its body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check_url(scope) or self._check_rate(scope)
        if refusal is not None:
            await self._answer(send, *refusal)
            return
        limit = self._body_limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._answer(send, *self._too_large(limit))
            return
        received = 0
        over = started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _TooLargeError
            return message

        async def watched(message: Message) -> None:
            # the body parser turns any error into its own answer: say 413 instead
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._answer(send, *self._too_large(limit))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLargeError:
            if not started:
                await self._answer(send, *self._too_large(limit))

    # -- checks ------------------------------------------------------------------------------
    @staticmethod
    def _check_url(scope: Scope) -> tuple[dict, bytes] | None:
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        for part in (raw, query):
            if b"\x00" in part or b"%00" in part or (b"%" in part and b"\x00" in unquote_to_bytes(part)):
                return _problem(400, "invalid_text", "Invalid text",
                                "the address holds a NUL character (%00), which no landeco value has")
        return None

    def _check_rate(self, scope: Scope) -> tuple[dict, bytes] | None:
        if self.limiter is None:
            return None
        kind = rate_class(scope["method"], scope["path"])
        if kind is None or not self.enabled[kind]:
            return None
        client = (scope.get("client") or ("unknown", 0))[0]
        item = self.rates[kind]
        if self.limiter.hit(item, kind, client):
            return None
        reset = self.limiter.get_window_stats(item, kind, client).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        return _problem(429, "rate_limited", "Too many requests",
                        f"more than {item.amount} requests a minute to these routes: wait {wait} s",
                        [(b"retry-after", str(wait).encode())])

    def _body_limit(self, scope: Scope) -> int:
        if scope["path"] in ("/rasters", "/rasters/form"):  # a GeoTIFF: its own limit
            return self.settings.raster_max_bytes + _MULTIPART_SLACK
        if scope["path"].startswith(_UPLOAD_PATHS):
            return self.settings.upload_max_bytes + _MULTIPART_SLACK
        return self.settings.body_max_bytes

    def _too_large(self, limit: int) -> tuple[dict, bytes]:
        return _problem(413, "too_large", "Request too large",
                        f"the request body is larger than the {limit:,} bytes this route takes")

    @staticmethod
    async def _answer(send: Send, start: dict, body: bytes) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
