"""Bulk writing of features into a layer's table with COPY."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy.engine import Connection

from layers.model import Layer

__all__ = ["copy_features", "to_multi"]


def to_multi(geoms: Sequence[Any]) -> np.ndarray:
    """Promote polygons to multipolygons, as every polygon layer stores them."""
    return np.array([MultiPolygon([g]) if isinstance(g, Polygon) else g for g in geoms],
                    dtype=object)


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
    failure writes nothing. Returns the number of rows written.
    """
    names = [f.name for f in layer.all_fields]
    known = set(names)
    ewkb = shapely.to_wkb(shapely.set_srid(to_multi(geoms), 4326), hex=True, include_srid=True)
    cols = ", ".join([*names, "extra", "geom"])
    raw = conn.connection.driver_connection
    written = 0
    with raw.cursor() as cur, cur.copy(f"COPY {layer.table} ({cols}) FROM STDIN") as copy:
        for row, geom in zip(rows, ewkb, strict=True):
            extra = {k: v for k, v in row.items() if k not in known}
            copy.write_row([*(row.get(n) for n in names), json.dumps(extra, ensure_ascii=False),
                            geom])
            written += 1
            if progress is not None and written % batch == 0:
                progress(batch)
    if progress is not None and written % batch:
        progress(written % batch)
    return written
