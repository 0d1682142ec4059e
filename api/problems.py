"""RFC 9457 problem details: one table from domain errors to HTTP status and code.

Database faults are answered here too, whichever route meets them: a database that is
down or recovering is 503 with ``Retry-After``, a statement past its time limit is 503
``query_timeout``, a value the database refuses (an overflow, a date out of range) is 400.
The client never sees SQL or a stack trace.
"""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from layers import messages
from layers.change_patches import ILLEGAL_SQLSTATE, from_database
from layers.errors import DatabaseUnavailableError, LandecoError, QueryTimeoutError

__all__ = ["PROBLEM_JSON", "database_problem", "install_problem_handlers", "localised", "problem",
           "request_language"]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("landeco.errors")


def problem(status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: object) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"https://landeco.example/problems/{code}", "title": title,
            "status": status, "code": code, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def request_language(request: Request) -> str:
    """``zh`` or ``en``: the ``lang`` query parameter, else ``Accept-Language``, else Chinese."""
    return messages.language(request.query_params.get("lang"), request.headers.get("accept-language"))


def localised(lang: str, code: str, status: int, title: str, detail: str,
              extra: dict[str, object]) -> tuple[str, str, dict[str, object]]:
    """Title, detail and hint of a problem in ``lang`` from the catalogue (its code stays English).

    What the catalogue cannot say (a code it lacks, a parameter missing) keeps its English words.
    """
    params = {k: v for k, v in extra.items() if k != "hint"}
    text = messages.message(code, lang, default=detail, **params)
    if "hint" in extra:
        extra = {**extra, "hint": messages.hint(code, lang, default=str(extra["hint"]), **params)}
    return messages.title(code, lang, status, default=title), text, extra


#: SQLSTATE classes of faults in the request's values (22: data exception, 54: program limit
#: exceeded, e.g. an expression nested too deep); the request is wrong, not the server.
_REQUEST_CLASSES = {"22": ("invalid_value", "Invalid value"), "54": ("too_complex", "Request too complex")}
#: Classes meaning the database is away, restarting or out of room: try again later.
_AWAY_CLASSES = {"08", "53", "57"}


def database_problem(exc: BaseException) -> LandecoError | None:
    """The domain error a database exception stands for, or None if it is a bug of landeco's."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return DatabaseUnavailableError("the database is busy: no connection came free in time")
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return QueryTimeoutError("the query ran past its time limit: narrow it (a smaller area, a "
                                 "filter, a lower limit)")
    state = getattr(orig, "sqlstate", None) or ""
    if state == ILLEGAL_SQLSTATE:  # a change patch's status moved against its workflow (migration 0014)
        return from_database(orig)
    if isinstance(orig, psycopg.OperationalError) and not state:
        return DatabaseUnavailableError("the database cannot be reached")
    if isinstance(orig, psycopg.DataError) and not state:  # refused by psycopg before sending
        state = "22000"
    if state[:2] in _AWAY_CLASSES:
        return DatabaseUnavailableError("the database is unavailable or restarting")
    if state[:2] in _REQUEST_CLASSES:
        code, title = _REQUEST_CLASSES[state[:2]]
        error = LandecoError(f"the database refused a value of the request ({_first_line(orig)})")
        error.code, error.title, error.status = code, title, 400
        return error
    return None


def _first_line(exc: BaseException) -> str:
    """The database's message without its SQL context (the first line, cut short)."""
    return (str(exc).splitlines() or [""])[0][:200]


def _retry_after(request: Request, exc: LandecoError) -> dict[str, str] | None:
    if exc.status != 503:
        return None
    settings = getattr(request.app.state, "settings", None)
    return {"Retry-After": str(getattr(settings, "retry_after_s", 5))}


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as problem+json; never leak a stack trace or SQL."""

    @app.exception_handler(LandecoError)
    async def domain_error(request: Request, exc: LandecoError) -> JSONResponse:
        extra = exc.extra()
        if exc.aliases:
            extra["aliases"] = list(exc.aliases)
        title, detail, extra = localised(request_language(request), exc.code, exc.status, exc.title, str(exc),
                                         extra)
        return problem(exc.status, exc.code, title, detail, headers=_retry_after(request, exc), **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        title = messages.title("invalid_parameter", request_language(request))
        return problem(400, "invalid_parameter", title,
                       "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors),
                       errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), headers=exc.headers)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        error = database_problem(exc)
        if error is None:
            return await unexpected(request, exc)
        return await domain_error(request, error)

    app.add_exception_handler(sa.exc.DBAPIError, database_error)
    app.add_exception_handler(sa.exc.TimeoutError, database_error)
    app.add_exception_handler(psycopg.Error, database_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal_error", "Internal error",
                       "an unexpected error occurred; it has been logged")
