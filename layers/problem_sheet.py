"""An upload's problems as an XLSX the field team opens: one row per problem, with the feature's code.

Every text cell is made safe for spreadsheets: a value starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is prefixed with ``'`` (so a hostile file name or value
never becomes a formula) and characters XML cannot hold are dropped.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["FORMULA_STARTS", "problem_sheet", "safe_cell"]

#: What spreadsheets read as the start of a formula (OWASP's CSV-injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a cell that stays text: formula starts prefixed with ``'``, control characters dropped."""
    if not isinstance(value, str):
        return value
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def problem_sheet(upload: dict[str, Any], lang: str = "zh") -> bytes:
    """The XLSX of an upload's listed problems (``upload`` as :func:`layers.uploads.get_upload` gives it)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    en = lang == "en"
    report = upload.get("report") or {}
    codes = report.get("feature_codes") or {}
    wb = Workbook()
    ws = wb.active
    ws.title = "problems" if en else "问题"
    head = (["Feature (from 0)", "Feature code", "Problem", "Field", "Severity", "Message"] if en else
            ["要素序号（从 0 起）", "要素编号", "问题代码", "字段", "级别", "说明"])
    ws.append(head)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    severity = {"error": "error" if en else "错误", "warning": "warning" if en else "警告"}
    for p in report.get("problems") or []:
        index = p.get("index")
        row = [index if isinstance(index, int) and index >= 0 else None,
               codes.get(str(index)), p.get("code"), p.get("field"), severity.get(p.get("severity"), ""),
               p.get("message")]
        ws.append([safe_cell(v) for v in row])
    info = wb.create_sheet("upload" if en else "上传")
    counts = report.get("counts") or {}
    for label_en, label_zh, value in (
            ("File", "文件", upload.get("file")), ("Layer", "图层", upload.get("layer")),
            ("Upload", "上传编号", upload.get("id")), ("Features", "要素数", counts.get("features")),
            ("Refused", "被拒绝", counts.get("refused")), ("Errors", "错误", counts.get("errors")),
            ("Warnings", "警告", counts.get("warnings")),
            ("Problems listed", "列出的问题", report.get("problems_listed"))):
        info.append([label_en if en else label_zh, safe_cell(value)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
