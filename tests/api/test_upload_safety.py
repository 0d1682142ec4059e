"""What replace and upsert destroy, the confirmation a replace needs, skipping refused features,
empty templates and the problem list as XLSX, over HTTP (and the CLI's ``uploads commit``)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import openpyxl
import pytest
import sqlalchemy as sa
from shapely.affinity import translate
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from layers import audit
from layers.registry import LAYERS
from layers.store.database import engine_for
from layers.templates import template_columns
from tests.conftest import client_for
from tests.data.fixtures import make


@pytest.fixture(scope="module")
def safety_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_upsafety") as url:
        yield url


@pytest.fixture
def engine(safety_url: URL) -> sa.Engine:
    return engine_for(safety_url.render_as_string(hide_password=False))


@pytest.fixture
def client(safety_url: URL, tmp_path: Path, engine):
    with client_for(safety_url, tmp_path / "home") as c:
        yield c
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE uploads, " + ", ".join(LAYERS) + " CASCADE"))


def post(client, path: Path, name: str | None = None, layer: str = "caragana_plots", **data):
    with open(path, "rb") as fh:
        r = client.post("/uploads", files={"file": (name or path.name, fh)}, data={"layer": layer, **data})
    assert r.status_code == 201, r.text
    return r.json()


def codes(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT code FROM caragana_plots ORDER BY code")))


def loaded(client, tmp_path: Path, n: int = 5) -> None:
    up = post(client, make.caragana_zip(tmp_path / "first", n))
    assert client.post(f"/uploads/{up['id']}/commit").status_code == 200


def test_replace_lists_what_it_deletes_and_needs_confirmation(client, engine, tmp_path):
    loaded(client, tmp_path, 5)
    frame = make.caragana_frame(3)
    frame["地块编号"] = ["NT-0000", "NEW-1", "NEW-2"]
    up = post(client, make.caragana_zip(tmp_path / "b", frame=frame), mode="replace")
    stake = up["report"]["at_stake"]
    assert stake["deleted"] == 5 and stake["gone"] == 4 and stake["size_unit"] == "亩"
    assert [f["code"] for f in stake["features"]] == ["NT-0001", "NT-0002", "NT-0003", "NT-0004", "NT-0000"]
    assert stake["features"][-1]["in_file"] is True and stake["features"][0]["in_file"] is False
    # 5 plots of 100 m × 100 m = 5 ha = 75 亩
    assert stake["size_total"] == pytest.approx(75, rel=0.01)
    r = client.post(f"/uploads/{up['id']}/commit")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "confirmation_required" and r.json()["deleted"] == 5
    assert codes(engine) == [f"NT-{i:04d}" for i in range(5)]
    assert client.get(f"/uploads/{up['id']}").json()["state"] == "checked"
    r = client.post(f"/uploads/{up['id']}/commit", params={"confirm": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["report"]["written"] == {"inserted": 3, "updated": 0, "deleted": 5}
    assert r.json()["report"]["at_stake"]["deleted"] == 5  # the committed report still says so
    assert codes(engine) == ["NEW-1", "NEW-2", "NT-0000"]


def test_replace_of_an_empty_layer_needs_no_confirmation(client, engine, tmp_path):
    up = post(client, make.caragana_zip(tmp_path, 2), mode="replace")
    assert up["report"]["at_stake"]["deleted"] == 0
    assert client.post(f"/uploads/{up['id']}/commit").status_code == 200
    assert len(codes(engine)) == 2


def test_upsert_lists_what_it_overwrites(client, engine, tmp_path):
    loaded(client, tmp_path, 3)
    frame = make.caragana_frame(4)
    frame["成活率"] = 0.9  # the survey of a later year: every plot's survival changed
    up = post(client, make.caragana_zip(tmp_path / "b", frame=frame), mode="upsert")
    stake = up["report"]["at_stake"]
    assert stake["overwritten"] == 3 and stake["deleted"] == 0
    assert [f["code"] for f in stake["features"]] == ["NT-0000", "NT-0001", "NT-0002"]
    assert client.post(f"/uploads/{up['id']}/commit").status_code == 200  # upserts delete nothing
    assert client.get(f"/uploads/{up['id']}").json()["report"]["written"] == {
        "inserted": 1, "updated": 3, "deleted": 0}


def _flawed(n: int = 4) -> gpd.GeoDataFrame:
    """Plots 0 and 2 good, 1 with a method nobody knows, 3 lying over plot 0."""
    frame = make.caragana_frame(n)
    frame.loc[1, "种植方式"] = "乱种"
    frame.loc[3, "geometry"] = translate(make.parcel(0), 10, 10)
    return frame


def test_without_skip_nothing_can_be_committed(client, tmp_path):
    up = post(client, make.caragana_zip(tmp_path, frame=_flawed()))
    assert up["report"]["can_commit"] is False and up["report"]["counts"]["refused"] == 2
    assert client.post(f"/uploads/{up['id']}/commit").json()["code"] == "upload_has_errors"


def test_skip_refused_writes_the_good_features_and_reports_the_rest(client, engine, tmp_path):
    up = post(client, make.caragana_zip(tmp_path, frame=_flawed()), skip_refused="true")
    rep = up["report"]
    assert rep["skip_refused"] is True and rep["can_commit"] is True
    assert rep["counts"]["refused"] == 2 and rep["counts"]["importable"] == 2
    assert {p["code"] for p in rep["problems"]} == {"value_not_allowed", "overlap"}
    assert rep["feature_codes"] == {"1": "NT-0001", "3": "NT-0003"}
    r = client.post(f"/uploads/{up['id']}/commit")
    assert r.status_code == 200, r.text
    done = r.json()["report"]
    assert done["written"]["inserted"] == 2 and done["counts"]["refused"] == 2
    assert {p["index"] for p in done["problems"] if p["severity"] == "error"} == {1, 3}
    assert codes(engine) == ["NT-0000", "NT-0002"]
    with engine.connect() as conn:
        [commit] = audit.query(conn, action="upload.commit", limit=1)
    assert commit["upload_id"] == up["id"] and commit["detail"]["left_out"] == 2


def test_skip_refused_is_a_boolean(client, tmp_path):
    with open(make.caragana_zip(tmp_path, 2), "rb") as fh:
        r = client.post("/uploads", files={"file": ("a.zip", fh)},
                        data={"layer": "caragana_plots", "skip_refused": "perhaps"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_option"


def test_preview_marks_features_with_problems(client, tmp_path):
    up = post(client, make.caragana_zip(tmp_path, frame=_flawed()))
    fc = client.get(f"/uploads/{up['id']}/preview").json()
    marked = {f["properties"]["landeco_index"]: f["properties"]["landeco_problem"] for f in fc["features"]}
    # 1 was refused while reading (drawn from its own shape), 3 by the overlap check
    assert marked == {0: False, 2: False, 3: True, 1: True}


@pytest.mark.parametrize("fmt", ["gpkg", "shp"])
def test_templates_open_in_geopandas_and_import_cleanly(client, tmp_path, fmt):
    r = client.get(f"/uploads/templates/caragana_plots.{fmt}")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    path = tmp_path / f"t{'.zip' if fmt == 'shp' else '.gpkg'}"
    path.write_bytes(r.content)
    frame = gpd.read_file(path)
    expected = list(template_columns(LAYERS["caragana_plots"], fmt))
    assert list(frame.columns) == [*expected, "geometry"] and len(frame) == 0
    assert frame.crs.to_epsg() == 4545 and "种植年份" in expected and "编号" in expected
    # the field team fills it in: every column is matched to its field by itself
    filled = gpd.GeoDataFrame({"编号": ["T-1"], "种植年份": [2023], "种植方式": ["划区围封"]},
                              geometry=[make.parcel(0)], crs=4545).reindex(columns=[*expected, "geometry"])
    filled = gpd.GeoDataFrame(filled, geometry="geometry", crs=4545)
    target = tmp_path / "filled.gpkg"
    filled.to_file(target, driver="GPKG")
    rep = post(client, target)["report"]
    assert rep["counts"]["errors"] == 0, rep["problems"]
    assert all(m["field"] is not None for m in rep["mapping"]), rep["mapping"]


def test_xlsx_template_describes_the_fields(client):
    r = client.get("/uploads/templates/land_leases.xlsx?lang=en")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["data", "fields"]
    head = [c.value for c in wb["data"][1]]
    assert head == list(template_columns(LAYERS["land_leases"]))
    rows = {row[1]: row for row in wb["fields"].iter_rows(min_row=2, values_only=True) if row and row[1]}
    assert rows["code"][6] == "yes" and "active" in rows["status"][7]


def test_templates_refuse_unknown_layers_and_formats(client):
    assert client.get("/uploads/templates/nowhere.gpkg").status_code == 404
    r = client.get("/uploads/templates/caragana_plots.exe")
    assert r.status_code == 400 and r.json()["code"]


def test_problem_list_xlsx_keeps_hostile_values_as_text(client, tmp_path):
    frame = _flawed()
    frame.loc[1, "地块编号"] = "=HYPERLINK(\"http://evil.example\",\"点我\")"
    frame.loc[0, "地块编号"] = "+1"  # the overlap check refuses the larger code of the pair: 3's
    frame.loc[3, "地块编号"] = "@SUM(1+1)"
    up = post(client, make.caragana_zip(tmp_path, frame=frame), name="=cmd|' calc'!A0.zip")
    r = client.get(f"/uploads/{up['id']}/problems.xlsx")
    assert r.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb["问题"]
    assert [c.value for c in ws[1]][:3] == ["要素序号（从 0 起）", "要素编号", "问题代码"]
    rows = list(ws.iter_rows(min_row=2))
    by_index = {row[0].value: row for row in rows}
    assert by_index[1][1].value == "'=HYPERLINK(\"http://evil.example\",\"点我\")"
    assert by_index[3][1].value == "'@SUM(1+1)" and by_index[3][2].value == "overlap"
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
    info = {row[0].value: row[1] for row in wb["上传"].iter_rows()}
    assert info["文件"].value == "'=cmd|' calc'!A0.zip" and info["文件"].data_type == "s"


def test_page_keeps_the_choices_after_a_refusal(client, tmp_path):
    r = client.get("/uploads")
    assert '<option value="" selected disabled>' in r.text  # no layer chosen in advance
    r = client.post("/uploads/form", files={"file": ("<b>坏</b>.zip", b"not a zip")},
                    data={"layer": "land_leases", "mode": "upsert", "crs": "EPSG:4545", "encoding": "gbk",
                          "columns": "图号=code", "skip_refused": "true",
                          "csrf_token": client.get("/uploads").text.split('name="csrf_token" value="')[1]
                          .split('"')[0]})
    assert r.status_code == 415 and 'id="refused"' in r.text
    assert '<option value="land_leases" selected>' in r.text and '<option value="upsert" selected>' in r.text
    assert 'value="EPSG:4545"' in r.text and 'value="gbk"' in r.text and 'value="图号=code"' in r.text
    assert 'id="skip-refused" name="skip_refused" value="true" checked' in r.text
    assert "&lt;b&gt;坏&lt;/b&gt;.zip" in r.text and "<b>坏</b>" not in r.text


def test_recent_uploads_on_the_page(client, tmp_path):
    up = post(client, make.caragana_zip(tmp_path, 2), name="<img src=x onerror=alert(1)>.zip")
    page = client.get("/uploads").text
    assert f'data-id="{up["id"]}" data-state="checked"' in page
    assert "&lt;img src=x onerror=alert(1)&gt;.zip" in page and "<img src=x" not in page


def test_cli_uploads_commit_needs_yes_for_a_replace(client, engine, tmp_path, safety_url, monkeypatch):
    from api.cli import app

    loaded(client, tmp_path, 3)
    up = post(client, make.caragana_zip(tmp_path / "b", 1), mode="replace")
    monkeypatch.setenv("LANDECO_DATABASE_URL", safety_url.render_as_string(hide_password=False))
    monkeypatch.setenv("LANDECO_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    refused = runner.invoke(app, ["uploads", "commit", up["id"]])
    assert refused.exit_code == 2 and "confirmation_required" in refused.output and "--yes" in refused.output
    assert len(codes(engine)) == 3
    done = runner.invoke(app, ["uploads", "commit", up["id"], "--yes"])
    assert done.exit_code == 0, done.output
    assert "committed" in done.output and codes(engine) == ["NT-0000"]


def test_cli_import_replace_needs_yes(client, engine, tmp_path, safety_url, monkeypatch):
    from api.cli import app

    loaded(client, tmp_path, 3)
    monkeypatch.setenv("LANDECO_DATABASE_URL", safety_url.render_as_string(hide_password=False))
    monkeypatch.setenv("LANDECO_HOME", str(tmp_path / "home"))
    path = make.caragana_zip(tmp_path / "b", 1)
    runner = CliRunner()
    args = ["import", str(path), "--layer", "caragana_plots", "--mode", "replace"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "confirmation_required" in refused.output
    assert len(codes(engine)) == 3
    done = runner.invoke(app, [*args, "--yes"])
    assert done.exit_code == 0, done.output
    assert codes(engine) == ["NT-0000"]


def test_template_zip_has_a_gbk_cpg(client):
    r = client.get("/uploads/templates/fence_lines.shp")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.read("fence_lines.cpg") == b"936"
        assert {Path(n).suffix for n in zf.namelist()} >= {".shp", ".shx", ".dbf", ".prj"}
