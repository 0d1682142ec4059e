"""Statistics planners report: totals per layer × village × category, as JSON, CSV and XLSX.

Count and the layer's declared size measures (area in 亩, 万亩, ha; length in m, 万米;
ellipsoidal as stored) for every group, plus each layer's own measures: seedlings and the
area-weighted mean survival rate of caragana, households and compensation of subsidence
zones, rent of leases. Sums are done in PostGIS.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from gis.sheets import Sheet, SheetColumn, write_csv, write_xlsx
from layers import columns
from layers.columns import UnknownPropertyError
from layers.errors import BadRequestError
from layers.model import Expiring, Layer, Measure
from layers.registry import LAYERS, get_layer

__all__ = ["XLSX", "Measure", "StatsTable", "file_name", "layer_stats", "measures", "sheet_of", "to_csv",
           "to_json", "to_xlsx"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: most groups one table has (a group by ``code`` would be a list, not a statistic)
MAX_GROUPS = 10_000
#: how column headers write the size units (公顷, not ha, in Chinese; as the stats always did)
_UNIT_ZH = {"ha": "公顷"}
_UNIT_EN = {"亩": "mu", "万亩": "10,000 mu", "万米": "10 km"}


def measures(layer: Layer) -> list[Measure]:
    """The layer's numeric fields as measures: counts and money summed, rates weighted by size."""
    return list(layer.field_measures())


def _sizes(layer: Layer) -> list[Measure]:
    """The layer's declared size measures that statistics report (亩, 万亩, ha; m, 万米)."""
    return [m for m in layer.measures or () if m.report]


def _measure_sql(layer: Layer, m: Measure) -> str:
    if m.how == "sum":
        return f"sum({m.sql})"
    if m.how == "max":
        return f"max({m.sql})"
    has = f"FILTER (WHERE {m.sql} IS NOT NULL)"
    w = layer.weight_sql()
    return f"sum({m.sql} * {w}) {has} / nullif(sum({w}) {has}, 0)"


class InvalidFilterError(columns.InvalidFilterError):
    """A filter that does not apply to the layer (``expiring_days`` to a layer with no end date)."""

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


