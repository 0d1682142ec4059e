"""Bulk writing of features into a layer's table with COPY."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy.engine import Connection

from layers.model import TOWNSHIP_CODE, Layer, township_of

__all__ = ["copy_columns", "copy_features", "copy_records", "encode_features", "ewkb_hex", "to_multi"]

#: The SRID flag (the type's high byte) and the stored SRID (lon/lat), as little-endian EWKB has them.
_SRID_FLAG = b"\x20" + struct.pack("<I", 4326)


def to_multi(geoms: Sequence[Any]) -> np.ndarray:
    """Promote polygons to multipolygons, as every polygon layer stores them."""
    out = np.empty(len(geoms), dtype=object)
    out[:] = list(geoms) if not isinstance(geoms, np.ndarray) else geoms
    single = shapely.get_type_id(out) == 3
    empty = single & shapely.is_empty(out)
    single &= ~empty
    if single.any():
        out[single] = shapely.multipolygons(out[single][:, np.newaxis])
    for i in np.flatnonzero(empty):
        out[i] = MultiPolygon()
    return out


def ewkb_hex(geoms: np.ndarray) -> list[str | None]:
    """Hex EWKB with SRID 4326 of lon/lat ``geoms``, what COPY's text format takes for a geometry.

    The SRID goes into the header of plain little-endian WKB (a flag in the type and four
    bytes after it), and Python's ``bytes.hex`` writes the hex: ``shapely.set_srid`` copies
    every geometry and shapely's own hex output is slow, together 10× the time of this.
    A geometry whose type has flags already (Z, M) is encoded the slow way.
    """
    plain = shapely.to_wkb(geoms, byte_order=1)
    out: list[str | None] = []
    for geom, w in zip(geoms, plain.tolist(), strict=True):
        if w is None:
            out.append(None)
        elif w[2:5] == b"\0\0\0":
            out.append((w[:4] + _SRID_FLAG + w[5:]).hex())
        else:
            out.append(shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True))
    return out


def encode_features(layer: Layer, rows: Sequence[dict[str, Any]], geoms: Sequence[Any]) -> list[list[Any]]:
    """COPY records of features (attribute dicts and lon/lat geometries) for :func:`copy_records`.

    Unknown keys of a row go to ``extra``. Kept apart from the COPY so that a caller can
    encode the next batch while the database is busy with this one. A layer with villages gets
    each row's township last (:func:`copy_columns`), sliced from the village here.
    """
    names = [f.name for f in layer.all_fields]
    known = set(names)
    ewkb = ewkb_hex(to_multi(geoms))

    def extra(row: dict[str, Any]) -> str:
        if row.keys() <= known:
            return "{}"
        return json.dumps({k: v for k, v in row.items() if k not in known}, ensure_ascii=False)

    if layer.by_township:
        return [[*(row.get(n) for n in names), extra(row), geom, township_of(row.get("village_code"))]
                for row, geom in zip(rows, ewkb, strict=True)]
    return [[*(row.get(n) for n in names), extra(row), geom] for row, geom in zip(rows, ewkb, strict=True)]


def copy_columns(layer: Layer) -> list[str]:
    """The columns of :func:`encode_features` records, in their order."""
    town = [TOWNSHIP_CODE] if layer.by_township else []
    return [*(f.name for f in layer.all_fields), "extra", "geom", *town]


def copy_records(conn: Connection, layer: Layer, records: Iterable[Sequence[Any]], *,
                 progress: Callable[[int], None] | None = None, batch: int = 10_000) -> int:
    """COPY :func:`encode_features` records into ``layer``'s table; the number of rows written."""
    cols = ", ".join(copy_columns(layer))
    raw = conn.connection.driver_connection
    written = 0
    with raw.cursor() as cur, cur.copy(f"COPY {layer.table} ({cols}) FROM STDIN") as copy:
        for record in records:
            copy.write_row(record)
            written += 1
            if progress is not None and written % batch == 0:
                progress(batch)
    if progress is not None and written % batch:
        progress(written % batch)
    return written


def copy_features(
    conn: Connection,
    layer: Layer,
    rows: Iterable[dict[str, Any]],
    geoms: Sequence[Any],
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = 10_000,
) -> int:
    """COPY features (attribute dicts and lon/lat geometries) into ``layer``'s table.

    Unknown keys of a row go to ``extra``. Runs inside the caller's transaction, so a
    failure writes nothing. Returns the number of rows written. Encodes ``batch`` rows at
    a time, so a million features are never all encoded at once.
    """
    rows = iter(rows)

    def records() -> Iterable[list[Any]]:
        for start in range(0, len(geoms), batch):
            chunk = list(islice(rows, batch))
            yield from encode_features(layer, chunk, geoms[start:start + len(chunk)])

    written = copy_records(conn, layer, records(), progress=progress, batch=batch)
    if next(rows, None) is not None:
        raise ValueError("more rows than geometries")
    return written
