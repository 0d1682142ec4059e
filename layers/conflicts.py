"""Conflicts between layers: overlays giving each overlapping piece and its area in 亩.

A check pairs features of two layers whose interiors overlap (``ST_Intersects`` on the
GiST index, then ``ST_Intersection``), or finds the part of a feature lying outside the
village it names (``ST_Difference``). Pieces are ellipsoidal areas; pieces under
:data:`MIN_M2` are slivers of shared edges and left out. Which features take part on a
date comes from each layer's declaration: active ones (leases) and those in force
(re-delineated grazing bans); the checks themselves are the layers' declared ``overlays``.
Only polygon layers have areas to overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from gis.area import M2_PER_MU
from gis.sheets import Sheet, SheetColumn
from layers.errors import NotFoundError, UnknownVillageError
from layers.model import Layer
from layers.registry import LAYERS
from layers.store.citus import same_township

__all__ = ["CHECKS", "MIN_M2", "Check", "UnknownCheckError", "check_features", "checks", "run_check",
           "to_xlsx"]

#: pieces smaller than this (m²) are floating-point slivers along shared edges, not conflicts
MIN_M2 = 1.0


@dataclass(frozen=True)
class Check:
    """One overlay: layer ``a`` against layer ``b`` (``b`` None: outside the named village).

    Each side takes the features that count on the date (see :meth:`Layer.current_sql`).
    """

    id: str
    zh: str
    en: str
    a: str | None
    b: str | None
    a_props: tuple[str, ...] = ()
    b_props: tuple[str, ...] = ()
    group: str | None = None  # a b-side field the summary totals by
    same_layer: bool = False

    def describe(self) -> dict[str, Any]:
        """Id, titles and layers, for the list of checks."""
        return {"id": self.id, "title_zh": self.zh, "title_en": self.en,
                "layers": [x for x in (self.a, self.b) if x] or
                [la.id for la in LAYERS.values() if la.has_village and la.is_polygonal]}

    def conditions(self) -> tuple[str, str]:
        """The SQL conditions on aliases ``a`` and ``b``: the features that count on ``:on``."""
        return (LAYERS[self.a].current_sql("a") if self.a else "TRUE",
                LAYERS[self.b].current_sql("b") if self.b else "TRUE")


def checks(layers: dict[str, Layer]) -> dict[str, Check]:
    """The checks the layers declare (their ``overlays``), then features outside their village."""
    found = [Check(o.id, o.zh, o.en, layer.id, o.other, o.props, o.other_props, o.group,
                   same_layer=o.other == layer.id)
             for layer in layers.values() for o in layer.overlays]
    found.append(Check("outside_village", "要素超出所属嘎查村", "Features outside the village they name",
                       None, None))
    return {c.id: c for c in found}


CHECKS: dict[str, Check] = checks(LAYERS)


class UnknownCheckError(NotFoundError):
    """No conflict check of that id."""

    code = "unknown_check"
    title = "Unknown conflict check"

    def __init__(self, check_id: str) -> None:
        super().__init__(f"no conflict check called {check_id!r}")
        self.check_id = check_id

    def extra(self) -> dict[str, object]:
        """The checks there are."""
        return {"checks": list(CHECKS)}


def _props(side: str, names: tuple[str, ...]) -> str:
    return "".join(f", '{side}_{n}', {side}.{n}" for n in names)


def _pair_sql(c: Check, village: bool, township: str = "") -> str:
    pair = (" AND a.id < b.id" if c.same_layer else "") + township
    a_cond, b_cond = c.conditions()
    vcond = " AND a.village_code = :village" if village else ""
    return (
        f"SELECT '{c.a}' AS a_layer, a.id AS a_id, a.code AS a_code, '{c.b}' AS b_layer, b.id AS b_id, "
        f"b.code AS b_code, {_group_sql(c)} AS grp, "
        f"json_build_object('check', '{c.id}'{_village_prop(c)}{_props('a', c.a_props)}"
        f"{_props('b', c.b_props)}) AS props, "
        # a feature wholly inside the other is its own piece: no overlay needed
        f"CASE WHEN ST_Covers(b.geom, a.geom) THEN a.geom WHEN ST_Covers(a.geom, b.geom) THEN b.geom "
        f"ELSE ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) END AS piece "
        f"FROM {c.a} a JOIN {c.b} b ON ST_Intersects(a.geom, b.geom){pair} "
        f"WHERE {a_cond} AND {b_cond}{vcond}")


def _village_prop(c: Check) -> str:
    """The village the ``a`` side names (its code), when its layer has one."""
    return ", 'a_village_code', a.village_code" if c.a and LAYERS[c.a].has_village else ""


def _group_sql(c: Check) -> str:
    return f"b.{c.group}" if c.group else "NULL::text"


def _outside_sql(village: bool) -> str:
    vcond = " AND a.village_code = :village" if village else ""
    parts = [
        f"SELECT '{layer.id}' AS a_layer, a.id AS a_id, a.code AS a_code, 'villages' AS b_layer, "
        f"v.id AS b_id, v.code AS b_code, NULL::text AS grp, "
        f"json_build_object('check', 'outside_village', 'a_village_code', a.village_code, "
        f"'village_name', v.name) AS props, "
        f"ST_CollectionExtract(ST_Difference(a.geom, v.geom), 3) AS piece "
        f"FROM {layer.table} a JOIN villages v ON v.code = a.village_code "
        f"WHERE NOT ST_Covers(v.geom, a.geom){vcond}"
        for layer in LAYERS.values() if layer.has_village and layer.is_polygonal]
    return " UNION ALL ".join(parts)


def check_features(conn: sa.Connection, check_id: str, *, on: date, village: str | None = None
                   ) -> list[dict[str, Any]]:
    """The overlapping pieces of one check as GeoJSON features (dicts), largest first."""
    c = CHECKS.get(check_id)
    if c is None:
        raise UnknownCheckError(check_id)
    if village is not None and conn.scalar(sa.text("SELECT 1 FROM villages WHERE code = :c"),
                                           {"c": village}) is None:
        raise UnknownVillageError(village)
    inner = (_outside_sql(village is not None) if c.a is None else
             _pair_sql(c, village is not None,
                       same_township(conn, c.a) if LAYERS[c.b].by_township else ""))
    sql = (f"WITH pairs AS ({inner}), sized AS (SELECT *, ST_Area(piece::geography) AS m2 FROM pairs "
           f"WHERE NOT ST_IsEmpty(piece)) "
           f"SELECT json_build_object('type', 'Feature', 'geometry', ST_AsGeoJSON(piece, 7)::json, "
           f"'properties', (json_build_object('a_layer', a_layer, 'a_id', a_id, 'a_code', a_code, "
           f"'b_layer', b_layer, 'b_id', b_id, 'b_code', b_code, 'overlap_m2', m2, "
           f"'overlap_mu', m2 / {M2_PER_MU!r})::jsonb || props::jsonb))::text AS f, grp, m2 "
           f"FROM sized WHERE m2 >= :min_m2 ORDER BY m2 DESC, a_layer, a_id, b_id")
    params: dict[str, Any] = {"on": on, "min_m2": MIN_M2}
    if village is not None:
        params["village"] = village
    out = []
    for row in conn.execute(sa.text(sql), params):
        feature = json.loads(row.f)
        feature["properties"]["group"] = row.grp
        out.append(feature)
    return out


def run_check(conn: sa.Connection, check_id: str, *, on: date, village: str | None = None,
              map_base: str = "", lang: str = "zh") -> str:
    """A FeatureCollection of the check's pieces with a summary and links to maps of both sides."""
    features = check_features(conn, check_id, on=on, village=village)
    c = CHECKS[check_id]
    total = sum(f["properties"]["overlap_mu"] for f in features)
    groups: dict[str, dict[str, float]] = {}
    ids: dict[str, set[int]] = {}
    for f in features:
        p = f["properties"]
        p.setdefault("group", None)
        g = p.pop("group")
        if c.group and g is not None:
            s = groups.setdefault(g, {"count": 0, "area_mu": 0.0})
            s["count"] += 1
            s["area_mu"] = round(s["area_mu"] + p["overlap_mu"], 4)
        ids.setdefault(p["a_layer"], set()).add(p["a_id"])
        ids.setdefault(p["b_layer"], set()).add(p["b_id"])
    suffix = "&lang=en" if lang == "en" else ""
    links = [{"rel": "map", "layer": layer, "type": "text/html",
              "href": f"{map_base}/maps/{layer}?ids={','.join(map(str, sorted(s)[:5000]))}{suffix}"}
             for layer, s in ids.items()]
    summary = {"check": c.id, "title_zh": c.zh, "title_en": c.en, "on": on.isoformat(),
               "count": len(features), "area_mu": round(total, 4), "area_wan_mu": round(total / 10_000, 6),
               "area_ha": round(total / 15, 4)}
    if c.group:
        summary["by"] = {"field": c.group, "groups": groups}
    return json.dumps({"type": "FeatureCollection", "features": features, "summary": summary,
                       "links": links}, ensure_ascii=False)


