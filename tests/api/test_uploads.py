"""POST /uploads, GET /uploads/{id}, POST /uploads/{id}/commit over HTTP; hostile files touch nothing."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.registry import LAYERS
from layers.store.database import engine_for
from tests.conftest import client_for
from tests.data.fixtures import make

FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"


@pytest.fixture(scope="module")
def upload_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_uploads") as url:
        yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(upload_url: URL, home: Path, monkeypatch):
    monkeypatch.setenv("LANDECO_UPLOAD_MAX_BYTES", str(5 * 1024**2))
    engine = engine_for(upload_url.render_as_string(hide_password=False))
    with client_for(upload_url, home) as c:
        yield c
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE uploads, " + ", ".join(LAYERS) + " CASCADE"))


def snapshot(url: URL) -> dict[str, tuple]:
    """Every layer's row count and newest change: equal before and after means untouched."""
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        return {t: tuple(conn.execute(sa.text(f"SELECT count(*), max(updated_at) FROM {t}")).one())
                for t in LAYERS}


def post(client, path: Path, layer: str = "caragana_plots", **options):
    with open(path, "rb") as fh:
        return client.post("/uploads", files={"file": (path.name, fh)}, data={"layer": layer, **options})


def test_upload_report_then_commit(client, upload_url, tmp_path, home):
    before = snapshot(upload_url)
    r = post(client, make.caragana_zip(tmp_path, 4))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "checked" and body["percentage"] == 100
    rep = body["report"]
    assert rep["counts"]["features"] == 4 and rep["can_commit"]
    assert rep["encoding"]["encoding"] == "gb18030" and rep["crs"]["epsg"] == 4545
    matched = [{k: m[k] for k in ("column", "field", "how")} for m in rep["mapping"]]
    assert {"column": "地块编号", "field": "code", "how": "alias"} in matched
    assert {m["field_label"] for m in rep["mapping"] if m["field"] == "code"} == {"编号"}  # words in Chinese
    assert snapshot(upload_url) == before  # the check wrote nothing
    assert (home / "storage" / "uploads" / body["id"] / "original.zip").exists()
    preview = client.get(f"/uploads/{body['id']}/preview").json()
    assert len(preview["features"]) == 4 and preview["features"][0]["properties"]["code"] == "NT-0000"
    c = client.post(f"/uploads/{body['id']}/commit")
    assert c.status_code == 200, c.text
    assert c.json()["state"] == "committed" and c.json()["report"]["written"]["inserted"] == 4
    assert snapshot(upload_url)["caragana_plots"][0] == 4
    again = client.post(f"/uploads/{body['id']}/commit")
    assert again.status_code == 409 and again.json()["code"] == "upload_already_committed"
    state = client.get(f"/uploads/{body['id']}").json()
    assert state["state"] == "committed" and state["percentage"] == 100


def test_upload_with_errors_cannot_be_committed(client, upload_url, tmp_path):
    frame = make.caragana_frame(3)
    frame.loc[1, "种植方式"] = "乱种"
    body = post(client, make.caragana_zip(tmp_path, frame=frame)).json()
    [problem] = body["report"]["problems"]
    assert (problem["index"], problem["code"], problem["field"]) == (1, "value_not_allowed", "method")
    assert "乱种" in problem["message"] and "enclosure (划区围封)" in problem["message"]
    before = snapshot(upload_url)
    r = client.post(f"/uploads/{body['id']}/commit")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "upload_has_errors" and r.json()["problems"][0]["index"] == 1
    assert snapshot(upload_url) == before


def _shapefile_zip(tmp: Path, drop: tuple[str, ...] = (), corrupt: str | None = None, n: int = 3) -> Path:
    shp = make.write_shapefile(make.caragana_frame(n), tmp / "src")
    if corrupt == "dbf":
        dbf = shp.with_suffix(".dbf")
        dbf.write_bytes(dbf.read_bytes()[:200])
    if corrupt == "shp":
        shp.write_bytes(shp.read_bytes()[:150])
    return make.zip_shapefile(shp, tmp / "x.zip", drop=drop)


def _empty_zip(tmp: Path) -> Path:
    frame = make.caragana_frame(1).iloc[:0]
    shp = make.write_shapefile(frame, tmp / "src")
    return make.zip_shapefile(shp, tmp / "empty.zip")


def _oversize(target: Path) -> Path:
    target.write_bytes(b"PK\x03\x04" + b"\0" * (6 * 1024**2))  # the test limit is 5 MB
    return target


