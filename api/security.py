"""One middleware that keeps pages from being turned against their users.

Every response carries a Content-Security-Policy (scripts only from landeco's origin or with
this request's nonce), ``nosniff``, a referrer policy and framing by landeco only. A request
naming a host landeco is not (``allowed_hosts``) is refused before any page or link is built
from it, and a write (POST, PUT, PATCH, DELETE) sent by a page of another site is refused:
browsers say so in ``Sec-Fetch-Site`` and ``Origin``; clients that send neither (curl, GDAL,
scripts) are not browsers acting for a visitor, and pass. With ``public_url`` set, links and
redirects are built from it: the request's scheme and Host are replaced before the routes
see them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem
from layers.settings import Settings

__all__ = ["SecurityMiddleware", "add_nonce", "content_security_policy", "host_name"]

#: Methods that change something: refused when a page of another site sends them.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_SCRIPT_TAG = re.compile(r"<script(?![^>]*\snonce=)(?=[\s>])", re.IGNORECASE)


def host_name(host: str) -> str:
    """``host[:port]`` (or ``[v6]:port``) without the port, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host  # a bare name, or a bare IPv6 address


def _netloc(scheme: str, host: str) -> str:
    """``host[:port]`` with the scheme's default port dropped, lower-cased."""
    host = host.strip().lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return host[: -len(default)] if default and host.endswith(default) else host


def content_security_policy(nonce: str, image_hosts: Iterable[str] = ()) -> str:
    """The policy: landeco's own scripts and those carrying ``nonce``; images also from basemaps."""
    images = " ".join(["'self'", "data:", *image_hosts])
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {images}",
        "connect-src 'self'",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ])


def add_nonce(html: str, nonce: str) -> str:
    """``html`` with ``nonce`` on every ``<script>`` tag that has none (e.g. Folium's parts)."""
    return _SCRIPT_TAG.sub(f'<script nonce="{nonce}"', html)


class SecurityMiddleware:
    """Trusted hosts, refused cross-site writes, security headers and the CSP nonce.

    ``image_hosts`` is called per request: the basemap hosts images may come from (they
    depend on whether a Tianditu key is configured).
    """

    def __init__(self, app: ASGIApp, settings: Settings,
                 image_hosts: Callable[[], Iterable[str]] = lambda: ()) -> None:
        self.app = app
        self.image_hosts = image_hosts
        self.public = urlsplit(settings.public_url) if settings.public_url else None
        hosts = {host_name(h) for h in settings.allowed_hosts}
        if self.public is not None:
            hosts.add(host_name(self.public.netloc))
        if settings.host not in ("0.0.0.0", "::", ""):
            hosts.add(host_name(settings.host))
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the host and the write's origin, then answer with the headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        extra = [
            (b"content-security-policy", content_security_policy(nonce, self.image_hosts()).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"x-frame-options", b"SAMEORIGIN"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                if message["status"] == 304:
                    # the cached page keeps the policy of the nonce its scripts carry
                    present.add(b"content-security-policy")
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in extra if k not in present)]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host and not self.any_host and host_name(host) not in self.hosts:
            await problem(400, "untrusted_host", "Untrusted host",
                          "this server does not answer to the host named in the request; "
                          "an operator can add it to LANDECO_ALLOWED_HOSTS")(
                scope, receive, send_with_headers)
            return
        if scope["method"] in WRITES and self._cross_site(scope, headers, host):
            await problem(403, "cross_origin_write", "Cross-origin write refused",
                          "a page of another site may not change landeco's data")(
                scope, receive, send_with_headers)
            return
        if self.public is not None:
            scope = self._as_public(scope)
        await self.app(scope, receive, send_with_headers)

    def _cross_site(self, scope: Scope, headers: dict[str, str], host: str) -> bool:
        """Whether a browser sends this write for a page of another origin."""
        if headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
            return True
        origin = headers.get("origin")
        if origin is None:
            return False
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return True  # "null" (a sandboxed frame, a data: page) and the like
        mine = _netloc(parts.scheme, parts.netloc)
        if host and mine == _netloc(scope.get("scheme", "http"), host):
            return False
        return not (self.public is not None and parts.scheme == self.public.scheme
                    and mine == _netloc(self.public.scheme, self.public.netloc))

    def _as_public(self, scope: Scope) -> Scope:
        """``scope`` seen at ``public_url``: its scheme, host and path prefix."""
        assert self.public is not None
        scope = dict(scope)
        scope["scheme"] = self.public.scheme
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"] + [
            (b"host", self.public.netloc.encode("latin-1"))]
        if self.public.path and not scope.get("root_path"):
            scope["root_path"] = self.public.path
        return scope
