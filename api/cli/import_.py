"""``landeco import FILE --layer L``: check a surveyor's file and write it, all or nothing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from layers.errors import LandecoError

if TYPE_CHECKING:
    from layers.importer import ImportOptions, Report


def import_file(path: Path, options: ImportOptions, *, dry_run: bool, show_progress: bool = True) -> Report:
    """One import in one transaction, committed unless ``dry_run`` or the file has errors."""
    from layers.audit import cli_who
    from layers.importer import import_in_transaction
    from layers.settings import Settings
    from layers.store.database import database_url, engine_for
    from layers.uploads import record_write

    settings = Settings()
    url = database_url(settings).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="landeco-import-"))
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), disable=not show_progress, transient=False)
    tasks: dict[str, int] = {}
    labels = {"reading": "读取与检查 reading", "checking": "数据库检查 checking", "writing": "写入 writing"}

    def step(stage: str, fraction: float) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(labels[stage], total=1000)
        progress.update(tasks[stage], completed=int(fraction * 1000))

    with progress:
        return import_in_transaction(engine_for(url), path, work, options, write=not dry_run, progress=step,
                                     before_commit=lambda conn, report: record_write(conn, cli_who("import"),
                                                                                     report))


_WORDS = {
    "zh": {"dataset": "数据集", "encoding": "编码", "crs": "坐标系", "features": "要素",
           "importable": "可导入",
           "refused": "拒绝", "errors": "错误", "warnings": "警告", "column": "列", "field": "字段",
           "how": "匹配方式", "columns": "列的匹配", "feature": "要素", "code": "代码", "message": "说明",
           "problems": "问题", "by_code": "按代码统计的问题", "written": "已写入",
           "nothing": "未写入任何内容：请改正错误后重新导入", "dry": "试运行：未写入任何内容",
           "extra": "附加属性", "refused_file": "文件被拒绝", "hint": "建议"},
    "en": {"dataset": "dataset", "encoding": "encoding", "crs": "CRS", "features": "features",
           "importable": "importable", "refused": "refused", "errors": "errors", "warnings": "warnings",
           "column": "column", "field": "field", "how": "how", "columns": "columns", "feature": "feature",
           "code": "code", "message": "message", "problems": "problems", "by_code": "problems by code",
           "written": "written", "nothing": "nothing written: correct the errors and import again",
           "dry": "dry run: nothing written", "extra": "extra", "refused_file": "refused", "hint": "hint"},
}


def print_report(report: Report, console: Console, lang: str = "zh") -> None:
    """The same report as the web page, as tables, in ``lang``; file content is escaped, not markup."""
    from layers.messages import localise_report

    w = _WORDS["en" if lang == "en" else "zh"]
    d = localise_report(report.as_dict(preview=False), lang)
    c = d["counts"]
    console.print(f"[bold]{escape(str(d['file']))}[/bold] → {d['layer']} ({d['mode']}); {w['dataset']} "
                  f"{escape(str(d['dataset']))} ({d['format']}, {d['geometry_type']})")
    enc = d["encoding"] or {}
    crs = d["crs"] or {}
    console.print(f"{w['encoding']} {enc.get('encoding')} ({enc.get('source')}): "
                  f"{escape(enc.get('text', ''))}; {w['crs']} EPSG:{crs.get('epsg')} ({crs.get('source')}): "
                  f"{escape(crs.get('text', ''))}")
    console.print(f"{w['features']} {c['features']}, {w['importable']} {c['importable']}, {w['refused']} "
                  f"{c['refused']}, {w['errors']} {c['errors']}, {w['warnings']} {c['warnings']}")
    mapping = Table(w["column"], w["field"], w["how"], title=w["columns"])
    for m in d["mapping"]:
        label = f"{m['field_label']} ({m['field']})" if m["field"] else "—" if m["how"] == "computed" \
            else w["extra"]
        mapping.add_row(escape(m["column_text"]), escape(label), escape(m["how_text"]))
    console.print(mapping)
    if d["problems"]:
        problems = Table(w["feature"], w["code"], w["field"], w["message"], title=w["problems"])
        for p in d["problems"][:200]:
            problems.add_row("" if p["index"] is None else str(p["index"]), p["code"],
                             escape(p["field_label"] or ""), escape(p["message"]))
        console.print(problems)
        if d["problems_listed"] > 200 or c["errors"] > d["problems_listed"]:
            console.print(f"… {w['by_code']}: {escape(json.dumps(d['problem_codes']))}")
    if d["committed"]:
        console.print(f"[green]{w['written']}[/green]: {d['written_text']}")
    elif c["errors"]:
        console.print(f"[red]{w['nothing']}[/red]")
    else:
        console.print(w["dry"])


def register(app: typer.Typer) -> None:
    """Add ``landeco import``."""

    @app.command("import")
    def import_command(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="zip gpkg geojson kml kmz")],
        layer: Annotated[str, typer.Option(help="the layer to import into")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="check only, write nothing")] = False,
        crs: Annotated[str | None, typer.Option(help="the file's CRS when it has no .prj, e.g. 4545")] = None,
        encoding: Annotated[str | None, typer.Option(help="text encoding of the .dbf, e.g. gbk")] = None,
        mode: Annotated[str, typer.Option(help="insert, upsert or replace")] = "insert",
        dataset: Annotated[str | None, typer.Option(help="which shapefile/layer of the file")] = None,
        column: Annotated[list[str] | None, typer.Option(
            "--column", help="COLUMN=field (or COLUMN=extra) where the automatic match is wrong")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="confirm a replace that deletes features")]
        = False,
        lang: Annotated[str, typer.Option(help="language of the report and messages: zh or en")] = "zh",
    ) -> None:
        """Check FILE against LAYER and write it in one transaction (or nothing)."""
        from layers.importer import ImportOptions

        if lang not in ("zh", "en"):
            raise typer.BadParameter("zh or en", param_hint="--lang")
        console = Console(stderr=as_json)
        try:
            columns = dict(c.split("=", 1) for c in column or [] if "=" in c)
            options = ImportOptions(layer=layer, mode=mode, crs=crs, encoding=encoding, dataset=dataset,
                                    columns=columns)
            from api.cli.uploads import confirm_replace

            if not confirm_replace(layer, mode, yes=yes, dry_run=dry_run):
                typer.echo("nothing written")
                raise typer.Exit(1)
            try:
                report = import_file(file, options, dry_run=dry_run, show_progress=not as_json)
            except Exception as exc:  # a database fault the file caused: a problem, not a traceback
                from api.problems import database_problem

                problem = database_problem(exc)
                if problem is None:
                    raise
                raise problem from exc
        except LandecoError as exc:
            from api.problems import localised

            title, detail, extra = localised(lang, exc.code, exc.status, exc.title, str(exc), exc.extra())
            body = {"code": exc.code, "title": title, "detail": detail, **extra}
            if as_json:
                typer.echo(json.dumps(body, ensure_ascii=False, default=str))
            w = _WORDS["en" if lang == "en" else "zh"]
            typer.secho(f"{w['refused_file']} [{exc.code}]: {detail}", fg="red", err=True)
            if extra.get("hint"):
                typer.secho(f"{w['hint']}: {extra['hint']}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(report.as_dict(preview=False, lang=lang), ensure_ascii=False, default=str))
        else:
            print_report(report, console, lang)
        if report.errors:
            raise typer.Exit(1)
