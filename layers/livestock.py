"""Livestock counts per village and year that staff enter from a CSV or XLSX sheet.

The counts are what the pasture's carrying capacity is compared with (:mod:`layers.carrying`).
A file is checked whole before anything is written: every problem (row, column, code,
message) is listed, and a file with one bad row writes nothing. A good file replaces the
counts of the villages and years it holds and leaves the others.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from layers.errors import BadRequestError, LandecoError
from layers.store.schema import LIVESTOCK_ANIMALS

__all__ = [
    "COLUMNS",
    "LivestockFileError",
    "LivestockFileUnreadableError",
    "list_livestock",
    "parse_livestock",
    "write_livestock",
]

#: Largest livestock file (bytes) and most rows: a township has a few dozen villages.
MAX_BYTES = 5 * 1024**2
MAX_ROWS = 10_000

#: Column → the names a sheet may give it (Chinese, English; case and spaces ignored).
COLUMNS: dict[str, tuple[str, ...]] = {
    "village_code": ("village_code", "嘎查村代码", "村代码", "代码", "code"),
    "village": ("village", "嘎查村", "村名", "嘎查村名称", "名称", "name"),
    "year": ("year", "年份", "年度"),
    "sheep": ("sheep", "绵羊"),
    "goats": ("goats", "goat", "山羊"),
    "cattle": ("cattle", "牛", "肉牛"),
    "horses": ("horses", "horse", "马"),
    "camels": ("camels", "camel", "骆驼"),
    "sheep_units": ("sheep_units", "羊单位", "折合羊单位"),
    "note": ("note", "备注", "说明"),
}
_BY_NAME = {n.strip().lower(): col for col, names in COLUMNS.items() for n in names}


class LivestockFileUnreadableError(BadRequestError):
    """The file is not a CSV or XLSX sheet landeco can read (or is empty, or too large)."""

    code = "livestock_file_unreadable"
    title = "Livestock file unreadable"


class LivestockFileError(LandecoError):
    """The sheet was read but some rows are wrong: nothing was written; every problem is listed."""

    code = "livestock_file_invalid"
    status = 422
    title = "Livestock file has errors"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        first = problems[0]
        where = f"row {first['row']}" if first.get("row") else "the file"
        super().__init__(f"{len(problems)} problem(s), nothing written; {where}: {first['message']}")
        self.problems = problems

    def extra(self) -> dict[str, object]:
        """Every problem: row (the sheet's own numbering, header = 1), column, code, message."""
        return {"problems": self.problems}


@dataclass
class LivestockRow:
    """One checked row, ready to write."""

    village_code: str
    year: int
    counts: dict[str, int]
    sheep_units: float | None
    note: str | None


def _rows_csv(data: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise LivestockFileUnreadableError("the CSV is neither UTF-8 nor GBK text")
    if "\x00" in text:
        raise LivestockFileUnreadableError("the CSV holds NUL characters: is it a binary file?")
    try:
        return [row for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise LivestockFileUnreadableError(f"the CSV cannot be read: {exc}") from None


def _rows_xlsx(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken zip or XML
        raise LivestockFileUnreadableError(f"the XLSX cannot be read: {type(exc).__name__}") from None
    try:
        ws = wb.worksheets[0]
        rows = []
        for row in ws.iter_rows(values_only=True):
            rows.append(list(row))
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        wb.close()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> float | None:
    """A cell as a finite number, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    text = str(value).strip().replace(",", "")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_livestock(conn: sa.Connection, data: bytes, filename: str) -> list[LivestockRow]:
    """The file's rows checked: village known, year 1990–2100, counts whole and not negative.

    Raises :class:`LivestockFileError` with every problem, or
    :class:`LivestockFileUnreadableError` when the file is not a sheet at all.
    """
    if len(data) > MAX_BYTES:
        raise LivestockFileUnreadableError(f"a livestock file is at most {MAX_BYTES // 1024**2} MB")
    name = (filename or "").lower()
    if name.endswith(".xlsx") or data[:2] == b"PK":
        rows = _rows_xlsx(data)
    elif name.endswith((".csv", ".txt")) or not name:
        rows = _rows_csv(data)
    else:
        raise LivestockFileUnreadableError("send a .csv or .xlsx file")
    rows = [r for r in rows if any(not _blank(c) for c in r)]
    if not rows:
        raise LivestockFileUnreadableError("the file is empty")
    if len(rows) - 1 > MAX_ROWS:
        raise LivestockFileUnreadableError(f"a livestock file holds at most {MAX_ROWS} rows")
    header, body = rows[0], rows[1:]
    problems: list[dict[str, Any]] = []
    columns: dict[str, int] = {}
    for i, cell in enumerate(header):
        if _blank(cell):
            continue
        key = _BY_NAME.get(str(cell).strip().lower())
        if key is None:
            problems.append(
                {
                    "row": 1,
                    "column": str(cell)[:100],
                    "code": "unknown_column",
                    "message": f"unknown column {str(cell)[:100]!r}; columns: "
                    + ", ".join(f"{k} ({v[1] if len(v) > 1 else v[0]})" for k, v in COLUMNS.items()),
                }
            )
        elif key in columns:
            problems.append(
                {
                    "row": 1,
                    "column": str(cell)[:100],
                    "code": "duplicate_column",
                    "message": f"two columns mean {key}",
                }
            )
        else:
            columns[key] = i
    if "village_code" not in columns and "village" not in columns:
        problems.append(
            {
                "row": 1,
                "column": "village_code",
                "code": "missing_column",
                "message": "a column village_code (嘎查村代码) or village (嘎查村) is needed",
            }
        )
    if "year" not in columns:
        problems.append(
            {
                "row": 1,
                "column": "year",
                "code": "missing_column",
                "message": "a column year (年份) is needed",
            }
        )
    if not any(a in columns for a in (*LIVESTOCK_ANIMALS, "sheep_units")):
        problems.append(
            {
                "row": 1,
                "column": None,
                "code": "missing_column",
                "message": "at least one count column (绵羊, 山羊, 牛, 马, 骆驼) or 羊单位 is needed",
            }
        )
    if problems:
        raise LivestockFileError(problems)
    villages = dict(conn.execute(sa.text("SELECT code, name FROM villages")).all())
    by_name = {n: c for c, n in villages.items()}
    out: list[LivestockRow] = []
    seen: dict[tuple[str, int], int] = {}

    def cell(row: list[Any], key: str) -> Any:
        i = columns.get(key)
        return row[i] if i is not None and i < len(row) else None

    for n, row in enumerate(body, start=2):
        bad = len(problems)
        code = cell(row, "village_code")
        code = None if _blank(code) else str(code).strip()
        vname = cell(row, "village")
        vname = None if _blank(vname) else str(vname).strip()
        if code is None and vname is not None:
            code = by_name.get(vname)
            if code is None:
                problems.append(
                    {
                        "row": n,
                        "column": "village",
                        "code": "unknown_village",
                        "message": f"no village called {vname[:100]!r}",
                    }
                )
        elif code is None:
            problems.append(
                {
                    "row": n,
                    "column": "village_code",
                    "code": "missing_value",
                    "message": "the village is missing",
                }
            )
        elif code not in villages:
            problems.append(
                {
                    "row": n,
                    "column": "village_code",
                    "code": "unknown_village",
                    "message": f"no village with code {code[:100]!r}",
                }
            )
        elif vname is not None and villages[code] != vname:
            problems.append(
                {
                    "row": n,
                    "column": "village",
                    "code": "village_mismatch",
                    "message": f"code {code} is {villages[code]}, not {vname[:100]}",
                }
            )
        year_value = _number(cell(row, "year"))
        year = None
        if year_value is None or not year_value.is_integer() or not 1990 <= year_value <= 2100:
            problems.append(
                {
                    "row": n,
                    "column": "year",
                    "code": "invalid_year",
                    "message": f"year {str(cell(row, 'year'))[:40]!r} is not a year from 1990 to 2100",
                }
            )
        else:
            year = int(year_value)
        counts: dict[str, int] = {}
        for a in LIVESTOCK_ANIMALS:
            value = cell(row, a)
            if _blank(value):
                counts[a] = 0
                continue
            number = _number(value)
            if number is None or not number.is_integer() or number < 0 or number > 10_000_000:
                problems.append(
                    {
                        "row": n,
                        "column": a,
                        "code": "invalid_count",
                        "message": f"{a} {str(value)[:40]!r} is not a whole number of animals",
                    }
                )
            else:
                counts[a] = int(number)
        su_cell = cell(row, "sheep_units")
        sheep_units = None
        if not _blank(su_cell):
            sheep_units = _number(su_cell)
            if sheep_units is None or sheep_units < 0 or sheep_units > 1e8:
                problems.append(
                    {
                        "row": n,
                        "column": "sheep_units",
                        "code": "invalid_sheep_units",
                        "message": f"sheep units {str(su_cell)[:40]!r} is not a number ≥ 0",
                    }
                )
        if sheep_units is None and not any(counts.values()) and len(problems) == bad:
            problems.append(
                {
                    "row": n,
                    "column": None,
                    "code": "no_count",
                    "message": "the row counts no animal and gives no sheep units",
                }
            )
        note = cell(row, "note")
        note = None if _blank(note) else str(note).strip()[:1000]
        if note is not None and "\x00" in note:
            problems.append(
                {"row": n, "column": "note", "code": "invalid_text", "message": "NUL in the note"}
            )
        if code is not None and year is not None:
            if (code, year) in seen:
                problems.append(
                    {
                        "row": n,
                        "column": "year",
                        "code": "duplicate_row",
                        "message": f"{code} {year} is also in row {seen[(code, year)]}",
                    }
                )
            seen.setdefault((code, year), n)
        if len(problems) == bad and code is not None and year is not None:
            out.append(LivestockRow(code, year, counts, sheep_units, note))
    if problems:
        raise LivestockFileError(problems)
    if not out:
        raise LivestockFileUnreadableError("the file holds a header but no rows")
    return out


def write_livestock(conn: sa.Connection, rows: list[LivestockRow], who: str | None) -> dict[str, int]:
    """Write the rows in the caller's transaction: insert, or replace the village's count of that year."""
    inserted = updated = 0
    names = ", ".join(LIVESTOCK_ANIMALS)
    values = ", ".join(f":{a}" for a in LIVESTOCK_ANIMALS)
    sets = ", ".join(f"{a} = excluded.{a}" for a in LIVESTOCK_ANIMALS)
    for r in rows:
        fresh = conn.scalar(
            sa.text(
                f"INSERT INTO livestock_counts (village_code, year, {names}, sheep_units, note, created_by, "
                "updated_by) "
                f"VALUES (:code, :year, {values}, :su, :note, :who, :who) "
                f"ON CONFLICT (village_code, year) DO UPDATE SET {sets}, sheep_units = excluded.sheep_units, "
                "note = excluded.note, updated_by = excluded.updated_by, updated_at = now() "
                "RETURNING (xmax = 0)"
            ),
            {
                "code": r.village_code,
                "year": r.year,
                **r.counts,
                "su": r.sheep_units,
                "note": r.note,
                "who": who,
            },
        )
        inserted += bool(fresh)
        updated += not fresh
    return {"written": len(rows), "inserted": inserted, "updated": updated}


def list_livestock(conn: sa.Connection, year: int | None = None) -> list[dict[str, Any]]:
    """The counts entered, by year and village, with the village's name."""
    rows = conn.execute(
        sa.text(
            "SELECT l.*, v.name AS village_name FROM livestock_counts l "
            "LEFT JOIN villages v ON v.code = l.village_code "
            "WHERE (CAST(:y AS integer) IS NULL OR l.year = :y) ORDER BY l.year, l.village_code"
        ),
        {"y": year},
    )
    out = []
    for r in rows:
        d = dict(r._mapping)
        for k in ("created_at", "updated_at"):
            d[k] = d[k].isoformat() if d[k] else None
        out.append(d)
    return out
