"""The features a map shows, fetched from PostGIS, and the map layers built from them.

GeoJSON is built in PostGIS (``ST_AsGeoJSON``, 5 decimals ≈ 1 m, plenty for a screen);
a layer with more than ``inline_limit`` features in view is drawn from vector tiles
instead, so that the page stays small. Frames (the villages) are always inline and whole:
they give a map its orientation when no basemap can be loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from gis.maps import MapLayer
from layers.columns import FeatureNotFoundError
from layers.errors import UnknownVillageError
from layers.model import Layer
from layers.registry import LAYERS
from layers.symbology import MapContext, style_fields, symbology

__all__ = [
    "INLINE_LIMIT",
    "MapScope",
    "UnknownFeatureError",
    "UnknownVillageError",
    "data_date",
    "find_features",
    "map_bounds",
    "map_layers",
    "scope_for",
    "village_names",
]

#: Above this many features in view, a layer is drawn from vector tiles.
INLINE_LIMIT = 2000
_PRECISION = 5
_DROP = ("geom", "extra", "created_at", "updated_at")


class UnknownFeatureError(FeatureNotFoundError):
    """The layer has no feature with that id (``feature_not_found``, formerly ``unknown_feature``)."""

    def __init__(self, layer: Layer, feature_id: int) -> None:
        super().__init__(f"layer {layer.id!r} has no feature {feature_id}")
        self.layer_id, self.feature_id = layer.id, feature_id

    def extra(self) -> dict[str, object]:
        """The layer and the id asked for."""
        return {"layer": self.layer_id, "feature_id": self.feature_id}


@dataclass(frozen=True)
class MapScope:
    """Which features a map shows: all, one village's, one feature, or a selection.

    A selection (layer id, feature ids) is how a query result or a conflict check is
    mapped: those features of that layer, over the village frames.
    """

    village: str | None = None
    feature: tuple[str, int] | None = None
    selection: tuple[str, tuple[int, ...]] | None = None
    #: (west, south, east, north) in degrees: only features touching it (a printed screen)
    bbox: tuple[float, float, float, float] | None = None

    def where(self, layer: Layer, ctx: MapContext) -> tuple[str, dict[str, Any]]:
        """SQL condition on table alias ``t`` and its bound parameters."""
        where, params = self._where(layer, ctx)
        if self.bbox is None or where == "FALSE":
            return where, params
        west, south, east, north = self.bbox
        return (f"({where}) AND t.geom && ST_MakeEnvelope(:bbox_w, :bbox_s, :bbox_e, :bbox_n, 4326)",
                {**params, "bbox_w": west, "bbox_s": south, "bbox_e": east, "bbox_n": north})

    def _where(self, layer: Layer, ctx: MapContext) -> tuple[str, dict[str, Any]]:
        clauses, params = ["TRUE"], {}
        if self.selection is not None:
            if layer.id != self.selection[0]:
                return "FALSE", {}
            return "t.id = ANY(:ids)", {"ids": list(self.selection[1])}
        if self.feature is not None:
            if layer.id != self.feature[0]:
                return "FALSE", {}
            clauses.append("t.id = :feature_id")
            params["feature_id"] = self.feature[1]
        elif self.village is not None and layer.has_village:
            clauses.append("t.village_code = :village")
            params["village"] = self.village
        if layer.validity is not None and self.feature is None:
            # re-delineated areas: show the delineation in force on the map date
            clauses.append(layer.in_force_sql("t", ":on"))
            params["on"] = ctx.on
        return " AND ".join(clauses), params


def scope_for(conn: sa.Connection, *, village: str | None = None,
              feature: tuple[Layer, int] | None = None) -> MapScope:
    """A checked scope: :class:`UnknownVillageError`/:class:`UnknownFeatureError` if absent."""
    if village is not None:
        if not conn.scalar(sa.text("SELECT 1 FROM villages WHERE code = :c"), {"c": village}):
            raise UnknownVillageError(village)
        return MapScope(village=village)
    if feature is not None:
        layer, fid = feature
        if not conn.scalar(sa.text(f"SELECT 1 FROM {layer.table} WHERE id = :i"), {"i": fid}):
            raise UnknownFeatureError(layer, fid)
        return MapScope(feature=(layer.id, fid))
    return MapScope()


def village_names(conn: sa.Connection) -> dict[str, str]:
    """Village names by code."""
    return dict(conn.execute(sa.text("SELECT code, name FROM villages ORDER BY code")).all())


def _source(layer: Layer, ctx: MapContext) -> str:
    """The layer's rows: its table, or as it was at ``ctx.asof`` (its history)."""
    if ctx.asof is None:
        return layer.table
    from layers.history import asof_sql

    return asof_sql(layer, ":asof")


