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
    layer: Annotated[str, typer.Argument(help=f"layer id ({', '.join(LAYERS)}) or `all` for the overview")],
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write: .png or .pdf")],
    village: Annotated[str | None, typer.Option(help="village code: only its features, zoomed to it "
                                                "(LAYER `all` for every layer)")] = None,
    ids: Annotated[str | None, typer.Option(help="only these features (comma-separated ids)")] = None,
    bbox: Annotated[str | None, typer.Option(help="printed extent west,south,east,north in degrees")] = None,
    lang: Annotated[str, typer.Option(help="zh (default) or en")] = "zh",
    by: Annotated[str | None, typer.Option(help="field to colour by, e.g. survival_rate")] = None,
    on: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                help="map date (default today)")] = None,
) -> None:
    """Print a map of LAYER (or `all`) with title, legend, scale bar, north arrow and dates.

    The same maps as GET /maps.pdf, /maps/villages/{code}.pdf and /maps/{layer}.pdf?ids=….
    """
    # Folium and matplotlib load only when a map is printed, not on every `landeco` command
    from dataclasses import replace

    from api.maps import _parse_bbox, _parse_ids, _title_text, printed_map, township
    from layers.mapdata import MapScope, map_bounds, scope_for
    from layers.symbology import InvalidStyleFieldError, MapContext, style_fields

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf"):
        raise typer.BadParameter("the file must end in .png or .pdf", param_hint="--out")
    if lang not in ("zh", "en"):
        raise typer.BadParameter("zh or en", param_hint="--lang")
    try:
        settings = Settings()
        spec = None if layer == "all" else get_layer(layer)
        if by is not None and (spec is None or by not in style_fields(spec)):
            raise InvalidStyleFieldError(spec or get_layer("villages"), by)
        ctx = MapContext(lang=lang, on=on.date() if on else date.today(), by=by)
        layer_ids = list(LAYERS) if spec is None else [spec.id]
        scope = MapScope(bbox=_parse_bbox(bbox))
        if spec is None:
            title = _title_text("village" if village else "overview", lang, settings)
        else:
            title = spec.title(lang) + (f" · {spec.get_field(by).label(lang)}" if by else "")
        if ids is not None:
            if spec is None:
                raise typer.BadParameter("--ids needs a layer, not `all`", param_hint="--ids")
            selection = _parse_ids(ids)
            title = _title_text("selection", lang, settings, title=title, n=str(len(selection)))
            scope = replace(scope, selection=(spec.id, selection))
        url = database_url(settings)
        with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
            if village is not None:
                scope = replace(scope_for(conn, village=village), bbox=scope.bbox, selection=scope.selection)
            if scope.bbox is None and (village is not None or ids is not None):
                (s, w), (n, e) = map_bounds(conn, scope)
                pad = max(e - w, n - s, 0.002) * 0.05
                scope = replace(scope, bbox=(w - pad, s - pad, e + pad, n + pad))
            body = printed_map(conn, layer_ids, ctx, fmt, title=title,  # type: ignore[arg-type]
                               township_name=township(settings, lang), scope=scope)
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
