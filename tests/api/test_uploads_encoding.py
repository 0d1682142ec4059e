"""POST /uploads with every text encoding case: the bytes decide, refusals are 4xx problems in zh or en.

Chinese text is stored as typed or the upload is refused with a code naming the encoding;
never a 500, never mojibake. File content quoted in messages is made safe to show.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyogrio
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for
from tests.data.fixtures import make

CONTRACTOR = "鄂托克前旗绿源生态建设有限公司"


@pytest.fixture(scope="module")
def upload_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_upload_enc") as url:
        yield url


@pytest.fixture
def client(upload_url: URL, tmp_path: Path):
    engine = engine_for(upload_url.render_as_string(hide_password=False))
    with client_for(upload_url, tmp_path / "home") as c:
        yield c
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE uploads, " + ", ".join(LAYERS) + " CASCADE"))


def post(client, path: Path, layer: str = "caragana_plots", query: str = "", headers=None, **options):
    with open(path, "rb") as fh:
        return client.post(f"/uploads{query}", files={"file": (path.name, fh)},
                           data={"layer": layer, **options}, headers=headers or {})


def shapefile_zip(tmp_path: Path, encoding: str, cpg: str | None, frame=None) -> Path:
    folder = tmp_path / f"{encoding}-{cpg}"
    shp = make.write_shapefile(make.caragana_frame(3) if frame is None else frame, folder, encoding=encoding)
    if cpg is not None:
        shp.with_suffix(".cpg").write_text(cpg, "ascii")
    return make.zip_shapefile(shp, folder / "p.zip")


def stored_contractor(upload_url: URL) -> str:
    with engine_for(upload_url.render_as_string(hide_password=False)).connect() as conn:
        return conn.scalar(sa.text("SELECT contractor FROM caragana_plots WHERE code = 'NT-0000'"))


@pytest.mark.parametrize(("encoding", "cpg", "chosen", "warning"), [
    ("UTF-8", "UTF-8", {"encoding": "utf-8", "source": "cpg"}, None),
    ("UTF-8", None, {"encoding": "utf-8", "source": "detected"}, None),
    ("GBK", None, {"encoding": "gb18030", "source": "detected"}, None),
    ("GBK", "UTF-8", {"encoding": "gb18030", "source": "detected"}, "encoding_cpg_contradicted"),
    ("UTF-8", "936", {"encoding": "utf-8", "source": "detected"}, "encoding_cpg_contradicted"),
])
def test_the_bytes_decide_and_chinese_arrives_as_typed(client, upload_url, tmp_path, encoding, cpg, chosen,
                                                       warning):
    r = post(client, shapefile_zip(tmp_path, encoding, cpg))
    assert r.status_code == 201, r.text
    report = r.json()["report"]
    assert {k: report["encoding"][k] for k in chosen} == chosen and report["can_commit"]
    assert report["encoding"]["text"]  # said in the reader's words (Chinese by default)
    assert {c for c in report["problem_codes"]} == ({warning} if warning else set())
    assert client.post(f"/uploads/{r.json()['id']}/commit").status_code == 200
    assert stored_contractor(upload_url) == CONTRACTOR


def test_truncated_multibyte_column_names_still_match(client, tmp_path):
    r = post(client, shapefile_zip(tmp_path, "UTF-8", "UTF-8"))
    mapping = {m["field"]: m["how"] for m in r.json()["report"]["mapping"] if m["field"]}
    # 地块编号 is 12 bytes in UTF-8: the DBF keeps 地块编 and a third of 号
    assert mapping["code"] == "truncated" and mapping["contractor"] == "truncated"


def test_refusals_are_problems_in_chinese_or_english(client, upload_url, tmp_path):
    gbk = shapefile_zip(tmp_path, "GBK", "UTF-8")
    zh = post(client, gbk, encoding="utf-8")
    assert zh.status_code == 422 and zh.headers["content-type"] == "application/problem+json"
    body = zh.json()
    assert body["code"] == "encoding_mismatch" and body["encoding"] == "utf-8"
    assert body["suggested"] == "gb18030"
    assert body["title"] == "文件被拒绝" and "utf-8" in body["detail"] and "您选择的编码" in body["detail"]
    assert "gb18030" in body["hint"] and "请选择" in body["hint"]
    en = post(client, gbk, query="?lang=en", encoding="utf-8")
    assert en.json()["title"] == "Upload refused" and "the encoding option" in en.json()["detail"]
    accept = post(client, gbk, headers={"Accept-Language": "en-GB,en;q=0.8"}, encoding="utf-8")
    assert accept.json()["title"] == "Upload refused" and accept.json()["code"] == "encoding_mismatch"
    assert post(client, gbk, query="?lang=zh", headers={"Accept-Language": "en"},
                encoding="utf-8").json()["title"] == "文件被拒绝"
    utf8 = shapefile_zip(tmp_path, "UTF-8", None)
    wrong = post(client, utf8, encoding="gbk")
    assert wrong.status_code == 422 and wrong.json()["code"] == "encoding_mismatch"
    assert wrong.json()["suggested"] == "utf-8"
    unknown = post(client, utf8, encoding="klingon</script>")
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_encoding"
    assert stored_contractor(upload_url) is None  # nothing written


def test_undecodable_text_is_refused_with_its_place(client, tmp_path):
    with zipfile.ZipFile(shapefile_zip(tmp_path, "GBK", None)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    dbf = next(n for n in members if n.lower().endswith(".dbf"))
    data = bytearray(members[dbf])
    header_len, record_len = int.from_bytes(data[8:10], "little"), int.from_bytes(data[10:12], "little")
    data[header_len + record_len + 1:header_len + record_len + 5] = b"\xff\xfe\x80\xff"  # feature 1, column 1
    members[dbf] = bytes(data)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    r = post(client, broken)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "encoding_undetermined" and r.json()["feature"] == 1
    assert "GB18030" in r.json()["detail"] and r.json()["hint"]


def test_geojson_csv_and_geopackage(client, upload_url, tmp_path):
    frame = make.caragana_frame(3, crs=4326)
    gbk = tmp_path / "plots.geojson"
    pyogrio.write_dataframe(frame, tmp_path / "u.geojson", driver="GeoJSON")
    gbk.write_bytes((tmp_path / "u.geojson").read_text("utf-8").encode("gbk"))
    r = post(client, gbk)
    assert r.status_code == 201, r.text
    encoding = r.json()["report"]["encoding"]
    assert (encoding["encoding"], encoding["source"]) == ("gb18030", "detected")
    assert client.post(f"/uploads/{r.json()['id']}/commit").status_code == 200
    assert stored_contractor(upload_url) == CONTRACTOR
    refused = post(client, gbk, encoding="utf-8")
    assert refused.status_code == 422 and refused.json()["code"] == "encoding_mismatch"
    csv = tmp_path / "plots.csv"
    pyogrio.write_dataframe(frame, csv, driver="CSV", layer_options={"GEOMETRY": "AS_WKT"})
    csv_gbk = tmp_path / "plots_gbk.csv"
    csv_gbk.write_bytes(csv.read_text("utf-8").encode("gbk"))
    for path in (csv, csv_gbk):
        c = post(client, path, mode="upsert")
        assert c.status_code == 201, c.text
        assert c.json()["report"]["crs"]["source"] == "coordinates" and c.json()["report"]["can_commit"]
    gpkg = tmp_path / "plots.gpkg"
    pyogrio.write_dataframe(frame, gpkg, driver="GPKG")
    assert post(client, gpkg, mode="upsert").status_code == 201
    g = post(client, gpkg, mode="upsert", encoding="gbk")
    assert g.status_code == 422 and g.json()["code"] == "encoding_mismatch"


def test_hostile_values_are_quoted_safely(client, tmp_path):
    frame = make.caragana_frame(3, crs=4326)
    frame["种植方式"] = ["</script><script>alert(1)</script>", "\u202e乱种\u200f", "长" * 10_000]
    frame["<b>\u202eevil</b>"] = ["x", "y", "z"]
    path = tmp_path / "hostile.geojson"
    pyogrio.write_dataframe(frame, path, driver="GeoJSON")
    r = post(client, path)
    assert r.status_code == 201, r.text
    report = r.json()["report"]
    problems = [p for p in report["problems"] if p["code"] == "value_not_allowed"]
    assert len(problems) == 3
    for p in problems:
        assert "\u202e" not in p["message"] and "\u200f" not in p["message"] and len(p["message"]) < 400
    assert "\\u202e乱种\\u200f" in problems[1]["params"]["value"]
    assert problems[2]["params"]["value"].endswith("…") and len(problems[2]["params"]["value"]) == 81
    page = client.get(f"/uploads?id={r.json()['id']}")
    assert page.status_code == 200 and "<script>alert(1)" not in page.text
    assert json.dumps(report)  # the stored report is plain JSON
