"""Exports of a layer or a query's answer, in the files planners use (see :mod:`gis.export`).

Machine formats (GeoPackage, GeoJSON, shapefile) keep codes and field names, so that an
exported file uploads back: columns are the layer's declared fields plus its stored sizes
(``area_m2``/``area_mu``, or ``length_m``; and ``area_inside_mu`` for a place query);
shapefile column names follow one rule (:func:`shapefile_names`). Files people open (XLSX,
CSV for Excel) show words instead: labels of coded values, village names beside their codes,
percentages, units in the headers and a totals row (:func:`sheet_of`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
import sqlalchemy as sa

from gis.errors import InputError
from gis.export import CRSS, ENCODINGS, FORMATS, write_frames
from gis.sheets import Sheet, SheetColumn, write_csv, write_xlsx
from layers.errors import BadRequestError
from layers.model import CODE, NOTE, Layer
from layers.query import QuerySpec, compile_query, rows_sql
from layers.registry import get_layer

__all__ = [
    "CHUNK",
    "MEASURE_DBF_NAMES",
    "ExportError",
    "ExportFile",
    "ExportTooLargeError",
    "export_layer",
    "export_query",
    "frame_of",
    "layer_frame",
    "layer_frames",
    "readable_rows",
    "shapefile_names",
    "sheet_of",
    "stream_frames",
]


class ExportError(BadRequestError):
    """The export cannot be written as asked (format, CRS, encoding); ``code`` says which."""

    title = "Invalid export"

    def __init__(self, err: InputError) -> None:
        super().__init__(err.detail)
        self.code = err.code
        self.hint = err.hint

    def extra(self) -> dict[str, object]:
        """What would work instead."""
        return {"hint": self.hint} if self.hint else {}


@dataclass(frozen=True)
class ExportFile:
    """A written export: its path (in a temporary folder the caller removes), name and type."""

    path: Path
    filename: str
    media_type: str


#: DBF names of the sizes the database keeps, and of the part inside a place query's place
MEASURE_DBF_NAMES = {"area_m2": "AREA_M2", "area_mu": "AREA_MU", "length_m": "LENGTH_M",
                     "area_inside_mu": "IN_AREA_MU", "length_inside_m": "IN_LEN_M"}


def shapefile_names(layer: Layer) -> dict[str, str]:
    """Column name → its shapefile (DBF) name, all by one rule.

    The rule: the name upper-cased when it fits the DBF's 10 bytes (``CODE``, ``METHOD``,
    ``CONTRACTOR``); otherwise the field's declared ASCII alias of at most 10 characters,
    upper-cased (``planted_year`` → ``YEAR``, ``village_code`` → ``XZQDM``); the sizes
    as in :data:`MEASURE_DBF_NAMES`; ``id`` as ``ID``. The importer reads every one of
    them back (names and aliases match case-insensitively).
    """
    out = {"id": "ID"}
    for f in layer.all_fields:
        if len(f.name) <= 10:
            out[f.name] = f.name.upper()
            continue
        short = [a for a in f.aliases if a.isascii() and len(a) <= 10]
        out[f.name] = (short[-1] if short else f.name[:10]).upper()
    for m in layer.stored_measures:
        out[m.name] = MEASURE_DBF_NAMES.get(m.name, m.name[:10].upper())
    out[layer.inside_name] = MEASURE_DBF_NAMES.get(layer.inside_name, layer.inside_name[:10].upper())
    return out


#: rows read from PostGIS and written at a time, so that a large layer never sits in memory whole
CHUNK = 10_000
_DTYPES = {"integer": "Int64", "real": "float64", "text": object, "date": object, "monthday": object}


def frame_of(layer: Layer, rows: list[dict[str, Any]], clipped: bool = False) -> gpd.GeoDataFrame:
    """A lon/lat GeoDataFrame of rows with WKB ``geometry``; dates as ISO text.

    Column types come from the layer's declaration, not from the values, so that every
    chunk of one export has the same schema (an all-empty column stays numeric).
    """
    geoms = shapely.from_wkb([bytes(r.pop("geometry")) for r in rows]) if rows else []
    for r in rows:
        for k, v in r.items():
            if isinstance(v, date):
                r[k] = v.isoformat()
    sizes = [m.name for m in layer.stored_measures]
    columns = ["id", *(f.name for f in layer.all_fields), *sizes]
    if clipped:
        columns.append(layer.inside_name)
    frame = gpd.GeoDataFrame(rows, columns=columns, geometry=list(geoms), crs=4326)
    types = {"id": "int64", **{c: "float64" for c in columns if c in sizes or "_inside_" in c}}
    types.update({f.name: _DTYPES[f.type] for f in layer.all_fields})
    return frame.astype({c: types[c] for c in columns})


class ExportTooLargeError(BadRequestError):
    """The export would hold more features than one file may (``LANDECO_EXPORT_MAX_FEATURES``)."""

    code = "export_too_large"
    status = 413
    title = "Export too large"


def stream_frames(conn: sa.Connection, layer: Layer, sql: str, params: dict[str, Any] | None = None,
                  clipped: bool = False, max_features: int | None = None) -> Iterator[gpd.GeoDataFrame]:
    """The rows of ``sql`` as frames of at most :data:`CHUNK` features (a server-side cursor).

    More than ``max_features`` rows stop the export with :class:`ExportTooLargeError` (the
    half-written file is removed by the caller).
    """
    result = conn.execution_options(stream_results=True, max_row_buffer=CHUNK).exec_driver_sql(
        sql, params or {})
    empty = True
    seen = 0
    for part in result.partitions(CHUNK):
        empty = False
        seen += len(part)
        if max_features is not None and seen > max_features:
            raise ExportTooLargeError(f"the export holds more than {max_features:,} features: narrow it "
                                      "(a query by place or attributes)")
        yield frame_of(layer, [dict(r._mapping) for r in part], clipped)
    if empty:  # the file still gets the layer and its columns
        yield frame_of(layer, [], clipped)


def layer_frames(conn: sa.Connection, layer: Layer, max_features: int | None = None
                 ) -> Iterator[gpd.GeoDataFrame]:
    """Every feature of ``layer``, in chunks."""
    cols = ", ".join(["id", *(f.name for f in layer.all_fields), *(m.name for m in layer.stored_measures)])
    return stream_frames(conn, layer, f"SELECT {cols}, ST_AsBinary(geom) AS geometry FROM {layer.table} "
                         "ORDER BY id", max_features=max_features)


def layer_frame(conn: sa.Connection, layer: Layer) -> gpd.GeoDataFrame:
    """Every feature of ``layer`` in one frame."""
    return pd.concat(list(layer_frames(conn, layer)), ignore_index=True)


def _unit(unit: str | None, lang: str) -> str:
    if not unit:
        return ""
    return f"（{unit}）" if lang != "en" else f" ({_unit_en(unit)})"


def sheet_of(layer: Layer, lang: str, clipped: bool = False) -> Sheet:
    """The columns a person reads for ``layer``: labels, village name beside its code, units.

    Coded values show as their words (``划区围封``), a rate with unit ``%`` as a percentage,
    sizes to sensible decimals; the totals row sums sizes, seedlings, households and money
    and gives rates as the mean weighted by area.
    """
    en = lang == "en"
    how = {m.name: m.how for m in layer.field_measures()}
    cols = [SheetColumn("code", CODE.label(lang))]
    if layer.has_village:
        cols += [SheetColumn("village_name", "Village" if en else "嘎查村"),
                 SheetColumn("village_code", "Village code" if en else "嘎查村代码")]
    for f in layer.fields:
        if f.type == "integer":
            kind, digits = "integer", 0
        elif f.type == "real":
            kind, digits = ("percent", 3) if f.unit == "%" else ("number", 2)
        else:
            kind, digits = "text", 0
        unit = "" if f.unit == "%" else _unit(f.unit, lang)
        header = f.label(lang) + ((" (%)" if en else "（%）") if f.unit == "%" else unit)
        cols.append(SheetColumn(f.name, header, kind, digits, how.get(f.name)))  # type: ignore[arg-type]
    cols.append(SheetColumn("note", NOTE.label(lang)))
    for m in layer.stored_measures:
        digits = 0 if m.name == "area_m2" else 1 if m.name == "length_m" else 2
        header = (m.en if en else m.zh) + _unit(m.unit, lang)
        cols.append(SheetColumn(m.name, header, "number", digits, "sum"))
    if clipped:
        inside = ("Length inside (m)" if en else "范围内长度（米）") if layer.is_linear else \
            ("Area inside (mu)" if en else "范围内面积（亩）")
        cols.append(SheetColumn(layer.inside_name, inside, "number", 2, "sum"))
    cols.append(SheetColumn("id", "ID", "integer"))
    size = layer.size.name if layer.size else None
    return Sheet(layer.title(lang), cols, "Total ({n} features)" if en else "合计（{n} 个）", weight=size)


def readable_rows(frame: pd.DataFrame, layer: Layer, lang: str, villages: dict[str, str],
                  wkt: bool = False) -> list[dict[str, Any]]:
    """A chunk's rows as people read them: words for codes, the village's name beside its code."""
    coded = {f.name: {c.value: (c.en if lang == "en" else c.zh) for c in f.choices}
             for f in layer.all_fields if f.choices}
    geoms = shapely.to_wkt(frame.geometry.values, rounding_precision=-1) if wkt and len(frame) else None
    rows = pd.DataFrame(frame.drop(columns="geometry")).to_dict("records")
    for i, r in enumerate(rows):
        for name, words in coded.items():
            v = r.get(name)
            if isinstance(v, str):
                r[name] = words.get(v, v)
        if layer.has_village:
            r["village_name"] = villages.get(r.get("village_code")) if r.get("village_code") else None
        if geoms is not None:
            r["wkt"] = geoms[i]
    return rows


def _villages(conn: sa.Connection) -> dict[str, str]:
    return {c: n for c, n in conn.execute(sa.text("SELECT code, name FROM villages"))}


def _write_sheets(frames: dict[str, tuple[Layer, Iterable[gpd.GeoDataFrame]]], fmt: str, path: Path,
                  crs: int, csv_geometry: str, lang: str, villages: dict[str, str], clipped: bool) -> None:
    """CSV or XLSX for people: :func:`sheet_of` columns, a totals row per layer."""
    wkt = fmt == "csv" and csv_geometry == "wkt"

    def rows(layer: Layer, chunks: Iterable[gpd.GeoDataFrame]) -> Iterator[list[dict[str, Any]]]:
        for chunk in chunks:
            if wkt and crs != 4326:
                chunk = chunk.to_crs(crs)
            yield readable_rows(chunk, layer, lang, villages, wkt)

    sheets = [(sheet_of(layer, lang, clipped), rows(layer, chunks)) for layer, chunks in frames.values()]
    if fmt == "xlsx":
        write_xlsx(sheets, path)
        return
    lead = SheetColumn("layer", "Layer" if lang == "en" else "图层") if len(sheets) > 1 else None
    extra = [SheetColumn("wkt", "WKT")] if wkt else []
    with path.open("w", encoding="utf-8-sig", newline="") as out:  # the BOM tells Excel it is UTF-8
        if lead is None:
            write_csv(sheets, out, None, extra)
        else:
            write_csv([(sh, _with_layer(sh.title, it)) for sh, it in sheets], out, lead, extra)


def _with_layer(title: str, chunks: Iterable[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """Rows of several layers in one CSV say which layer each is."""
    for chunk in chunks:
        yield [{**r, "layer": title} for r in chunk]


def _write(frames: dict[str, tuple[Layer, Iterable[gpd.GeoDataFrame]]], fmt: str, stem: str, crs: int,
           encoding: str, csv_geometry: str, lang: str, villages: dict[str, str] | None = None,
           clipped: bool = False, title: str | None = None) -> ExportFile:
    if fmt == "shp":
        frames = {n: (lay, (f.rename(columns=shapefile_names(lay)) for f in chunks))
                  for n, (lay, chunks) in frames.items()}
    folder = Path(tempfile.mkdtemp(prefix="landeco-export-"))
    suffix, media = FORMATS[fmt]
    try:
        if fmt in ("csv", "xlsx"):
            # files people open get a name they read (柠条地块.xlsx); machine formats keep the id
            path = folder / f"{title if title and lang != 'en' else stem}{suffix}"
            _write_sheets(frames, fmt, path, crs, csv_geometry, lang, villages or {}, clipped)
        else:
            path = write_frames({n: f for n, (_, f) in frames.items()}, fmt, folder / f"{stem}{suffix}",
                                crs=crs, encoding=encoding, csv_geometry=csv_geometry)
    except InputError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise ExportError(err) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ExportFile(path, path.name, media)


def export_layer(conn: sa.Connection, layer_id: str, fmt: str, *, crs: int = 4326, encoding: str = "utf-8",
                 csv_geometry: str = "wkt", lang: str = "zh", max_features: int | None = None) -> ExportFile:
    """Write a whole layer to a file."""
    layer = get_layer(layer_id)
    _precheck(fmt, crs, encoding)
    villages = _villages(conn) if fmt in ("csv", "xlsx") else None
    return _write({layer.id: (layer, layer_frames(conn, layer, max_features))}, fmt, layer.id, crs, encoding,
                  csv_geometry, lang, villages, title=layer.zh)


def export_query(conn: sa.Connection, spec: QuerySpec, fmt: str, *, crs: int = 4326,
                 encoding: str = "utf-8", csv_geometry: str = "wkt", lang: str = "zh",
                 max_features: int | None = None) -> ExportFile:
    """Write every feature answering ``spec`` (all of them unless it sets ``limit``)."""
    _precheck(fmt, crs, encoding)
    compiled = compile_query(conn, spec, for_export=True)
    frames = {c.layer.id: (c.layer, stream_frames(conn, c.layer, rows_sql(c), c.params, c.clipped,
                                                  max_features))
              for c in compiled}
    villages = _villages(conn) if fmt in ("csv", "xlsx") else None
    clipped = any(c.clipped for c in compiled)
    return _write(frames, fmt, "query", crs, encoding, csv_geometry, lang, villages, clipped, "查询结果")


def _precheck(fmt: str, crs: int, encoding: str) -> None:
    """Refuse a bad format, CRS or encoding before reading anything."""
    if fmt not in FORMATS:
        raise ExportError(InputError("unknown_format", f"no export format {fmt!r}", hint=", ".join(FORMATS)))
    if crs not in CRSS:
        raise ExportError(InputError("unsupported_crs", f"EPSG:{crs} is not offered",
                                     hint="EPSG:4326, 4490 or 4545"))
    if encoding not in ENCODINGS:
        raise ExportError(InputError("unknown_encoding", f"no shapefile encoding {encoding!r}",
                                     hint="utf-8 or gbk"))


def _unit_en(unit: str | None) -> str:
    """A unit in English; symbology (and with it the map libraries) is loaded only when asked."""
    from layers.symbology import unit_label

    return unit_label(unit, "en")
