"""RFC 9457 problem details: one table from domain errors to HTTP status and code."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from layers.errors import LandecoError

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem"]

PROBLEM_JSON = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: object) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"https://landeco.example/problems/{code}", "title": title,
            "status": status, "code": code, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as problem+json; never leak a stack trace or SQL."""

    @app.exception_handler(LandecoError)
    async def domain_error(request: Request, exc: LandecoError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, str(exc), **exc.extra())

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem(400, "invalid_parameter", "Invalid parameter",
                       "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
                       errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Starlette's 405 names the methods the path takes in ``Allow`` (RFC 9110 asks for it)
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, "internal_error", "Internal error",
                       "an unexpected error occurred; it has been logged")
