"""``landeco query``, ``landeco export``, ``landeco stats``, ``landeco conflicts``: planners' commands.

The same questions as ``POST /query``, ``GET /export``, ``GET /stats`` and ``GET /conflicts``,
answered from the configured database (the local cluster or LANDECO_DATABASE_URL).
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from layers.conflicts import CHECKS, run_check
from layers.errors import LandecoError
from layers.query import QuerySpec, feature_collection, run_query
from layers.registry import LAYERS
from layers.settings import Settings
from layers.store.database import database_url, engine_for

__all__ = ["register"]

_FORMATS = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".zip": "shp", ".csv": "csv",
            ".xlsx": "xlsx"}


@contextmanager
def _connection():
    """A connection to the configured database; domain errors end the command with their code."""
    try:
        url = database_url(Settings())
        with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
            yield conn
    except LandecoError as exc:
        typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _move(src: Path, out: Path) -> None:
    """Put the written file at ``out`` atomically and remove its temporary folder."""
    tmp = out.with_name(out.name + ".part")
    shutil.copyfile(src, tmp)
    tmp.replace(out)
    shutil.rmtree(src.parent, ignore_errors=True)
    typer.echo(f"{out} ({max(1, out.stat().st_size // 1024)} KiB)")


def _format(out: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    if out.suffix.lower() not in _FORMATS:
        raise typer.BadParameter(f"give --format or a file ending in {', '.join(_FORMATS)}",
                                 param_hint="--out")
    return _FORMATS[out.suffix.lower()]


def _where(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: write FIELD=VALUE or FIELD=A,B", param_hint="--where")
        value = value.replace("，", ",")  # a Chinese keyboard's comma
        out[name.strip()] = value.split(",") if "," in value else value
    return out


def query_command(
    layers: Annotated[list[str], typer.Argument(help=f"layer ids: {', '.join(LAYERS)}")],
    area_min: Annotated[float | None, typer.Option("--min", help="smallest area, in --unit")] = None,
    area_max: Annotated[float | None, typer.Option("--max", help="largest area, in --unit")] = None,
    unit: Annotated[str, typer.Option(help="mu (亩, default), ha or m2")] = "mu",
    village: Annotated[list[str] | None, typer.Option(help="village code or name (repeatable)")] = None,
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north in lon/lat")] = None,
    geometry: Annotated[Path | None, typer.Option(help="GeoJSON file of the place")] = None,
    buffer_m: Annotated[float | None, typer.Option("--buffer", help="buffer around the place (m)")] = None,
    where: Annotated[list[str] | None, typer.Option(help="FIELD=VALUE or FIELD=A,B (repeatable)")] = None,
    sort: Annotated[str | None, typer.Option(help="field, '-' first for descending, e.g. -area_mu")] = None,
    limit: Annotated[int | None, typer.Option(help="features per layer")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write a file (.geojson .gpkg .zip "
                                             ".csv .xlsx) instead of printing totals")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="geojson, gpkg, shp, csv, xlsx")] = None,
    crs: Annotated[int, typer.Option(help="EPSG of the file: 4326, 4490 or 4545")] = 4326,
    encoding: Annotated[str, typer.Option(help="shapefile encoding: utf-8 or gbk")] = "utf-8",
    as_json: Annotated[bool, typer.Option("--json", help="print the GeoJSON answer")] = False,
) -> None:
    """Features of LAYERS by size, place and attributes: totals in 亩, 万亩 and ha, or a file."""
    from layers.export import export_query  # its writers (GDAL, folium) load only when asked

    place: dict[str, Any] | None = None
    if village:
        place = {"villages": village}
    elif bbox:
        try:
            place = {"bbox": [float(x) for x in bbox.split(",")]}
        except ValueError:
            raise typer.BadParameter("four numbers: west,south,east,north", param_hint="--bbox") from None
    elif geometry:
        place = {"geometry": json.loads(geometry.read_text("utf-8"))}
    body = {"layers": layers, "place": place, "buffer_m": buffer_m, "where": _where(where or []),
            "sort": sort, "limit": limit}
    if area_min is not None or area_max is not None:
        body["area"] = {"min": area_min, "max": area_max, "unit": unit}
    try:
        spec = QuerySpec(**body)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc).splitlines()[1] if "\n" in str(exc) else str(exc)) from None
    with _connection() as conn:
        if out is not None:
            written = export_query(conn, spec, _format(out, fmt), crs=crs, encoding=encoding)
            _move(written.path, out)
            return
        result = run_query(conn, spec)
    if as_json:
        typer.echo(feature_collection(result))
        return
    typer.echo(f"{'layer':<18} {'count':>9} {'亩':>14} {'万亩':>10} {'ha':>12}")
    for r in result.layers:
        s = r.summary()
        if r.layer.is_linear:  # a line layer has a length, not an area
            sizes = f"{s['length_m']:>14,.2f} m {s['length_wan_m']:>8,.4f} 万米"
        else:
            sizes = f"{s['area_mu']:>14,.2f} {s['area_wan_mu']:>10,.4f} {s['area_ha']:>12,.2f}"
        clipped = "  (clipped to the place)" if r.clipped else ""
        typer.echo(f"{r.layer.id:<18} {s['count']:>9,} {sizes}{clipped}")


def export_command(
    layer: Annotated[str, typer.Argument(help=f"layer id: {', '.join(LAYERS)}")],
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write")],
    fmt: Annotated[str | None, typer.Option("--format", help="geojson, gpkg, shp (zip), csv, xlsx; "
                                            "default from the file's suffix")] = None,
    crs: Annotated[int, typer.Option(help="EPSG: 4326, 4490 or 4545")] = 4326,
    encoding: Annotated[str, typer.Option(help="shapefile encoding: utf-8 or gbk")] = "utf-8",
    geometry: Annotated[str, typer.Option(help="CSV geometry: wkt or none")] = "wkt",
    lang: Annotated[str, typer.Option(help="XLSX headers: zh or en")] = "zh",
) -> None:
    """Write a whole LAYER to a file planners open (QGIS, ArcGIS, Excel)."""
    from layers.export import export_layer

    with _connection() as conn:
        written = export_layer(conn, layer, _format(out, fmt), crs=crs, encoding=encoding,
                               csv_geometry=geometry, lang=lang)
    _move(written.path, out)


def stats_command(
    layer: Annotated[str, typer.Argument(help=f"layer id: {', '.join(LAYERS)}")],
    by: Annotated[str | None, typer.Option(help="fields to group by, e.g. village_code,planted_year")] = None,
    on: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="grazing bans in force "
                                                "on this day; the start of --expiring-days")] = None,
    expiring_days: Annotated[int | None, typer.Option(help="leases: active, ending within N days")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help=".csv, .xlsx or .json file")] = None,
    lang: Annotated[str, typer.Option(help="headers and labels: zh or en")] = "zh",
) -> None:
    """Totals of LAYER per group: count, 亩, 万亩, ha and the layer's measures."""
    from layers.stats import layer_stats, to_csv, to_json, to_xlsx

    groups = [b.strip() for b in by.split(",") if b.strip()] if by else []
    with _connection() as conn:
        table = layer_stats(conn, layer, groups, on=on.date() if on else None, expiring_days=expiring_days)
    if out is None:
        typer.echo(to_csv(table, lang).decode("utf-8-sig"), nl=False)
        return
    suffix = out.suffix.lower()
    body = to_xlsx(table, lang) if suffix == ".xlsx" else to_csv(table, lang) if suffix == ".csv" \
        else to_json(table).encode("utf-8")
    out.write_bytes(body)
    typer.echo(f"{out} ({len(table.rows)} rows)")


def conflicts_command(
    check: Annotated[str | None, typer.Argument(help=f"check: {', '.join(CHECKS)}; none lists them")] = None,
    on: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="day (default today)")] = None,
    village: Annotated[str | None, typer.Option(help="only this village (code)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="GeoJSON file of the pieces")] = None,
) -> None:
    """Overlaps between layers (leases on subsidence, in grazing bans …) with their area in 亩."""
    if check is None:
        for c in CHECKS.values():
            typer.echo(f"{c.id:<24} {c.zh} · {c.en}")
        return
    with _connection() as conn:
        text = run_check(conn, check, on=on.date() if on else date.today(), village=village)
    if out is not None:
        out.write_text(text, "utf-8")
    s = json.loads(text)["summary"]
    typer.echo(f"{s['title_zh']} · {s['title_en']}: {s['count']} pieces, {s['area_mu']:,.2f} 亩 "
               f"({s['area_ha']:,.2f} ha)")


def register(app: typer.Typer) -> None:
    """Add ``query``, ``export``, ``stats`` and ``conflicts`` to ``app``."""
    app.command("query")(query_command)
    app.command("export")(export_command)
    app.command("stats")(stats_command)
    app.command("conflicts")(conflicts_command)

