"""``landeco map LAYER --out FILE``: a printed map (PNG or PDF) for the township's reports."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from layers.errors import LandecoError
from layers.registry import LAYERS, get_layer
from layers.settings import Settings
from layers.store.database import database_url, engine_for

__all__ = ["register"]


def map_command(
    layer: Annotated[str, typer.Argument(help=f"layer id: {', '.join(LAYERS)}")],
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write: .png or .pdf")],
    lang: Annotated[str, typer.Option(help="zh (default) or en")] = "zh",
    by: Annotated[str | None, typer.Option(help="field to colour by, e.g. survival_rate")] = None,
    on: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                help="map date (default today)")] = None,
) -> None:
    """Print a map of LAYER with title, legend, scale bar and north arrow (Chinese by default)."""
    # Folium and matplotlib load only when a map is printed, not on every `landeco` command
    from api.maps import printed_map
    from layers.symbology import InvalidStyleFieldError, MapContext, style_fields

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf"):
        raise typer.BadParameter("the file must end in .png or .pdf", param_hint="--out")
    if lang not in ("zh", "en"):
        raise typer.BadParameter("zh or en", param_hint="--lang")
    try:
        spec = get_layer(layer)
        if by is not None and by not in style_fields(spec):
            raise InvalidStyleFieldError(spec, by)
        ctx = MapContext(lang=lang, on=on.date() if on else date.today(), by=by)
        url = database_url(Settings())
        with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
            body = printed_map(conn, spec, ctx, fmt)  # type: ignore[arg-type]
    except LandecoError as exc:
        typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(body)
    tmp.replace(out)  # nothing half-written
    typer.echo(f"{out} ({len(body) // 1024} KiB)")


def register(app: typer.Typer) -> None:
    """Add ``landeco map`` to ``app``."""
    app.command("map")(map_command)
