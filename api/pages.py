"""HTML pages: one Jinja2 environment, the request's language, and ``render``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

__all__ = ["STATIC_DIR", "Lang", "LangDep", "json_for_script", "other_language_url", "render", "templates"]

STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

Lang = Literal["zh", "en"]

#: What could end a ``<script>`` block or a JavaScript line early, and its JSON escape.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027",
                  "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_for_script(value: Any, *, text: bool = False) -> Markup:
    r"""``value`` as JSON safe inside ``<script>`` (a data block or JavaScript).

    With ``text=True`` ``value`` is already JSON text. Those characters can only occur
    inside JSON strings, where their ``\u`` escapes mean the same: a name holding
    ``</script>`` stays a name.
    """
    out = value if text else json.dumps(value, ensure_ascii=False)
    for char, escape in _SCRIPT_UNSAFE.items():
        out = out.replace(char, escape)
    return Markup(out)


templates.env.filters["script_json"] = json_for_script
templates.env.filters["script_json_text"] = lambda v: json_for_script(v, text=True)


#: ``lang`` query parameter: labels in Simplified Chinese unless ``lang=en``.
LangDep = Annotated[Lang, Query(description="language of labels: zh (default) or en")]


def render(request: Request, template: str, lang: Lang, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """Render ``template`` with the request, its language, the base URL and the CSP nonce.

    Every inline ``<script>`` of a template carries ``nonce="{{ csp_nonce }}"``
    (:mod:`api.security`); data inside scripts goes through ``script_json``.
    """
    base_url = str(request.base_url).rstrip("/")
    nonce = getattr(request.state, "csp_nonce", "")
    # who is signed in (api.permissions): the top bar shows the name, forms carry the CSRF token,
    # and ``can(level)`` hides what the person may not do
    principal = getattr(request.state, "principal", None)
    settings = request.app.state.settings

    def can(level: str) -> bool:
        from api.permissions import required_role

        need = required_role(level, settings)
        return need is None or (principal is not None and principal.has(need))

    return templates.TemplateResponse(request, template,
                                      {"lang": lang, "base_url": base_url, "csp_nonce": nonce,
                                       "other_lang_url": other_language_url(request, lang),
                                       "principal": principal, "can": can,
                                       "csrf_token": principal.csrf if principal is not None else "",
                                       **context},
                                      status_code=status_code)


def other_language_url(request: Request, lang: Lang) -> str:
    """The page asked for in the other language, every other parameter kept (the top bar's switch).

    >>> from starlette.requests import Request
    >>> r = Request({"type": "http", "path": "/maps/land_leases", "query_string": b"on=2022-07-01&lang=en",
    ...              "headers": []})
    >>> other_language_url(r, "en")
    '/maps/land_leases?on=2022-07-01&lang=zh'
    """
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", "zh" if lang == "en" else "en"))
    return f"{request.url.path}?{urlencode(params)}"