def _sheet(c: Check, lang: str) -> Sheet:
    """The columns of a check's table: each side's code and reported fields (words for codes)."""
    en = lang == "en"
    cols: list[SheetColumn] = []
    sides = [("a", c.a, c.a_props), ("b", c.b, c.b_props)] if c.a else []
    for side, layer_id, props in sides:
        layer = LAYERS[layer_id]  # type: ignore[index]
        title = layer.title(lang) + (f" {side.upper()}" if c.same_layer else "")
        cols.append(SheetColumn(f"{side}_code", f"{title} {'code' if en else '编号'}"))
        if side == "a" and layer.has_village:
            cols.append(SheetColumn("village_name", "Village" if en else "嘎查村"))
        for name in props:
            cols.append(SheetColumn(f"{side}_{name}", f"{title} {layer.get_field(name).label(lang)}"))
    if not c.a:
        cols = [SheetColumn("a_layer", "Layer" if en else "图层"),
                SheetColumn("a_code", "Code" if en else "编号"),
                SheetColumn("village_name", "Village named" if en else "所属嘎查村")]
    cols += [SheetColumn("overlap_mu", "Overlap (mu)" if en else "重叠面积（亩）", "number", 2, "sum"),
             SheetColumn("overlap_ha", "Overlap (ha)" if en else "重叠面积（公顷）", "number", 4, "sum")]
    return Sheet(c.en if en else c.zh, cols, "Total ({n} overlaps)" if en else "合计（{n} 处）")


