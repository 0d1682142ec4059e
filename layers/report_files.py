"""The work report's figures written out: JSON, XLSX (a sheet per section) and PDF.

XLSX: one sheet per section of the work report with the report's own wording, numbers as
numbers and units in the headers, text made formula-safe; a sheet of per-village values,
one of carrying capacity (villages over capacity in red) and one of the figures the data
cannot answer. PDF: :mod:`gis.report_pdf`, with the features counted drawn per section.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import shapely
import sqlalchemy as sa

from gis.report_pdf import MapPart, report_pdf, report_png
from gis.sheets import safe_text, sheet_name
from layers.registry import LAYERS

__all__ = ["PDF", "XLSX", "file_name", "report_maps", "to_json", "to_pdf", "to_png", "to_xlsx"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"
_COLORS = ("#1a9850", "#d73027", "#4575b4", "#fdae61", "#8073ac", "#01665e")


def file_name(report: dict[str, Any], suffix: str) -> str:
    """``2022年上半年工作报告数据.xlsx`` in Chinese, ``report-2022H1.xlsx`` in English."""
    if report["lang"] == "en":
        return f"report-{report['period']['key']}.{suffix}"
    return f"{report['period']['label']}工作报告数据.{suffix}"


def to_json(report: dict[str, Any]) -> str:
    """The report as JSON (what ``GET /reports/{period}`` sends clients)."""
    return json.dumps(report, ensure_ascii=False)


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    return value


def to_xlsx(report: dict[str, Any]) -> bytes:
    """A workbook: a sheet per section, then per village, carrying capacity, and the unanswerable."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    en = report["lang"] == "en"
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    red = Font(color="C0392B", bold=True)
    pink = PatternFill("solid", fgColor="FDE0DD")
    names: list[str] = []
    period, prev = report["period"]["label"], report["previous"]["label"]

    def sheet(title: str, header: list[str], widths: list[int]):
        name = sheet_name(title, names)
        names.append(name)
        ws = wb.create_sheet(name)
        ws.append([_cell(h) for h in header])
        for c in ws[1]:
            c.font = bold
            c.alignment = Alignment(wrap_text=True, vertical="top")
        for i, w in enumerate(widths):
            ws.column_dimensions[chr(ord("A") + i)].width = w
        ws.freeze_panes = "A2"
        return ws

    for s in report["sections"]:
        _section_sheet(s, sheet, en, period, prev, bold)
    ws = sheet(
        "By village" if en else "按嘎查村",
        (
            [
                "Figure",
                "Unit",
                "Village code",
                "Village",
                f"This period ({period})",
                f"Previous ({prev})",
                "Change",
                "Features",
            ]
            if en
            else [
                "指标",
                "单位",
                "嘎查村代码",
                "嘎查村",
                f"本期（{period}）",
                f"上期（{prev}）",
                "变化",
                "要素数",
            ]
        ),
        [40, 8, 16, 14, 14, 14, 12, 8],
    )
    for s in report["sections"]:
        for f in s["figures"]:
            for v in f.get("villages", []):
                ws.append(
                    [
                        _cell(f["wording"]),
                        _cell(f["unit"]),
                        _cell(v["code"] or ""),
                        _cell(v["name"] or ""),
                        v["value"],
                        v["previous"],
                        v["change"],
                        v["count"],
                    ]
                )
    cap = report["carrying_capacity"]
    animals = cap["animals"]
    ws = sheet(
        "Carrying capacity" if en else "草畜平衡",
        (
            [
                "Village code",
                "Village",
                "Pasture (mu)",
                "Capacity (sheep units)",
                *[f"{w} (head)" for w in animals.values()],
                "Stock (sheep units)",
                "Excess (sheep units)",
                "Load (%)",
                "Status",
            ]
            if en
            else [
                "嘎查村代码",
                "嘎查村",
                "草场面积（亩）",
                "理论载畜量（羊单位）",
                *[f"{w}（头/只）" for w in animals.values()],
                "实际载畜量（羊单位）",
                "超载（羊单位）",
                "载畜率（%）",
                "状态",
            ]
        ),
        [16, 14, 16, 18, *[10] * len(animals), 18, 16, 12, 22],
    )
    for v in cap["villages"]:
        counts = [v["livestock"][a] if v["livestock"] else None for a in animals]
        ws.append(
            [
                _cell(v["code"]),
                _cell(v["name"] or ""),
                v["pasture_mu"],
                v["capacity_su"],
                *counts,
                v["livestock_su"],
                v["excess_su"],
                v["load_pct"],
                _cell(v["status_label"]),
            ]
        )
        if v["over"]:
            for c in ws[ws.max_row]:
                c.fill = pink
                c.font = red
    ws.append([])
    ws.append([_cell(cap["formula"])])
    ws = sheet(
        "Not answerable" if en else "无法回答的指标",
        ["Section", "Figure (the report's words)", "Why", "Data needed"]
        if en
        else ["部分", "指标（报告原文）", "原因", "所需数据"],
        [24, 50, 24, 60],
    )
    for s in report["sections"]:
        for f in s["figures"]:
            if not f["answerable"]:
                ws.append([_cell(s["title"]), _cell(f["wording"]), _cell(f["reason"]), _cell(f["needs"])])
    ws = sheet("About" if en else "说明", ["", ""], [20, 80])
    for k, v in (
        (
            ("Title", report["title"]),
            ("Period", f"{report['period']['start']} – {report['period']['end']}"),
            ("Compared with", prev),
            ("Data as of", report["data_as_of"] or "—"),
            ("Generated", report["generated_at"]),
        )
        if en
        else (
            ("标题", report["title"]),
            ("统计期间", f"{report['period']['start']} 至 {report['period']['end']}"),
            ("比较期间", prev),
            ("数据日期", report["data_as_of"] or "—"),
            ("生成时间", report["generated_at"]),
        )
    ):
        ws.append([_cell(k), _cell(v)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def column_label(fig: dict[str, Any]) -> str:
    """A figure as a column header: the report's words without the X, its unit in brackets.

    ``收储土地X亩`` → ``收储土地（亩）``; ``分区分片种植柠条X万亩`` → ``分区分片种植柠条（万亩）``.
    """
    unit, words = fig["unit"], fig["wording"]
    if words != fig.get("wording_zh"):  # English: "Land acquired (X mu)" → "Land acquired (亩)"
        return re.sub(r"\s*\(X[^)]*\)", "", words).strip() + f" ({unit})"
    words = words.replace(f"（X{unit}）", "").replace(f"X{unit}", "").replace("X", "")
    return f"{words}（{unit}）"

def _section_sheet(s: dict[str, Any], sheet: Any, en: bool, period: str, prev: str, bold: Any) -> None:
    """One section: villages × figures (units in the headers), the totals, how each is computed, the rest."""
    answered = [f for f in s["figures"] if f["answerable"]]
    missing = [f for f in s["figures"] if not f["answerable"]]
    how_head = (["Figure (the report's words)", "Unit", "Layer", "Filter (CQL2)", "Measure", "Period rule",
                 "Counted", "Map", "Query"] if en else
                ["指标（报告原文）", "单位", "图层", "筛选条件（CQL2）", "量算", "计期规则", "统计口径",
                 "地图", "查询"])
    missing_head = (["Not answerable from the data", "Unit", "Why", "Data that would answer it"] if en else
                    ["数据无法回答的指标", "单位", "原因", "所需数据"])
    if answered:
        ws = sheet(s["title"], [("Village code" if en else "嘎查村代码"), ("Village" if en else "嘎查村"),
                                *[column_label(f) for f in answered]], [16, 30, *[18] * len(answered)])
        villages: dict[Any, str] = {}
        for f in answered:
            for v in f.get("villages", []):
                villages.setdefault(v["code"], v["name"] or "")
        for code in sorted(villages, key=lambda c: (c is None, c or "")):
            row: list[Any] = [_cell(code or ""), _cell(villages[code])]
            for f in answered:
                v = next((x for x in f.get("villages", []) if x["code"] == code), None)
                row.append(v["value"] if v else 0)
            ws.append(row)
        totals = (
            (("Total", f"this period ({period})") if en else ("合计", f"本期（{period}）"), "value"),
            (("Previous", f"({prev})") if en else ("上期合计", f"上期（{prev}）"), "previous"),
            (("Change", "") if en else ("变化", ""), "change"),
            (("Change (%)", "") if en else ("变化（%）", ""), "change_pct"),
            (("Features", "") if en else ("要素数", ""), "count"),
            (("Counted", "") if en else ("统计口径", ""), "counted"),
        )
        for (first, second), key in totals:
            ws.append([_cell(first), _cell(second), *[_cell(f[key]) for f in answered]])
            for c in ws[ws.max_row][:2]:
                c.font = bold
        ws.append([])
        ws.append([_cell(h) for h in how_head])
        for c in ws[ws.max_row]:
            c.font = bold
        for f in answered:
            h = f["how"]
            ws.append([_cell(f["wording"]), _cell(f["unit"]), _cell(h["layer_title"]), _cell(h["cql2"]),
                       _cell(h["measure"]), _cell(h["period_rule"]), _cell(f["counted"]),
                       _cell(f["links"]["map"] or ""), _cell(f["links"]["query"] or "")])
        if missing:
            ws.append([])
            ws.append([_cell(h) for h in missing_head])
            for c in ws[ws.max_row]:
                c.font = bold
    else:
        ws = sheet(s["title"], missing_head, [50, 10, 24, 60])
    for f in missing:
        ws.append([_cell(f["wording"]), _cell(f["unit"]), _cell(f["reason"]), _cell(f["needs"])])


def report_maps(conn: sa.Connection, report: dict[str, Any]) -> tuple[dict[str, list[MapPart]], list]:
    """The features each section's figures counted (simplified for print) and the village outlines."""
    maps: dict[str, list[MapPart]] = {}
    for s in report["sections"]:
        parts = []
        for i, f in enumerate(x for x in s["figures"] if x["answerable"] and x.get("feature_ids")):
            layer = LAYERS.get(f["how"]["layer"])
            table = layer.table if layer else f["how"]["layer"]
            wkbs = conn.scalars(
                sa.text(
                    f"SELECT ST_AsBinary(ST_SimplifyPreserveTopology(geom, 0.0002)) FROM {table} "
                    "WHERE id = ANY(:ids)"
                ),
                {"ids": f["feature_ids"]},
            ).all()
            color = layer.style.color if layer else _COLORS[i % len(_COLORS)]
            parts.append(MapPart(f["wording"][:24], color, list(shapely.from_wkb([bytes(w) for w in wkbs]))))
        maps[s["id"]] = parts
    villages = [
        (name, shapely.from_wkb(bytes(g)))
        for name, g in conn.execute(
            sa.text(
                "SELECT name, ST_AsBinary(ST_SimplifyPreserveTopology(geom, 0.0005)) FROM villages "
                "ORDER BY code"
            )
        )
    ]
    return maps, villages


def to_pdf(conn: sa.Connection, report: dict[str, Any]) -> bytes:
    """The report as an A4 PDF (:func:`gis.report_pdf.report_pdf`)."""
    maps, villages = report_maps(conn, report)
    return report_pdf(report, maps, villages)


def to_png(conn: sa.Connection, report: dict[str, Any], page: int = 2, dpi: int = 60) -> bytes:
    """One page of the PDF as PNG."""
    maps, villages = report_maps(conn, report)
    return report_png(report, maps, villages, page=page, dpi=dpi)
