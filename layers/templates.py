"""Empty files the field team fills in: one per layer, as a zipped shapefile, a GeoPackage or XLSX.

Each column is named so that the importer maps it back to its field by itself: the field's
Chinese name when the importer knows it, else its first Chinese alias, else the field name;
a shapefile's names fit the DBF's 10 bytes in GBK (its ``.cpg`` says ``936``). The XLSX holds
the same columns (no geometry) and a sheet describing every field: name, Chinese and English
label, type, unit, whether required, allowed values.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from layers.model import Field, Layer

__all__ = ["TEMPLATE_CRS", "TEMPLATE_FORMATS", "description_rows", "template_columns", "write_template"]

#: format → (file suffix, media type)
TEMPLATE_FORMATS: dict[str, tuple[str, str]] = {
    "shp": (".zip", "application/zip"),
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
#: CGCS2000 / 3-degree Gauss-Krüger CM 108E: the township surveyors' own CRS.
TEMPLATE_CRS = 4545
_GEOMETRY = {"MULTIPOLYGON": "MultiPolygon", "MULTILINESTRING": "MultiLineString", "MULTIPOINT": "MultiPoint"}
_DTYPES = {"text": object, "integer": "int64", "real": "float64", "date": "datetime64[ms]",
           "monthday": object}
_TYPES_ZH = {"text": "文本", "integer": "整数", "real": "小数", "date": "日期（2022-05-01）",
             "monthday": "月日（05-01）"}


def _has_cjk(name: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in name)


def _column(layer: Layer, f: Field, shapefile: bool) -> str:
    lookup = layer.file_columns()
    chinese = [n for n in (f.zh, *f.aliases) if _has_cjk(n)]
    for name in (*chinese, f.name, *f.aliases):
        if shapefile and len(name.encode("gbk", errors="replace")) > 10:
            continue
        if lookup.get(name.strip().upper()) is f:
            return name
    return f.name[:10] if shapefile else f.name


def template_columns(layer: Layer, fmt: str = "gpkg") -> dict[str, Field]:
    """The template's column names, in field order, each with the field it fills."""
    return {_column(layer, f, fmt == "shp"): f for f in layer.all_fields}


def description_rows(layer: Layer, lang: str = "zh") -> list[list[str]]:
    """The description sheet: a header, then one row per column of the template."""
    en = lang == "en"
    head = (["Column", "Field", "Label", "Chinese", "Type", "Unit", "Required", "Allowed values"] if en else
            ["列名", "字段", "中文名", "英文名", "类型", "单位", "必填", "可选值"])
    rows = [head]
    for column, f in template_columns(layer).items():
        allowed = "; ".join(f"{c.value} ({c.zh}, {c.en})" for c in f.choices)
        rows.append([column, f.name, f.en if en else f.zh, f.zh if en else f.en,
                     f.type if en else _TYPES_ZH[f.type], f.unit or "",
                     ("yes" if en else "是") if f.required else "", allowed])
    return rows


def _frame(layer: Layer, fmt: str) -> gpd.GeoDataFrame:
    columns = template_columns(layer, fmt)
    data = {name: pd.Series([], dtype=object if fmt == "shp" and f.type == "date" else _DTYPES[f.type])
            for name, f in columns.items()}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=TEMPLATE_CRS))


def _xlsx(layer: Layer, lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "数据" if lang != "en" else "data"
    ws.append(list(template_columns(layer)))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    info = wb.create_sheet("字段说明" if lang != "en" else "fields")
    for row in description_rows(layer, lang):
        info.append(row)
    for cell in info[1]:
        cell.font = Font(bold=True)
    note = ("The data sheet has no geometry: draw the features in QGIS or ArcGIS (shapefile or GeoPackage "
            "template) and copy these columns." if lang == "en" else
            "数据表不含图形：请在 QGIS 或 ArcGIS 中使用 shapefile 或 GeoPackage 模板绘制要素，"
            "再填写这些字段。")
    info.append([])
    info.append([note])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def write_template(layer: Layer, fmt: str, lang: str = "zh") -> bytes:
    """The empty template of ``layer`` in ``fmt`` (``shp``: a zip, ``gpkg``, ``xlsx``) as bytes."""
    if fmt == "xlsx":
        return _xlsx(layer, lang)
    folder = Path(tempfile.mkdtemp(prefix="landeco-template-"))
    try:
        frame = _frame(layer, fmt)
        kind = _GEOMETRY[layer.geometry_type]
        if fmt == "gpkg":
            path = folder / f"{layer.id}.gpkg"
            pyogrio.write_dataframe(frame, path, layer=layer.id, driver="GPKG", geometry_type=kind)
            return path.read_bytes()
        shp = folder / f"{layer.id}.shp"
        pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding="CP936", geometry_type=kind)
        shp.with_suffix(".cpg").write_text("936", "ascii")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(folder.glob(f"{layer.id}.*")):
                zf.write(part, part.name)
        return out.getvalue()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
