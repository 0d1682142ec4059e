"""Exports of a layer or a query's answer, in the files planners use (see :mod:`gis.export`).

Columns are the layer's declared fields plus its stored sizes (``area_m2``/``area_mu``, or ``length_m``; and
``area_inside_mu`` for a place query). A shapefile column name holds 10 bytes, so
long names are written as the short alias the layer declares (``HH_TOTAL``), which
the importer maps back.
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
from layers.errors import BadRequestError
from layers.model import Layer
from layers.query import QuerySpec, compile_query, rows_sql
from layers.registry import get_layer

__all__ = ["CHUNK", "ExportError", "ExportFile", "ExportTooLargeError", "export_layer", "export_query",
           "frame_of", "layer_frame", "layer_frames", "shapefile_names", "stream_frames"]


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


def shapefile_names(layer: Layer) -> dict[str, str]:
    """Field name → a DBF column name of at most 10 ASCII bytes (a declared short alias)."""
    out = {}
    for f in layer.all_fields:
        if len(f.name) <= 10:
            continue
        short = [a for a in f.aliases if a.isascii() and len(a) <= 10]
        if short:
            out[f.name] = short[-1]
    return out


#: rows read from PostGIS and written at a time, so that a large layer never sits in memory whole
CHUNK = 50_000
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


def _headers(layer: Layer, lang: str) -> dict[str, str]:
    names = {f.name: f"{f.label(lang)}" + (f" ({f.unit})" if f.unit else "") for f in layer.all_fields}
    zh = lang != "en"
    names["id"] = "ID"
    for m in layer.stored_measures:
        names[m.name] = f"{m.zh} ({m.unit})" if zh else f"{m.en} ({_unit_en(m.unit)})"
    names.update(area_inside_mu="范围内面积 (亩)" if zh else "Area inside (mu)",
                 length_inside_m="范围内长度 (m)" if zh else "Length inside (m)")
    return names


def _write(frames: dict[str, tuple[Layer, Iterable[gpd.GeoDataFrame]]], fmt: str, stem: str, crs: int,
           encoding: str, csv_geometry: str, lang: str) -> ExportFile:
    if fmt == "shp":
        frames = {n: (lay, (f.rename(columns=shapefile_names(lay)) for f in chunks))
                  for n, (lay, chunks) in frames.items()}
    folder = Path(tempfile.mkdtemp(prefix="landeco-export-"))
    suffix, media = FORMATS[fmt]
    try:
        path = write_frames({n: f for n, (_, f) in frames.items()}, fmt, folder / f"{stem}{suffix}",
                            crs=crs, encoding=encoding, csv_geometry=csv_geometry,
                            headers={n: _headers(lay, lang) for n, (lay, _) in frames.items()})
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
    return _write({layer.id: (layer, layer_frames(conn, layer, max_features))}, fmt, layer.id, crs, encoding,
                  csv_geometry, lang)


def export_query(conn: sa.Connection, spec: QuerySpec, fmt: str, *, crs: int = 4326,
                 encoding: str = "utf-8", csv_geometry: str = "wkt", lang: str = "zh",
                 max_features: int | None = None) -> ExportFile:
    """Write every feature answering ``spec`` (all of them unless it sets ``limit``)."""
    _precheck(fmt, crs, encoding)
    frames = {c.layer.id: (c.layer, stream_frames(conn, c.layer, rows_sql(c), c.params, c.clipped,
                                                  max_features))
              for c in compile_query(conn, spec, for_export=True)}
    return _write(frames, fmt, "query", crs, encoding, csv_geometry, lang)


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
