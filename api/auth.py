"""Signing in and out of the pages, and the CSRF token every landeco form carries.

``GET /login`` is the form (Chinese; English with ``lang=en``), ``POST /login`` checks the
name and password and starts a server-side session (an HttpOnly, SameSite=Lax cookie, Secure
over https), ``POST /logout`` ends it. The login form's CSRF token is a double-submit
cookie (there is no session yet); every other form carries the session's own CSRF secret
(:func:`csrf_form`). Repeated failures make the account and the address wait: 429 with
``Retry-After`` (the form shows the wait), without the password being looked at.
"""

from __future__ import annotations

import math
import secrets
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.audit import record_request
from api.pages import LangDep, render
from api.permissions import SESSION_COOKIE
from layers import accounts

__all__ = ["CSRF_FIELD", "CsrfFailedError", "csrf_form", "router"]

router = APIRouter(tags=["accounts"])
#: The form field every landeco form sends its CSRF token in.
CSRF_FIELD = "csrf_token"
#: The login form's double-submit cookie (before sign-in there is no session to hold a secret).
LOGIN_CSRF_COOKIE = "landeco_login_csrf"


class CsrfFailedError(accounts.ForbiddenError):
    """A form came without the page's CSRF token (or with another one)."""

    code = "csrf_failed"
    title = "CSRF token missing or wrong"


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and secrets.compare_digest(a.encode(), b.encode())


def csrf_form(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> None:
    """A form of a signed-in browser must carry its session's CSRF token.

    Requests with a bearer token are not a browser acting on its own (no ambient
    credential): they need none.
    """
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.via == "session" and not _same(csrf_token, principal.csrf):
        raise CsrfFailedError("the form's CSRF token is missing or wrong: reload the page and try again")


CsrfForm = Annotated[None, Depends(csrf_form)]


def _safe_next(target: str | None) -> str:
    """Only a path of this site (``/maps?x``), never ``//evil`` or a full URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(request: Request, lang: str, next_: str, *, error: str | None = None,
                status_code: int = 200, headers: dict[str, str] | None = None,
                username: str = "") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    page = render(request, "auth/login.html", lang, status_code=status_code, next=next_, error=error,
                  login_csrf=token, username=username)
    page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request),
                    path="/login")
    page.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        page.headers[k] = v
    return page


@router.get("/login", include_in_schema=False)
def login_form(request: Request, lang: LangDep = "zh", next: str | None = None) -> Response:
    """The sign-in form."""
    return _login_page(request, lang, _safe_next(next))


@router.post("/login", include_in_schema=False)
async def login(request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()],
                csrf_token: Annotated[str | None, Form()] = None, next: Annotated[str | None, Form()] = None,
                lang: LangDep = "zh") -> Response:
    """Check name and password; on success a session cookie and back to ``next``."""
    settings = request.app.state.settings
    engine = request.app.state.engine
    en = lang == "en"
    target = _safe_next(next)
    if not _same(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(request, lang, target, status_code=403, username=username,
                           error="The form expired: please sign in again." if en
                           else "表单已过期，请重新登录。")
    address = request.client.host if request.client else None
    try:
        principal = await anyio.to_thread.run_sync(lambda: accounts.authenticate(
            engine=engine, name=username.strip().lower(), password=password, address=address,
            delay_cap_seconds=settings.login_delay_cap_seconds))
    except accounts.LoginThrottledError as exc:
        await anyio.to_thread.run_sync(lambda: _audit(request, "login.failed", username,
                                                      {"reason": "throttled"}))
        wait = exc.retry_after
        return _login_page(request, lang, target, status_code=429, headers={"Retry-After": str(wait)},
                           username=username,
                           error=f"Too many failed attempts: try again in {wait} s." if en
                           else f"失败次数过多，请 {wait} 秒后再试。")
    except accounts.InvalidCredentialsError:
        await anyio.to_thread.run_sync(lambda: _audit(request, "login.failed", username,
                                                      {"reason": "credentials"}))
        return _login_page(request, lang, target, status_code=401, username=username,
                           error="Wrong user name or password." if en else "用户名或密码错误。")
    secret = await anyio.to_thread.run_sync(lambda: accounts.start_session(
        engine=engine, name=principal.name, max_seconds=settings.session_max_seconds))
    await anyio.to_thread.run_sync(lambda: _audit(request, "login.ok", principal.name))
    base = str(request.base_url).rstrip("/")
    answer = RedirectResponse(base + target, status_code=303)
    answer.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", secure=_secure(request),
                      path="/", max_age=math.ceil(settings.session_max_seconds))
    answer.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return answer


def _audit(request: Request, action: str, name: str | None, detail: dict | None = None) -> None:
    """A sign-in, a refused one or a sign-out in the audit trail, in a transaction of its own."""
    with request.app.state.engine.begin() as conn:
        record_request(request, conn, action, actor=(name or "").strip().lower()[:100] or None,
                       detail=detail)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, _: CsrfForm, lang: LangDep = "zh") -> Response:
    """End the session (its row is removed) and go home."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        accounts.end_session(engine=request.app.state.engine, secret=secret)
        principal = getattr(request.state, "principal", None)
        _audit(request, "login.end", principal.name if principal else None)
    answer = RedirectResponse(f"{request.base_url}{'?lang=en' if lang == 'en' else ''}", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer
