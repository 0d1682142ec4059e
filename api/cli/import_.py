"""``landeco import FILE --layer L``: check a surveyor's file and write it, all or nothing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
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


def print_report(report: Report, console: Console) -> None:
    """The same report as the web page, as tables."""
    d = report.as_dict(preview=False)
    c = d["counts"]
    console.print(f"[bold]{d['file']}[/bold] → {d['layer']} ({d['mode']}); dataset {d['dataset']} "
                  f"({d['format']}, {d['geometry_type']})")
    enc = d["encoding"] or {}
    crs = d["crs"] or {}
    console.print(f"encoding {enc.get('encoding')} ({enc.get('source')}); CRS {crs.get('name')} "
                  f"EPSG:{crs.get('epsg')} ({crs.get('source')})")
    console.print(f"features {c['features']}, importable {c['importable']}, refused {c['refused']}, "
                  f"errors {c['errors']}, warnings {c['warnings']}")
    mapping = Table("column", "field", "how", title="columns")
    for m in d["mapping"]:
        mapping.add_row(m["column"], m["field"] or "extra", m["how"])
    console.print(mapping)
    if d["problems"]:
        problems = Table("feature", "code", "field", "message", title="problems")
        for p in d["problems"][:200]:
            problems.add_row("" if p["index"] is None else str(p["index"]), p["code"], p["field"] or "",
                             p["message"])
        console.print(problems)
        if d["problems_listed"] > 200 or c["errors"] > d["problems_listed"]:
            console.print(f"… problems by code: {json.dumps(d['problem_codes'])}")
    if d["committed"]:
        console.print(f"[green]written[/green]: {d['written']}")
    elif c["errors"]:
        console.print("[red]nothing written[/red]: correct the errors and import again")
    else:
        console.print("dry run: nothing written")


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
    ) -> None:
        """Check FILE against LAYER and write it in one transaction (or nothing)."""
        from layers.importer import ImportOptions

        console = Console(stderr=as_json)
        try:
            columns = dict(c.split("=", 1) for c in column or [] if "=" in c)
            options = ImportOptions(layer=layer, mode=mode, crs=crs, encoding=encoding, dataset=dataset,
                                    columns=columns)
            from api.cli.uploads import confirm_replace

            if not confirm_replace(layer, mode, yes=yes, dry_run=dry_run):
                typer.echo("nothing written")
                raise typer.Exit(1)
            report = import_file(file, options, dry_run=dry_run, show_progress=not as_json)
        except LandecoError as exc:
            body = {"code": exc.code, "detail": str(exc), **exc.extra()}
            if as_json:
                typer.echo(json.dumps(body, ensure_ascii=False))
            typer.secho(f"refused [{exc.code}]: {exc}", fg="red", err=True)
            hint = exc.extra().get("hint")
            if hint:
                typer.secho(f"hint: {hint}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(report.as_dict(preview=False), ensure_ascii=False, default=str))
        else:
            print_report(report, console)
        if report.errors:
            raise typer.Exit(1)
