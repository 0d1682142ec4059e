"""What a client learns about a layer before reading it: extents and queryables.

Extents come from the data (spatial: ``ST_Extent``; temporal: the layer's own date
fields); queryables are a JSON Schema built from the layer declaration, so a new field
is queryable the moment it is declared.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from layers.cql2 import GEOMETRY_NAMES
from layers.features import property_columns
from layers.model import Layer
from layers.symbology import unit_label

__all__ = ["Extent", "extents", "queryables"]

Extent = dict[str, Any]


def extents(conn: sa.Connection, layers: list[Layer]) -> dict[str, Extent]:
    """The OGC ``extent`` of each layer (spatial in CRS84, temporal from its date fields)."""
    parts = []
    for layer in layers:
        start, end = layer.temporal or (None, None)
        lo = f"min({start})::text" if start else "NULL"
        hi = f"max({end or start})::text" if (end or start) else "NULL"
        parts.append(f"SELECT '{layer.id}' AS id, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), lo, hi "
                     f"FROM (SELECT ST_Extent(geom) AS e, {lo} AS lo, {hi} AS hi FROM {layer.table}) s")
    out: dict[str, Extent] = {}
    for row in conn.execute(sa.text(" UNION ALL ".join(parts))):
        layer_id, x0, y0, x1, y1, lo, hi = row
        extent: Extent = {}
        if x0 is not None:
            extent["spatial"] = {"bbox": [[x0, y0, x1, y1]],
                                 "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
        layer = next(la for la in layers if la.id == layer_id)
        if layer.temporal:
            extent["temporal"] = {
                "interval": [[f"{lo}T00:00:00Z" if lo else None, f"{hi}T23:59:59Z" if hi else None]],
                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
            }
        out[layer_id] = extent
    return out


_JSON_TYPES = {"text": "string", "integer": "integer", "real": "number", "date": "string",
               "monthday": "string"}


def queryables(layer: Layer, lang: str, self_url: str) -> dict[str, Any]:
    """The JSON Schema of the properties a filter, a sort or an equality parameter may use."""
    props: dict[str, Any] = {}
    props[GEOMETRY_NAMES[0]] = {"title": "几何" if lang != "en" else "Geometry",
                                "format": f"geometry-{layer.geometry_type.lower()}",
                                "x-ogc-role": "primary-geometry"}
    props["id"] = {"title": "标识" if lang != "en" else "Identifier", "type": "integer",
                   "x-ogc-role": "id"}
    for col in property_columns(layer).values():
        f = col.field
        schema: dict[str, Any] = {"type": _JSON_TYPES[col.type]}
        if f is not None:
            schema["title"] = f.label(lang)
            schema["x-title-zh"], schema["x-title-en"] = f.zh, f.en
            if f.unit:
                schema["x-unit"] = f.unit
            if f.choices:
                schema["enum"] = list(f.values)
                schema["x-enum-labels"] = {c.value: (c.en if lang == "en" else c.zh) for c in f.choices}
            if f.minimum is not None:
                schema["minimum"] = f.minimum
            if f.maximum is not None:
                schema["maximum"] = f.maximum
        elif col.measure is not None:
            m = col.measure
            en = f"{m.en} ({unit_label(m.unit, 'en')})"
            schema.update(title=f"{m.zh}（{m.unit}）" if lang != "en" else en, readOnly=True)
            schema["x-unit"] = m.unit
        if col.type == "date":
            schema["format"] = "date"
        if col.type == "monthday":
            schema["pattern"] = "^[0-1][0-9]-[0-3][0-9]$"
        props[col.name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": self_url,
        "type": "object",
        "title": layer.title(lang),
        "properties": props,
        "additionalProperties": False,
    }