def _features(conn: sa.Connection, layer: Layer, where: str, params: Mapping[str, Any],
              wkb: bool = False, source: str | None = None) -> list[dict]:
    """Features as GeoJSON dicts, or with ``wkb`` their geometry as WKB bytes.

    A printed map decodes 100 000 WKB geometries in one vectorised call instead of one dict each.
    """
    # the headline size is shown; the other stored measures (area_m2) are not
    hidden = [m.name for m in layer.stored_measures if not m.headline]
    drop = " - ".join(f"'{c}'" for c in (*_DROP, *hidden))
    join = ("LEFT JOIN villages v ON v.code = t.village_code" if layer.has_village else "")
    name = "v.name" if layer.has_village else "NULL::text"
    geometry = "ST_AsBinary(t.geom)" if wkb else f"ST_AsGeoJSON(t.geom, {_PRECISION})::json"
    sql = (f"SELECT t.id, {geometry} AS geometry, "
           f"to_jsonb(t) - {drop} || jsonb_build_object('village_name', {name}) AS properties "
           f"FROM {source or layer.table} t {join} WHERE {where} ORDER BY t.id")
    return [{"type": "Feature", "id": r.id, "geometry": r.geometry, "properties": r.properties}
            for r in conn.execute(sa.text(sql), dict(params))]


def _stats(conn: sa.Connection, layer: Layer, by: str | None) -> dict[str, tuple[Any, Any]]:
    if by is None or layer.get_field(by).type not in ("integer", "real"):
        return {}
    lo, hi = conn.execute(sa.text(f"SELECT min({by}), max({by}) FROM {layer.table}")).one()
    return {by: (lo, hi)}


def map_layers(conn: sa.Connection, layer_ids: Iterable[str], ctx: MapContext, *,
               scope: MapScope = MapScope(), tiles_url: str | None = None,
               inline_limit: int = INLINE_LIMIT, feature_link: str | None = None,
               popups: bool = True, village_link: str | None = None) -> list[MapLayer]:
    """The overlays of a map: frames first (the villages), then each layer, styled for ``ctx``.

    Without ``popups`` (a printed map) geometries are WKB bytes, not GeoJSON: for
    :func:`gis.printing.print_map`, not for a web page.
    ``tiles_url`` is the vector-tile URL template with ``{layer}`` (and Leaflet's
    ``{z}/{x}/{y}``); without it every layer is inlined. ``feature_link`` is the URL
    template of a feature's own map (``{layer}``, ``{id}``) and ``village_link`` that of a
    village's map (``{code}``), linked from popups.
    """
    names = village_names(conn)
    out = []
    frames = [i for i, la in LAYERS.items() if la.is_frame]
    for layer_id in (*frames, *[i for i in layer_ids if i not in frames]):
        layer = LAYERS[layer_id]
        # ``by`` colours the layers that can be coloured by it; the others keep their own
        layer_ctx = ctx if ctx.by in style_fields(layer) else replace(ctx, by=None)
        by = layer_ctx.by or layer.style.by
        sym = symbology(layer, layer_ctx, _stats(conn, layer, by))
        where, params = scope.where(layer, ctx)
        if layer.is_frame:  # whole: the orientation of every map
            where, params = "TRUE", {}
        source = _source(layer, ctx)
        if ctx.asof is not None:
            params = {**params, "asof": ctx.asof}
        count = conn.scalar(sa.text(f"SELECT count(*) FROM {source} t WHERE {where}"), params)
        common = {"key": layer.id, "title": layer.title(ctx.lang), "legend": sym.legend()}
        tiled = scope.feature is None and scope.selection is None  # those are small: inline
        if tiles_url and tiled and count > inline_limit and not layer.is_frame:
            link = feature_link.replace("{layer}", layer.id) if feature_link else None
            only = ("village_code", scope.village) if scope.village and layer.has_village else None
            # below the detail zoom, small features come as cells: say how many a cell holds
            labels = {**sym.tile_labels(names), "parcels": {
                "label": "合并要素数（放大查看）" if ctx.lang == "zh" else "Features merged (zoom in)"}}
            url = _versioned(conn, layer, tiles_url)
            if ctx.asof is not None:  # the tiles of that time too
                url += f"&asof={quote(ctx.asof.isoformat())}"
            out.append(MapLayer(**common, tiles_url=url,
                                tile_style=sym.tile_style(), tile_labels=labels,
                                link=link, tile_filter=only, tile_valid=_valid(layer, ctx)))
            continue
        features = _features(conn, layer, where, params, wkb=not popups, source=source)
        for f in features:
            props = f["properties"]
            # without popups (a printed map) only the style and the label are needed
            f["properties"] = (sym.display(props) if popups else
                               {"_style": sym.style(props), "name": props.get("name")})
        link = feature_link.replace("{layer}", layer.id) if feature_link and scope.feature is None else None
        if layer.is_frame:
            link = village_link
        out.append(MapLayer(**common, geojson={"type": "FeatureCollection", "features": features},
                            popup=sym.popup_rows(), link=link, label=layer.style.label))
    return out