HOSTILE = {
    "not_a_zip": (lambda t: (t / "x.zip").write_bytes(b"hello, not a zip") and t / "x.zip", 415,
                  "unsupported_format"),
    "corrupt_zip": (lambda t: make.corrupt_bytes(t / "c.zip"), 422, "corrupt_zip"),
    "zip_bomb": (lambda t: make.bomb_zip(t / "b.zip"), 422, "zip_bomb"),
    "escaping_path": (lambda t: make.escaping_zip(t / "e.zip"), 422, "unsafe_path"),
    "oversize": (lambda t: _oversize(t / "big.zip"), 413, "too_large"),
    "corrupt_dbf": (lambda t: _shapefile_zip(t, corrupt="dbf"), 422, "corrupt_dbf"),
    "corrupt_shp": (lambda t: _shapefile_zip(t, corrupt="shp"), 422, "corrupt_shp"),
    "missing_shp": (lambda t: _shapefile_zip(t, drop=("shp",)), 422, "shapefile_incomplete"),
    "missing_shx": (lambda t: _shapefile_zip(t, drop=("shx",)), 422, "shapefile_incomplete"),
    "missing_dbf": (lambda t: _shapefile_zip(t, drop=("dbf",)), 422, "shapefile_incomplete"),
    "empty_shapefile": (_empty_zip, 422, "empty_file"),
    "shp_alone_not_zipped": (lambda t: FIXTURES / "ring_orientation" / "polygon_ring_orientation.shp", 415,
                             "unsupported_format"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_files_get_4xx_and_touch_nothing(client, upload_url, tmp_path, home, case):
    build, status, code = HOSTILE[case]
    post(client, make.caragana_zip(tmp_path / "ok", 2))  # something checked, not committed
    before = snapshot(upload_url)
    stored = sorted((home / "storage" / "uploads").iterdir())
    r = post(client, build(tmp_path))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code and r.json()["detail"]
    assert snapshot(upload_url) == before
    assert sorted((home / "storage" / "uploads").iterdir()) == stored  # the refused upload left no folder
    assert not list(tmp_path.rglob("evil.shp")) and not (home.parent / "evil.shp").exists()


def test_bad_options_and_unknown_upload(client, tmp_path):
    r = post(client, make.caragana_zip(tmp_path, 1), mode="merge")
    assert r.status_code == 400 and r.json()["code"] == "invalid_option"
    r = post(client, make.caragana_zip(tmp_path, 1), options='{"crs": "EPSG:99999999"}')
    assert r.status_code == 400 and r.json()["code"] == "crs_invalid"
    r = post(client, make.caragana_zip(tmp_path, 1), layer="nope")
    assert r.status_code == 400 and r.json()["code"] == "invalid_option"
    assert client.get("/uploads/" + "0" * 32).json()["code"] == "upload_not_found"
    assert client.get("/uploads/../../etc").status_code == 404


def test_fixture_gbk_cpg_936_lines_are_refused_for_a_polygon_layer(client, tmp_path):
    target = tmp_path / "cp936.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for part in (FIXTURES / "gbk_cpg_936").iterdir():
            zf.write(part, part.name)
    r = post(client, target, crs="4490")
    # the .cpg (936) wins over the wrong LDID; the coordinates (1..5) are nowhere near the banner
    assert r.status_code == 422 and r.json()["code"] == "outside_township"


def test_columns_option_and_its_mapping_in_the_report(client, tmp_path):
    frame = make.caragana_frame(2).rename(columns={"地块编号": "图号"})
    r = post(client, make.caragana_zip(tmp_path, frame=frame), options='{"columns": {"图号": "code"}}')
    assert r.status_code == 201, r.text
    matched = [{k: m[k] for k in ("column", "field", "how")} for m in r.json()["report"]["mapping"]]
    assert {"column": "图号", "field": "code", "how": "chosen"} in matched
    assert r.json()["report"]["can_commit"]
    r = post(client, make.caragana_zip(tmp_path / "b", frame=frame), options='{"columns": {"图号": "bogus"}}')
    assert r.status_code == 400 and r.json()["code"] == "invalid_option"


def test_full_storage_is_507_and_stores_nothing(client, upload_url, tmp_path, monkeypatch):
    assert post(client, make.caragana_zip(tmp_path / "a", 2)).status_code == 201
    monkeypatch.setenv("LANDECO_UPLOAD_QUOTA_BYTES", "100")
    home = tmp_path / "small"
    with client_for(upload_url, home) as small:
        r = post(small, make.caragana_zip(tmp_path / "b", 2))
    assert r.status_code == 507 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "upload_quota_exceeded" and body["quota_bytes"] == 100
    assert body["used_bytes"] > 0 and body["size_bytes"] > 0
    assert list((home / "storage" / "uploads").iterdir()) == []


def test_the_navigation_upload_link_opens_the_form(client):
    page = client.get("/uploads/new")
    assert page.status_code == 200 and "<form" in page.text
    assert client.get("/uploads/new?lang=en").status_code == 200


def test_an_impossible_date_in_a_geojson_is_a_refused_value_not_a_crash(client, tmp_path):
    """30 February: GDAL would type it a date Python cannot hold; it is one feature's bad value."""
    plots = [{"type": "Feature", "properties": {"code": f"X-{i}", "planted_year": 2020, "method": "enclosure",
                                                "inspected_on": day},
              "geometry": {"type": "Polygon", "coordinates": [[[107.15 + i / 100, 38.18],
                                                               [107.151 + i / 100, 38.18],
                                                               [107.151 + i / 100, 38.181],
                                                               [107.15 + i / 100, 38.18]]]}}
             for i, day in enumerate(["2023-02-30", "2023-02-20"])]
    path = tmp_path / "dates.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": plots}), "utf-8")
    with open(path, "rb") as fh:
        r = client.post("/uploads", files={"file": (path.name, fh)}, data={"layer": "caragana_plots"})
    assert r.status_code == 201, r.text
    problems = r.json()["report"]["problems"]
    assert [(p["index"], p["code"], p["field"]) for p in problems] == [(0, "value_invalid", "inspected_on")]
