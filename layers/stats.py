"""Statistics planners report: totals per layer × village × category, as JSON, CSV and XLSX.

Count and area (亩, 万亩, ha, ellipsoidal as stored) for every group, plus each layer's
own measures: seedlings and the area-weighted mean survival rate of caragana, households
and compensation of subsidence zones, rent of leases. Sums are done in PostGIS.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from gis.area import M2_PER_MU
from layers import cql2
from layers.columns import UnknownPropertyError
from layers.errors import BadRequestError
from layers.model import Layer
from layers.registry import get_layer

__all__ = ["XLSX", "Measure", "StatsTable", "layer_stats", "measures", "to_csv", "to_json", "to_xlsx"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SUMMED_UNITS = ("元", "万元", "户", "株", "人")
#: most groups one table has (a group by ``code`` would be a list, not a statistic)
MAX_GROUPS = 10_000


@dataclass(frozen=True)
class Measure:
    """A figure computed per group: ``sum``, ``max`` or ``weighted`` (area-weighted mean)."""

    field: str
    how: str
    zh: str
    en: str
    unit: str | None


def measures(layer: Layer) -> list[Measure]:
    """The layer's numeric fields as measures: counts and money summed, rates area-weighted."""
    out = []
    for f in layer.fields:
        if f.type not in ("integer", "real") or f.unit is None:
            continue
        if f.unit == "%":
            out.append(Measure(f.name, "weighted", f"{f.zh}（面积加权）", f"{f.en} (area-weighted)", f.unit))
        elif f.unit in _SUMMED_UNITS:
            out.append(Measure(f.name, "sum", f"{f.zh}合计", f"{f.en}, total", f.unit))
        else:
            out.append(Measure(f.name, "max", f"{f.zh}（最大）", f"{f.en} (max)", f.unit))
    return out


def _measure_sql(m: Measure) -> str:
    if m.how == "sum":
        return f"sum(t.{m.field})"
    if m.how == "max":
        return f"max(t.{m.field})"
    has = f"FILTER (WHERE t.{m.field} IS NOT NULL)"
    return f"sum(t.{m.field} * t.area_m2) {has} / nullif(sum(t.area_m2) {has}, 0)"


class InvalidFilterError(cql2.InvalidFilterError):
    """A filter that does not apply to the layer (``expiring_days`` to anything but leases)."""

    def extra(self) -> dict[str, object]:
        """The parameter at fault."""
        return {"parameter": "expiring_days"}


class TooManyGroupsError(BadRequestError):
    """Grouping gives more rows than a statistic should."""

    code = "too_many_groups"
    title = "Too many groups"


@dataclass
class StatsTable:
    """Grouped figures of one layer, their column labels, and the grand total."""

    layer: Layer
    by: list[str]
    filters: dict[str, Any]
    columns: list[tuple[str, str, str]]  # name, zh, en
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)


def _areas(row: dict[str, Any]) -> dict[str, Any]:
    mu = float(row.pop("area_mu") or 0)
    return {"area_mu": round(mu, 4), "area_wan_mu": round(mu / 10_000, 6), "area_ha": round(mu / 15, 4)}


