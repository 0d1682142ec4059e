"""``landeco report`` and ``landeco livestock``: the work report's figures and the counts behind 以草定畜.

The same report as ``GET /reports/{period}``, computed from the configured database; the
PDF is written here directly (a command may take its seconds).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from api.cli.query import _connection
from layers.audit import cli_who
from layers.errors import LandecoError
from layers.periods import parse_period, period_between
from layers.settings import Settings

__all__ = ["register"]

livestock_app = typer.Typer(help="Livestock counts per village and year (以草定畜).", no_args_is_help=True)


def report_command(
    period: Annotated[str | None, typer.Option(help="2022, 2022H1, 2022Q3 or 2022-01-01..2022-06-30")] = None,
    from_: Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="first day")] = None,
    to: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="last day (included)")] = None,
    format: Annotated[
        str | None, typer.Option(help="xlsx, pdf, html or json (default: from -o, else json)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="file to write (default: stdout for json)")
    ] = None,
    lang: Annotated[str, typer.Option(help="zh (default) or en")] = "zh",
) -> None:
    """The work report's figures for a period, the period before and the change, per village."""
    # imported here: the report's writers (matplotlib, PDF) would slow every other command's start
    from layers.report import build_report
    from layers.report_files import file_name, to_json, to_pdf, to_xlsx

    try:
        if period is not None and (from_ or to):
            raise typer.BadParameter("give --period or --from/--to, not both")
        if period is None and not (from_ and to):
            raise typer.BadParameter("give --period (e.g. 2022H1) or both --from and --to")
        p = parse_period(period) if period is not None else period_between(from_.date(), to.date())
    except LandecoError as exc:
        typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if lang not in ("zh", "en"):
        raise typer.BadParameter("zh or en", param_hint="--lang")
    fmt = format or (out.suffix.lstrip(".").lower() if out is not None else "json")
    if fmt not in ("xlsx", "pdf", "html", "json"):
        raise typer.BadParameter("xlsx, pdf, html or json", param_hint="--format")
    settings = Settings()
    with _connection() as conn:
        rep = build_report(conn, settings, p, base=settings.public_url or "", lang=lang)
        if fmt == "json":
            body = to_json(rep).encode("utf-8")
        elif fmt == "xlsx":
            body = to_xlsx(rep)
        elif fmt == "pdf":
            body = to_pdf(conn, rep)
        else:
            from api.reports import standalone_html

            body = standalone_html(rep).encode("utf-8")
    if out is None and fmt == "json":
        typer.echo(body.decode("utf-8"))
        return
    out = out or Path(file_name(rep, fmt))
    out.write_bytes(body)
    typer.echo(
        f"{out} ({max(1, len(body) // 1024)} KiB): {len(rep['answered'])} figures answered, "
        f"{len(rep['not_answerable'])} not answerable; over capacity: "
        f"{', '.join(rep['carrying_capacity']['over']) or 'none'}"
    )


@livestock_app.command("upload")
def livestock_upload(
    file: Annotated[
        Path,
        typer.Argument(help="CSV or XLSX: 嘎查村代码/嘎查村, 年份, 绵羊, 山羊, 牛, 马, 骆驼, 羊单位, 备注"),
    ],
) -> None:
    """Check the sheet whole and write it, all or nothing (a village's count of a year is replaced)."""
    from layers.livestock import parse_livestock, write_livestock

    data = file.read_bytes()
    with _connection() as conn:
        try:
            rows = parse_livestock(conn, data, file.name)
        except LandecoError as exc:
            for p in getattr(exc, "problems", []):
                typer.secho(f"  row {p['row']} {p['column'] or ''}: [{p['code']}] {p['message']}", err=True)
            raise
        written = write_livestock(conn, rows, cli_who("livestock upload").actor)
        conn.commit()
    typer.echo(
        f"{file}: {written['written']} counts written ({written['inserted']} new, "
        f"{written['updated']} replaced)"
    )


@livestock_app.command("list")
def livestock_list(year: Annotated[int | None, typer.Option(help="only this year")] = None) -> None:
    """The counts entered, as JSON lines."""
    from layers.livestock import list_livestock

    with _connection() as conn:
        for row in list_livestock(conn, year):
            typer.echo(json.dumps(row, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``livestock`` to ``app``."""
    app.command("report")(report_command)
    app.add_typer(livestock_app, name="livestock")
