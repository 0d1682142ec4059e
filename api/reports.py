"""The half-year report's figures (``GET /reports/{period}``) and the livestock counts behind 以草定畜.

Thin: parse the period, call :mod:`layers.report` and :mod:`layers.report_files`, answer
HTML (browsers), JSON (clients), XLSX, or PDF. The PDF takes seconds of matplotlib (≈2.5 s
on the demo township on a quiet machine, more on a busy one), so it is written by a job:
202 with the job's address for clients, the job's page for browsers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.audit import who
from api.deps import ConnDep, get_engine, get_settings, wants_html
from api.jobs import _accepted, queue_of
from api.pages import LangDep, render
from layers import jobs
from layers.livestock import (
    MAX_BYTES,
    LivestockFileUnreadableError,
    list_livestock,
    parse_livestock,
    write_livestock,
)
from layers.periods import parse_period
from layers.report import build_report
from layers.report_files import XLSX, file_name, to_json, to_xlsx
from layers.values import integer

__all__ = ["router"]

router = APIRouter(tags=["reports"])

ReportFormat = Literal["html", "json", "xlsx", "pdf"]
PeriodPath = Annotated[str, "2022, 2022H1, 2022Q3 or 2022-01-01..2022-06-30"]


def _attachment(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@router.get(
    "/reports/{period}",
    summary="The work report's figures for a period (HTML, JSON, XLSX, PDF)",
    responses={
        200: {"content": {"text/html": {}, "application/json": {}, XLSX: {}}},
        202: {
            "description": "f=pdf: the PDF is written by a job; follow Location",
            "content": {"application/json": {}},
        },
        303: {"description": "f=pdf from a browser: the job's page"},
    },
)
def report(
    request: Request,
    conn: ConnDep,
    period: str,
    f: Annotated[
        ReportFormat | None,
        Query(description="html (default for browsers), json (default for clients), xlsx, or pdf (a job)"),
    ] = None,
    lang: LangDep = "zh",
) -> Response:
    """Every figure of the work report the layers answer, for the period and the one before.

    Per village, with how each is computed and links to its features; the rest listed as not answerable.

    ``period``: ``2022`` (a year), ``2022H1``/``2022H2``, ``2022Q1``–``2022Q4``, or
    ``2022-01-01..2022-06-30``; anything else is 400 ``invalid_period``.
    """
    p = parse_period(period)
    base = str(request.base_url).rstrip("/")
    if f == "pdf":
        job_id = jobs.submit(
            queue_of(request.app),
            get_engine(request),
            "report_pdf",
            {"period": p.key, "lang": lang, "base": base},
            who(request).actor,
        )
        if wants_html(request, None):
            return RedirectResponse(
                f"{base}/jobs/{job_id}{'?lang=en' if lang == 'en' else ''}", status_code=303
            )
        return _accepted(request, job_id)
    rep = build_report(conn, get_settings(request), p, base=base, lang=lang)
    if f == "xlsx":
        return Response(
            to_xlsx(rep),
            media_type=XLSX,
            headers={"Content-Disposition": _attachment(file_name(rep, "xlsx"))},
        )
    if f == "html" or (f is None and wants_html(request, None)):
        suffix = "&lang=en" if lang == "en" else ""
        downloads = {k: f"{base}/reports/{p.key}?f={k}{suffix}" for k in ("xlsx", "pdf", "json")}
        return render(
            request,
            "reports/report.html",
            lang,
            title=rep["title"],
            report=rep,
            downloads=downloads,
            previous_link=f"{base}/reports/{p.previous().key}?f=html{suffix}",
        )
    return Response(to_json(rep), media_type="application/json")


@router.get("/livestock", summary="Livestock counts per village and year (for 以草定畜)")
def livestock(
    conn: ConnDep,
    year: Annotated[str | None, Query(description="only this year")] = None,
) -> dict[str, Any]:
    """The counts staff entered: village, year, head of each animal type or sheep units, who and when."""
    y = integer(year, "year", 1990, 2100) if year not in (None, "") else None
    return {"counts": list_livestock(conn, y)}


@router.post(
    "/livestock",
    summary="Upload livestock counts (CSV or XLSX), all or nothing",
    responses={
        422: {
            "description": "livestock_file_invalid: every problem listed, nothing written",
            "content": {"application/problem+json": {}},
        }
    },
)
async def upload_livestock(
    request: Request,
    file: Annotated[
        UploadFile,
        File(
            description="CSV (UTF-8 or GBK) or XLSX: 嘎查村代码 or 嘎查村, 年份, 绵羊, 山羊, 牛, 马, 骆驼, "
            "羊单位, 备注"
        ),
    ],
) -> JSONResponse:
    """Check the whole sheet, then write it in one transaction (a village's count of a year is replaced)."""
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise LivestockFileUnreadableError(f"a livestock file is at most {MAX_BYTES // 1024**2} MB")
    with get_engine(request).begin() as conn:
        rows = parse_livestock(conn, data, file.filename or "")
        written = write_livestock(conn, rows, who(request).actor)
    return JSONResponse(
        {
            **written,
            "years": sorted({r.year for r in rows}),
            "villages": sorted({r.village_code for r in rows}),
        }
    )


def standalone_html(rep: dict[str, Any]) -> str:
    """The report page as a file (``landeco report --format html``): links as the report holds them."""
    from api.pages import templates

    key, suffix = rep["period"]["key"], "&lang=en" if rep["lang"] == "en" else ""
    return templates.env.get_template("reports/report.html").render(
        lang=rep["lang"],
        base_url="",
        csp_nonce="",
        other_lang_url="",
        principal=None,
        can=lambda _level: False,
        csrf_token="",
        report=rep,
        downloads={k: f"/reports/{key}?f={k}{suffix}" for k in ("xlsx", "pdf", "json")},
        previous_link=f"/reports/{rep['previous']['key']}?f=html{suffix}",
    )