def to_xlsx(conn: sa.Connection, check_id: str, *, on: date, village: str | None = None,
            lang: str = "zh") -> tuple[bytes, str]:
    """The check's pieces as an XLSX table people read, and its file name (title and date).

    Each row names both sides (lessee and project of a lease, a ban's name and regime — as
    words, not codes), the village, and the overlap in 亩 and ha; the last row totals them.
    """
    import io

    from gis.sheets import write_xlsx

    features = check_features(conn, check_id, on=on, village=village)
    c = CHECKS[check_id]
    names = dict(conn.execute(sa.text("SELECT code, name FROM villages")).all())
    rows = []
    for f in features:
        p = dict(f["properties"])
        for side, layer_id in (("a", p.get("a_layer")), ("b", p.get("b_layer"))):
            layer = LAYERS.get(layer_id) if layer_id else None
            if layer is None:
                continue
            for fld in layer.all_fields:
                key = f"{side}_{fld.name}"
                choice = fld.choice(p[key]) if fld.choices and isinstance(p.get(key), str) else None
                if choice is not None:
                    p[key] = choice.en if lang == "en" else choice.zh
        if p.get("a_layer") in LAYERS and not c.a:
            p["a_layer"] = LAYERS[p["a_layer"]].title(lang)
        p.setdefault("village_name", names.get(p.get("a_village_code")))
        p["overlap_ha"] = p["overlap_m2"] / 10_000
        rows.append(p)
    sheet = _sheet(c, lang)
    buf = io.BytesIO()
    write_xlsx([(sheet, [rows])], buf)
    stem = (c.en if lang == "en" else c.zh) + f"-{on.isoformat()}"
    return buf.getvalue(), f"{stem}.xlsx"