def layer_stats(conn: sa.Connection, layer_id: str, by: list[str], *, on: date | None = None,
                expiring_days: int | None = None) -> StatsTable:
    """Totals of ``layer_id`` grouped by the fields ``by`` (empty: one grand total).

    Grazing bans count only those in force on ``on`` when it is given; leases with
    ``expiring_days`` only active ones ending within that many days of ``on`` (default today).
    """
    layer = get_layer(layer_id)
    groups = []
    for name in dict.fromkeys(by):
        try:
            groups.append(layer.get_field(name))
        except KeyError:
            raise UnknownPropertyError(name, layer.id, [f.name for f in layer.all_fields], "by") from None
    where, params = [], {}
    filters: dict[str, Any] = {}
    if on is not None and layer.temporal and layer.id == "grazing_bans":
        where.append("(t.valid_from IS NULL OR t.valid_from <= :on) "
                     "AND (t.valid_to IS NULL OR t.valid_to >= :on)")
        params["on"] = on
        filters["in_force_on"] = on.isoformat()
    if expiring_days is not None:
        if layer.id != "land_leases":
            raise InvalidFilterError("expiring_days applies to land_leases only")
        day = on or date.today()
        where.append("t.status = 'active' AND t.end_date >= :day AND t.end_date <= :day + :days")
        params.update(day=day, days=expiring_days)
        filters.update(expiring_from=day.isoformat(), expiring_days=expiring_days)
    ms = measures(layer)
    dims = [f"t.{g.name}" for g in groups]
    village = any(g.name == "village_code" for g in groups)
    select = list(dims)
    if village:
        select.append("v.name AS village_name")
    select += ["count(*) AS count", f"sum(t.area_m2) / {M2_PER_MU!r} AS area_mu"]
    select += [f"{_measure_sql(m)} AS {m.field}" for m in ms]
    join = " LEFT JOIN villages v ON v.code = t.village_code" if village else ""
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    group = f" GROUP BY {', '.join(dims + (['v.name'] if village else []))} ORDER BY {', '.join(dims)}" \
        if dims else ""
    rows = [dict(r._mapping) for r in conn.execute(
        sa.text(f"SELECT {', '.join(select)} FROM {layer.table} t{join}{cond}{group} LIMIT {MAX_GROUPS + 1}"),
        params)]
    if len(rows) > MAX_GROUPS:
        raise TooManyGroupsError(f"grouping by {', '.join(by)} gives more than {MAX_GROUPS} rows")
    total_sql = (f"SELECT count(*) AS count, sum(t.area_m2) / {M2_PER_MU!r} AS area_mu"
                 + "".join(f", {_measure_sql(m)} AS {m.field}" for m in ms)
                 + f" FROM {layer.table} t{cond}")
    total = dict(conn.execute(sa.text(total_sql), params).one()._mapping)
    columns = [(g.name, g.zh, g.en) for g in groups]
    if village:
        columns.append(("village_name", "嘎查村名称", "Village name"))
    columns += [("count", "个数", "Count"), ("area_mu", "面积（亩）", "Area (mu)"),
                ("area_wan_mu", "面积（万亩）", "Area (10,000 mu)"), ("area_ha", "面积（公顷）", "Area (ha)")]
    columns += [(m.field, m.zh + (f"（{m.unit}）" if m.unit != "%" else ""),
                 m.en + (f" ({m.unit})" if m.unit != "%" else "")) for m in ms]
    table = StatsTable(layer, [g.name for g in groups], filters, columns)
    for r in [*rows, total]:
        r.update(_areas(r))
        for m in ms:
            if r.get(m.field) is None:
                continue
            if m.how == "weighted":
                r[m.field] = round(float(r[m.field]), 6)
            elif layer.get_field(m.field).type == "integer":
                r[m.field] = int(r[m.field])
            else:
                r[m.field] = round(float(r[m.field]), 4)
        for k, v in r.items():
            if isinstance(v, date):
                r[k] = v.isoformat()
    table.rows, table.total = rows, total
    return table


def _label(table: StatsTable, name: str, value: Any, lang: str) -> Any:
    """The Chinese or English word for a coded value (the code for other fields)."""
    try:
        choice = table.layer.get_field(name).choice(value) if isinstance(value, str) else None
    except KeyError:
        return value
    return (choice.en if lang == "en" else choice.zh) if choice else value


def to_json(table: StatsTable) -> str:
    """The table as JSON: rows with codes, labels of coded values, the total."""
    labels = {}
    for name in table.by:
        f = table.layer.get_field(name)
        if f.choices:
            labels[name] = {c.value: {"zh": c.zh, "en": c.en} for c in f.choices}
    return json.dumps({"layer": table.layer.id, "by": table.by, "filters": table.filters,
                       "columns": [{"name": n, "zh": zh, "en": en} for n, zh, en in table.columns],
                       "labels": labels, "rows": table.rows, "total": table.total}, ensure_ascii=False)


def _matrix(table: StatsTable, lang: str) -> list[list[Any]]:
    names = [c[0] for c in table.columns]
    out = [[en if lang == "en" else zh for _, zh, en in table.columns]]
    for r in table.rows:
        out.append([_label(table, n, r.get(n), lang) for n in names])
    total = ["Total" if lang == "en" else "合计"] if table.by else []
    start = len(table.by) + (1 if "village_name" in names else 0)
    out.append(total + [""] * (start - len(total)) + [table.total.get(n) for n in names[start:]])
    return out


def to_csv(table: StatsTable, lang: str = "zh") -> bytes:
    """CSV with a BOM so that Excel reads the Chinese headers; the last row is the total."""
    buf = io.StringIO()
    csv.writer(buf).writerows(_matrix(table, lang))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(table: StatsTable, lang: str = "zh") -> bytes:
    """An XLSX workbook: one sheet, header and total row bold."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = table.layer.id[:31]
    rows = _matrix(table, lang)
    for row in rows:
        ws.append(row)
    for cell in (*ws[1], *ws[len(rows)]):
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
