"""A layer downloaded in any export format and sent back unchanged as an upsert changes nothing.

Edited elsewhere, it changes exactly what was edited; Chinese text comes back identical
(any mojibake would count as a change). Coordinate rounding (GeoJSON keeps 7 decimals) is
neither an overlap nor an edit.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.demo import load_demo
from layers.export import export_layer
from layers.importer import ImportOptions, run_import
from layers.registry import LAYERS
from layers.store.database import engine_for
from layers.upload_errors import UploadRefusedError

FORMATS = [("geojson", "utf-8", 4326), ("gpkg", "utf-8", 4326), ("shp", "utf-8", 4326), ("shp", "gbk", 4326),
           ("csv", "utf-8", 4326), ("gpkg", "utf-8", 4545), ("xlsx", "zh", 4326), ("xlsx", "en", 4326)]


@pytest.fixture(scope="module")
def engine(new_database) -> Iterator[sa.Engine]:
    with new_database("landeco_test_roundtrip") as url:
        load_demo(url)
        yield engine_for(URL.render_as_string(url, hide_password=False))


def export(engine: sa.Engine, layer: str, fmt: str, encoding: str, crs: int, tmp: Path) -> Path:
    """The layer as a file; for XLSX ``encoding`` is the language of the column titles."""
    with engine.connect() as conn:
        if fmt == "xlsx":
            out = export_layer(conn, layer, fmt, lang=encoding)
        else:
            out = export_layer(conn, layer, fmt, encoding=encoding, crs=crs)
    target = tmp / f"{layer}-{encoding}{out.path.suffix}"
    shutil.copyfile(out.path, target)
    return target


def upsert(engine: sa.Engine, path: Path, layer: str, tmp: Path, mode: str = "upsert") -> tuple[dict, dict]:
    """The report of an upsert, and the layer's rows after it; rolled back, so the layer stays."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            report = run_import(conn, path, tmp / f"w{uuid.uuid4().hex[:6]}",
                                ImportOptions(layer=layer, mode=mode), write=True)
            rows = {r.code: r for r in conn.execute(sa.text(
                f"SELECT code, to_jsonb(t) - 'geom' - 'updated_at' - 'created_at' AS row, "
                f"ST_AsText(geom) AS wkt FROM {LAYERS[layer].table} t"))}
        finally:
            trans.rollback()
    return report.as_dict(preview=False), rows


@pytest.mark.parametrize(("fmt", "encoding", "crs"), FORMATS, ids=[f"{f}-{e}-{c}" for f, e, c in FORMATS])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_unchanged_download_changes_nothing(engine, tmp_path, layer, fmt, encoding, crs):
    path = export(engine, layer, fmt, encoding, crs, tmp_path)
    report, rows = upsert(engine, path, layer, tmp_path)
    assert report["counts"]["errors"] == 0, report["problems"][:5]
    assert report["counts"]["features"] == len(rows) > 0
    assert report["committed"] and report["written"] == {"inserted": 0, "updated": 0, "deleted": 0}
    assert not [m for m in report["mapping"] if m["how"] == "extra"]  # nothing lands in extra


def test_an_edit_changes_that_feature_only(engine, tmp_path):
    path = export(engine, "villages", "geojson", "utf-8", 4326, tmp_path)
    doc = json.loads(path.read_text("utf-8"))
    first, second = doc["features"][0], doc["features"][1]
    first["properties"]["name"] = "新名字</script>\u202e"
    ring = second["geometry"]["coordinates"][0][0]
    ring[1] = [ring[1][0] + 0.0001, ring[1][1]]  # one vertex moved by about 9 m
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    with engine.connect() as conn:
        before = {r.code: r for r in conn.execute(sa.text(
            "SELECT code, name, ST_AsText(geom) AS wkt FROM villages"))}
    report, rows = upsert(engine, path, "villages", tmp_path)
    assert report["counts"]["errors"] == 0, report["problems"][:5]
    assert report["written"] == {"inserted": 0, "updated": 2, "deleted": 0}
    code1, code2 = first["properties"]["code"], second["properties"]["code"]
    assert rows[code1].row["name"] == "新名字</script>\u202e" and rows[code1].wkt == before[code1].wkt
    assert rows[code2].wkt != before[code2].wkt and rows[code2].row["name"] == before[code2].name
    assert all(rows[c].wkt == before[c].wkt and rows[c].row["name"] == before[c].name
               for c in before if c not in (code1, code2))


def test_a_spreadsheet_changes_attributes_and_keeps_geometries(engine, tmp_path):
    from openpyxl import load_workbook

    path = export(engine, "villages", "xlsx", "zh", 4326, tmp_path)
    book = load_workbook(path)
    sheet = book.active
    titles = [c.value for c in sheet[1]]
    code, name = sheet.cell(2, titles.index("编号") + 1).value, titles.index("名称") + 1
    sheet.cell(2, name).value = "改名嘎查"
    book.save(path)
    with engine.connect() as conn:
        query = sa.text("SELECT code, ST_AsText(geom) AS wkt FROM villages")
        before = {r.code: r.wkt for r in conn.execute(query)}
    report, rows = upsert(engine, path, "villages", tmp_path)
    assert report["written"] == {"inserted": 0, "updated": 1, "deleted": 0}, report["problems"][:3]
    assert rows[code].row["name"] == "改名嘎查" and {c: r.wkt for c, r in rows.items()} == before
    sheet.cell(3, titles.index("编号") + 1).value = "NEW-0001"
    book.save(path)
    report, _ = upsert(engine, path, "villages", tmp_path)
    # the new code is refused; the export's totals row is said to be left out
    assert report["problem_codes"] == {"code_not_in_layer": 1, "totals_row_left_out": 1}
    assert not report["committed"]
    with pytest.raises(UploadRefusedError) as refused:
        upsert(engine, path, "villages", tmp_path, mode="insert")
    assert refused.value.code == "geometry_absent"
