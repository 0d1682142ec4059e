"""HTML pages: one Jinja2 environment, the request's language, and ``render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

__all__ = ["STATIC_DIR", "Lang", "LangDep", "render", "templates"]

STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

Lang = Literal["zh", "en"]


#: ``lang`` query parameter: labels in Simplified Chinese unless ``lang=en``.
LangDep = Annotated[Lang, Query(description="language of labels: zh (default) or en")]


def render(request: Request, template: str, lang: Lang, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """Render ``template`` with the request, its language and the base URL."""
    base_url = str(request.base_url).rstrip("/")
    return templates.TemplateResponse(request, template,
                                      {"lang": lang, "base_url": base_url, **context},
                                      status_code=status_code)