def layer_stats(conn: sa.Connection, layer_id: str, by: list[str], *, on: date | None = None,
                expiring_days: int | None = None) -> StatsTable:
    """Totals of ``layer_id`` grouped by the fields ``by`` (empty: one grand total).

    A layer with a validity (grazing bans) counts only those in force on ``on`` when it is
    given; a layer with an "expiring" end date (leases) with ``expiring_days`` only active
    ones ending within that many days of ``on`` (default today).
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
    if on is not None and layer.validity is not None:
        where.append(layer.in_force_sql("t", ":on"))
        params["on"] = on
        filters["in_force_on"] = on.isoformat()
    if expiring_days is not None:
        expiring = layer.style.rule(Expiring)
        if expiring is None:
            having = [la.id for la in LAYERS.values() if la.style.rule(Expiring)]
            raise InvalidFilterError(f"expiring_days applies to layers with an end date: {', '.join(having)}")
        day = on or date.today()
        active = f"{layer.active.sql('t', ':day')} AND " if layer.active else ""
        where.append(f"{active}t.{expiring.end} >= :day AND t.{expiring.end} <= :day + :days")
        params.update(day=day, days=expiring_days)
        filters.update(expiring_from=day.isoformat(), expiring_days=expiring_days)
    ms = measures(layer)
    sizes = _sizes(layer)
    dims = [f"t.{g.name}" for g in groups]
    village = any(g.name == "village_code" for g in groups)
    select = list(dims)
    if village:
        select.append("v.name AS village_name")
    select += ["count(*) AS count", *(f"sum({m.sql}) AS {m.name}" for m in sizes)]
    select += [f"{_measure_sql(layer, m)} AS {m.name}" for m in ms]
    join = " LEFT JOIN villages v ON v.code = t.village_code" if village else ""
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    group = f" GROUP BY {', '.join(dims + (['v.name'] if village else []))} ORDER BY {', '.join(dims)}" \
        if dims else ""
    rows = [dict(r._mapping) for r in conn.execute(
        sa.text(f"SELECT {', '.join(select)} FROM {layer.table} t{join}{cond}{group} LIMIT {MAX_GROUPS + 1}"),
        params)]
    if len(rows) > MAX_GROUPS:
        raise TooManyGroupsError(f"grouping by {', '.join(by)} gives more than {MAX_GROUPS} rows")
    total_sql = ("SELECT count(*) AS count"
                 + "".join(f", sum({m.sql}) AS {m.name}" for m in sizes)
                 + "".join(f", {_measure_sql(layer, m)} AS {m.name}" for m in ms)
                 + f" FROM {layer.table} t{cond}")
    total = dict(conn.execute(sa.text(total_sql), params).one()._mapping)
    columns = [(g.name, g.zh, g.en) for g in groups]
    if village:
        columns.append(("village_name", "嘎查村名称", "Village name"))
    columns += [("count", "个数", "Count")]
    columns += [(m.name, f"{m.zh}（{_UNIT_ZH.get(m.unit, m.unit)}）",
                 f"{m.en} ({_UNIT_EN.get(m.unit, m.unit)})") for m in sizes]
    columns += [(m.name, m.zh + (f"（{m.unit}）" if m.unit != "%" else ""),
                 m.en + (f" ({m.unit})" if m.unit != "%" else "")) for m in ms]
    table = StatsTable(layer, [g.name for g in groups], filters, columns)
    for r in [*rows, total]:
        for m in sizes:
            r[m.name] = round(float(r[m.name] or 0), m.digits)
        for m in ms:
            if r.get(m.name) is None:
                continue
            if m.how == "weighted":
                r[m.name] = round(float(r[m.name]), m.digits)
            elif layer.get_field(m.name).type == "integer":
                r[m.name] = int(r[m.name])
            else:
                r[m.name] = round(float(r[m.name]), m.digits)
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


def sheet_of(table: StatsTable, lang: str = "zh") -> tuple[Sheet, list[dict[str, Any]]]:
    """The table as people read it: words for codes, rates as percentages, the database's total."""
    en = lang == "en"
    sizes = {m.name: m for m in _sizes(table.layer)}
    ms = {m.name: m for m in measures(table.layer)}
    cols = []
    for name, zh, en_ in table.columns:
        header = en_ if en else zh
        if name == "count":
            cols.append(SheetColumn(name, header, "integer"))
        elif name in sizes:
            cols.append(SheetColumn(name, header, "number", sizes[name].digits))
        elif name in ms:
            m = ms[name]
            if m.unit == "%":
                cols.append(SheetColumn(name, header + (" (%)" if en else "（%）"), "percent", 3))
            elif table.layer.get_field(name).type == "integer":
                cols.append(SheetColumn(name, header, "integer"))
            else:
                cols.append(SheetColumn(name, header, "number", 2))
        else:
            cols.append(SheetColumn(name, header))
    rows = [{n: _label(table, n, r.get(n), lang) for n in r} for r in table.rows]
    total = {k: v for k, v in table.total.items() if k in sizes or k in ms or k == "count"}
    total[cols[0].key] = ("Total" if en else "合计") if table.by else total.get(cols[0].key)
    title = f"{table.layer.title(lang)}{' statistics' if en else '统计'}"
    return Sheet(title, cols, total_row=total), rows


def file_name(table: StatsTable, lang: str, suffix: str) -> str:
    """``土地租赁统计-按用途.xlsx`` in Chinese, ``land_leases-stats.xlsx`` in English."""
    if lang == "en":
        return f"{table.layer.id}-stats.{suffix}"
    by = "、".join(table.layer.get_field(b).zh for b in table.by)
    return f"{table.layer.zh}统计{'-按' + by if by else ''}.{suffix}"


def to_csv(table: StatsTable, lang: str = "zh") -> bytes:
    """CSV for Excel (a BOM, words for codes, rates as ``80.0%``); the last row is the total."""
    buf = io.StringIO()
    sheet, rows = sheet_of(table, lang)
    write_csv([(sheet, [rows])], buf)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(table: StatsTable, lang: str = "zh") -> bytes:
    """An XLSX workbook: one sheet named for the layer, header and total row bold, widths set."""
    buf = io.BytesIO()
    sheet, rows = sheet_of(table, lang)
    write_xlsx([(sheet, [rows])], buf)
    return buf.getvalue()