def _valid(layer: Layer, ctx: MapContext) -> tuple[str, str, str] | None:
    """Re-delineated layers: tiles hold every delineation, the map draws those in force."""
    if layer.validity is not None:
        start, end = layer.validity
        return (start or "", end or "", ctx.on.isoformat())
    return None


def _versioned(conn: sa.Connection, layer: Layer, tiles_url: str) -> str:
    """The layer's tile URL with a version that changes with the layer (``?v=``).

    Tiles of a versioned URL may be kept by the browser (``Cache-Control: immutable``):
    a map drawn after an upload, an edit or a deletion asks for new URLs.
    """
    count, stamp = conn.execute(sa.text(
        f"SELECT count(*), coalesce(extract(epoch FROM max(updated_at)), 0) FROM {layer.table}")).one()
    sep = "&" if "?" in tiles_url else "?"
    return f"{tiles_url.replace('{layer}', layer.id)}{sep}v={count}-{int(stamp * 1000)}"


def map_bounds(conn: sa.Connection, scope: MapScope) -> tuple[tuple[float, float], tuple[float, float]]:
    """((south, west), (north, east)) of what the map is about: the scope, else the villages."""
    if scope.village is not None:
        parts = ["SELECT geom FROM villages WHERE code = :village"]
        params: dict[str, Any] = {"village": scope.village}
    elif scope.selection is not None:
        layer = LAYERS[scope.selection[0]]
        parts = [f"SELECT geom FROM {layer.table} WHERE id = ANY(:ids)"]
        params = {"ids": list(scope.selection[1])}
    elif scope.feature is not None:
        layer = LAYERS[scope.feature[0]]
        parts = [f"SELECT geom FROM {layer.table} WHERE id = :feature_id"]
        params = {"feature_id": scope.feature[1]}
    else:  # every feature lies in a village: the township's frame holds them all
        parts, params = ["SELECT geom FROM villages"], {}
    sql = (f"SELECT ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e) "
           f"FROM (SELECT ST_Extent(geom) AS e FROM ({' UNION ALL '.join(parts)}) g) x")
    row = conn.execute(sa.text(sql), params).one()
    if row[0] is None:  # nothing at all: the demo township's frame
        return (37.9, 106.8), (38.5, 107.6)
    return (row[0], row[1]), (row[2], row[3])


def data_date(conn: sa.Connection, layer_ids: Iterable[str]) -> date | None:
    """The day the newest of these layers' features was last written: "data as of"."""
    parts = [f"SELECT max(updated_at) AS t FROM {LAYERS[i].table}" for i in dict.fromkeys(layer_ids)]
    if not parts:
        return None
    newest = conn.scalar(sa.text(f"SELECT max(t) FROM ({' UNION ALL '.join(parts)}) x"))
    return newest.date() if newest is not None else None


#: Most places one search answers.
FIND_LIMIT = 20


def _search_fields(layer: Layer) -> list[str]:
    """Code and the free-text names of a layer (name, lessee, project …), not coded fields."""
    names = ["code"] + [f.name for f in layer.fields if f.type == "text" and not f.choices
                        and f.name in ("name", "lessee", "project", "mine", "contractor")]
    return list(dict.fromkeys(names))


def find_features(conn: sa.Connection, text: str, lang: str = "zh",
                  limit: int = FIND_LIMIT) -> list[dict[str, Any]]:
    """Features whose code or name holds ``text`` (case-insensitive), exact codes first.

    Each with its layer, code, a label, its box ``[west, south, east, north]`` and its
    geometry (for the map to highlight it).
    """
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    out: list[dict[str, Any]] = []
    for layer in LAYERS.values():
        fields = _search_fields(layer)
        match = " OR ".join(f"t.{f}::text ILIKE :pattern" for f in fields)
        label = next((f for f in fields if f != "code"), None)
        sql = (f"SELECT t.id, t.code::text AS code, {f't.{label}::text' if label else 'NULL'} AS label, "
               f"ST_XMin(t.geom) AS w, ST_YMin(t.geom) AS s, ST_XMax(t.geom) AS e, ST_YMax(t.geom) AS n, "
               f"ST_AsGeoJSON(t.geom, {_PRECISION})::json AS geometry FROM {layer.table} t "
               f"WHERE {match} ORDER BY (lower(t.code::text) = lower(:text)) DESC, t.code LIMIT :limit")
        for r in conn.execute(sa.text(sql), {"pattern": pattern, "text": text, "limit": limit}):
            out.append({"layer": layer.id, "layer_title": layer.title(lang), "id": r.id, "code": r.code,
                        "label": r.label, "bbox": [r.w, r.s, r.e, r.n], "geometry": r.geometry,
                        "exact": r.code.lower() == text.lower()})
    out.sort(key=lambda f: (not f["exact"], len(f["code"] or ""), f["code"] or ""))
    return out[:limit]
