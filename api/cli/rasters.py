"""``landeco raster add FILE --kind ndvi --date 2022-07-15``, ``list``, ``show``, ``delete``, ``zonal``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from layers.errors import LandecoError

_STAGES = {"checking": "检查 checking", "converting": "转换为 COG converting",
           "overviews": "生成金字塔 overviews", "storing": "保存 storing", "stored": "已保存 stored"}


def _engine_settings():
    from layers.settings import Settings
    from layers.store.database import database_url, engine_for

    settings = Settings()
    return engine_for(database_url(settings).render_as_string(hide_password=False)), settings


def _fail(exc: LandecoError) -> typer.Exit:
    typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        typer.secho(f"hint: {hint}", fg="yellow", err=True)
    return typer.Exit(1)


def _line(r) -> str:
    bands = f"×{r.band_count}" if r.band_count > 1 else ""
    crs = r.crs if len(r.crs) < 16 else "…"
    size = f"{r.width}×{r.height}{bands}"
    return f"{r.id:>5}  {r.kind:<6} {r.acquired.isoformat()}  {size}  {r.res_x:g} {crs}  {r.source or ''}"


def register(app: typer.Typer) -> None:
    """Add the ``landeco raster`` group."""
    raster = typer.Typer(help="Rasters (NDVI, vegetation cover, DEM …) stored as Cloud-Optimized GeoTIFFs.",
                         no_args_is_help=True)
    app.add_typer(raster, name="raster")

    @raster.command("add")
    def add_command(
        file: Annotated[Path, typer.Argument(help="a GeoTIFF", exists=True, dir_okay=False, readable=True)],
        kind: Annotated[str, typer.Option(help="ndvi, fvc, dem or other")],
        date: Annotated[str, typer.Option("--date", help="acquisition date, YYYY-MM-DD")],
        source: Annotated[str | None, typer.Option(help="where it comes from (sensor, provider)")] = None,
        band_meaning: Annotated[str | None, typer.Option(help="what the band values mean")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the raster as JSON")] = False,
    ) -> None:
        """Check a GeoTIFF, store it as a COG and register it (a progress bar follows the conversion)."""
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        from layers.audit import cli_who
        from layers.rasters import add_raster

        engine, settings = _engine_settings()
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            TimeElapsedColumn(), disable=as_json, transient=False)
        task = progress.add_task(_STAGES["checking"], total=1000)

        def step(fraction: float, stage: str) -> None:
            progress.update(task, completed=int(fraction * 1000), description=_STAGES.get(stage, stage))

        try:
            with progress:
                r = add_raster(engine, settings, file, kind=kind, acquired=date, source=source,
                               band_meaning=band_meaning, who=cli_who("raster add"), on_progress=step)
        except LandecoError as exc:
            raise _fail(exc) from exc
        if as_json:
            typer.echo(json.dumps(r.as_json(), ensure_ascii=False))
        else:
            typer.echo(f"raster {r.id} added (已添加): {r.kind} {r.acquired.isoformat()}, "
                       f"{r.width}×{r.height} pixels, {r.crs}, {r.bytes:,} bytes → {r.uri}")

    @raster.command("list")
    def list_command(
        kind: Annotated[str | None, typer.Option(help="only this kind: ndvi, fvc, dem or other")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON, one raster a line")] = False,
    ) -> None:
        """The rasters by kind and date."""
        from layers.rasters import list_rasters

        engine, _ = _engine_settings()
        try:
            with engine.connect() as conn:
                found = list_rasters(conn, kind=kind)
        except LandecoError as exc:
            raise _fail(exc) from exc
        for r in found:
            typer.echo(json.dumps(r.as_json(), ensure_ascii=False) if as_json else _line(r))
        if not found and not as_json:
            typer.echo("no rasters (没有栅格)")

    @raster.command("show")
    def show_command(raster_id: Annotated[str, typer.Argument(help="the raster's id")]) -> None:
        """One raster's metadata (JSON), with where its COG is stored."""
        from layers.rasters import get_raster

        engine, _ = _engine_settings()
        try:
            with engine.connect() as conn:
                r = get_raster(conn, raster_id)
        except LandecoError as exc:
            raise _fail(exc) from exc
        typer.echo(json.dumps({**r.as_json(), "uri": r.uri}, ensure_ascii=False, indent=2))

    @raster.command("delete")
    def delete_command(
        raster_id: Annotated[str, typer.Argument(help="the raster's id")],
        yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    ) -> None:
        """Remove a raster: its COG, its row and the zonal statistics computed from it."""
        from layers.audit import cli_who
        from layers.rasters import delete_raster, get_raster

        engine, _ = _engine_settings()
        try:
            with engine.connect() as conn:
                r = get_raster(conn, raster_id)
            if not yes and not typer.confirm(f"remove raster {r.id} ({r.kind} {r.acquired.isoformat()}) "
                                             "and its zonal statistics? 删除该栅格？"):
                raise typer.Exit(1)
            delete_raster(engine, r.id, who=cli_who("raster delete"))
        except LandecoError as exc:
            raise _fail(exc) from exc
        typer.echo(f"raster {r.id} removed (已删除)")

    @raster.command("zonal")
    def zonal_command(
        raster_id: Annotated[int, typer.Argument(help="the raster's id")],
        layer: Annotated[str, typer.Argument(help="the layer summarized, e.g. caragana_plots")],
        ring: Annotated[float | None, typer.Option(help="also a ring this many metres outside")] = None,
        stats: Annotated[str | None, typer.Option(
            help="comma-separated: mean, median, min, max, stdev, area_m2, area_mu, share_above "
                 "(default: all but share_above)")] = None,
        threshold: Annotated[float | None, typer.Option(help="share_above counts pixels above this")] = None,
        where: Annotated[str | None, typer.Option(help="only these features (CQL2)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    ) -> None:
        """Zonal statistics of LAYER's features over a raster, stored as the web's zonal job stores them."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from layers.zonal import run_zonal

        engine, _ = _engine_settings()
        names = [s.strip() for s in stats.split(",") if s.strip()] if stats is not None else None
        columns = (TextColumn("分区统计 zonal"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, transient=True, disable=as_json) as bar:
                task = bar.add_task("zonal", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = run_zonal(engine, raster_id=raster_id, layer=layer, stats=names, where=where,
                                    threshold=threshold, ring_m=ring, on_progress=progress)
        except LandecoError as exc:
            raise _fail(exc) from exc
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False))
            return
        mean = summary["mean_of_means"]
        tail = "" if mean is None else f"; mean of the means {mean:.4f}"
        typer.echo(f"raster {summary['raster_id']} ({summary['kind']} {summary['acquired']}) × "
                   f"{summary['layer']}: {summary['features']:,} features, "
                   f"{summary['features_with_values']:,} with values, {summary['rows']:,} rows stored "
                   f"({', '.join(summary['zones'])}){tail}")
