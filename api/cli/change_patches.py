"""``landeco changes BEFORE AFTER``: change patches between two rasters; ``landeco changes summary``."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from api.cli.common import db_engine
from layers.errors import LandecoError


def register(app: typer.Typer) -> None:
    """Add ``landeco changes``."""
    changes = typer.Typer(help="Change patches (变化图斑): detect between two rasters, count by village",
                          no_args_is_help=True)
    app.add_typer(changes, name="changes")

    @changes.command("detect")
    def detect_command(
        before: Annotated[int, typer.Argument(help="id of the earlier raster (landeco raster list)")],
        after: Annotated[int, typer.Argument(help="id of the later raster, of the same kind")],
        threshold: Annotated[float, typer.Option(help="absolute change that counts (0.15 of NDVI)")] = 0.15,
        direction: Annotated[str, typer.Option(help="loss, gain or both")] = "both",
        min_mu: Annotated[float, typer.Option("--min-mu", help="smallest patch kept, in 亩")] = 1.0,
    ) -> None:
        """Compare two rasters and add their change patches as pending (a pair run again adds none twice)."""
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        from layers import change_patches as cp
        from layers.audit import cli_who

        try:
            params = cp.check_detection({"before": before, "after": after, "threshold": threshold,
                                         "direction": direction, "min_mu": min_mu})
            with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                          TimeElapsedColumn(), transient=True) as bar:
                task = bar.add_task("比较影像 comparing", total=1.0)

                def show(fraction: float, message: str) -> None:
                    bar.update(task, completed=fraction, description=message)

                out = cp.detect(db_engine(), before=params["before"], after=params["after"],
                                threshold=params["threshold"], direction=params["direction"],
                                min_mu=params["min_mu"], who=cli_who("changes detect"), on_progress=show)
        except LandecoError as exc:
            typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{out['inserted']} new change patches ({out['area_mu']:.2f} 亩), "
                   f"{out['known']} already known; rasters {out['before']} → {out['after']}")

    @changes.command("summary")
    def summary_command(
        start: Annotated[str | None, typer.Option(help="found on or after YYYY-MM-DD")] = None,
        end: Annotated[str | None, typer.Option(help="found on or before YYYY-MM-DD (status then)")] = None,
    ) -> None:
        """Patches found in a period by village and status: counts and 亩 (JSON)."""
        from layers.change_patches import change_patch_summary

        try:
            first = date.fromisoformat(start) if start else None
            last = date.fromisoformat(end) if end else None
        except ValueError:
            typer.secho("error [invalid_parameter]: dates are YYYY-MM-DD", fg="red", err=True)
            raise typer.Exit(1) from None
        with db_engine().connect() as conn:
            out = change_patch_summary(conn, start=first, end=last)
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
