"""``landeco import``: the same checks and report on the command line, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.cli import app
from layers.store.database import engine_for
from tests.data.fixtures import make


@pytest.fixture
def cli_db(new_database, monkeypatch) -> Iterator[sa.Engine]:
    with new_database("landeco_test_cli") as url:
        monkeypatch.setenv("LANDECO_DATABASE_URL", url.render_as_string(hide_password=False))
        yield engine_for(url.render_as_string(hide_password=False))


def count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM caragana_plots"))


def test_dry_run_then_import(cli_db, tmp_path):
    runner = CliRunner()
    zipped = make.caragana_zip(tmp_path, 3)
    dry = runner.invoke(app, ["import", str(zipped), "--layer", "caragana_plots", "--dry-run",
                              "--lang", "en"])
    assert dry.exit_code == 0, dry.output
    assert "gb18030 (detected)" in dry.output and "EPSG:4545" in dry.output and "地块编号" in dry.output
    assert "dry run: nothing written" in dry.output and count(cli_db) == 0
    zh = runner.invoke(app, ["import", str(zipped), "--layer", "caragana_plots", "--dry-run"])
    assert zh.exit_code == 0, zh.output
    assert "根据文件内容检测" in zh.output and "试运行：未写入任何内容" in zh.output
    assert "编号 (code)" in zh.output and "按别名" in zh.output  # field labels, how each column matched
    done = runner.invoke(app, ["import", str(zipped), "--layer", "caragana_plots", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["committed"] and report["written"]["inserted"] == 3 and count(cli_db) == 3


def test_errors_write_nothing_and_refusals_explain(cli_db, tmp_path):
    runner = CliRunner()
    frame = make.caragana_frame(3)
    frame.loc[2, "种植方式"] = "乱种"
    bad = runner.invoke(app, ["import", str(make.caragana_zip(tmp_path, frame=frame)), "--layer",
                              "caragana_plots", "--lang", "en"])
    assert bad.exit_code == 1 and "value_not_allowed" in bad.output and "nothing written" in bad.output
    assert "'乱种' is not one of" in bad.output
    bad_zh = runner.invoke(app, ["import", str(make.caragana_zip(tmp_path, frame=frame)), "--layer",
                                 "caragana_plots"])
    assert bad_zh.exit_code == 1 and "「乱种」不是可选的值" in bad_zh.output
    assert "未写入任何内容" in bad_zh.output
    assert count(cli_db) == 0
    shp = make.write_shapefile(make.caragana_frame(2), tmp_path / "src")
    no_prj = make.zip_shapefile(shp, tmp_path / "noprj.zip", drop=("prj",))
    refused = runner.invoke(app, ["import", str(no_prj), "--layer", "caragana_plots"])
    assert refused.exit_code == 2 and "crs_missing" in refused.output and "4545" in refused.output
    assert "文件没有说明坐标系" in refused.output
    ok = runner.invoke(app, ["import", str(no_prj), "--layer", "caragana_plots", "--crs", "4545",
                             "--encoding", "gbk", "--mode", "upsert", "--lang", "en"])
    assert ok.exit_code == 0, ok.output
    assert "gbk (override)" in ok.output and count(cli_db) == 2


def test_column_option(cli_db, tmp_path):
    frame = make.caragana_frame(2).rename(columns={"地块编号": "图号"})
    zipped = make.caragana_zip(tmp_path, frame=frame)
    args = ["import", str(zipped), "--layer", "caragana_plots", "--column", "图号=code"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert count(cli_db) == 2


def test_prune_removes_old_uploads_and_says_what(cli_db, tmp_path, monkeypatch):
    from layers.importer import ImportOptions
    from layers.settings import Settings
    from layers.uploads import create_upload

    monkeypatch.setenv("LANDECO_HOME", str(tmp_path / "home"))
    settings = Settings()
    ids = []
    for name in ("old", "new"):
        zipped = make.caragana_zip(tmp_path / name, 2)
        with open(zipped, "rb") as fh:
            ids.append(create_upload(engine=cli_db, settings=settings, file=fh, file_name=f"{name}.zip",
                                     layer="caragana_plots",
                                     options=ImportOptions(layer="caragana_plots"))["id"])
    with cli_db.begin() as conn:
        conn.execute(sa.text("UPDATE uploads SET created_at = now() - interval '40 days' WHERE id = :id"),
                     {"id": ids[0]})
    runner = CliRunner()
    dry = runner.invoke(app, ["uploads", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would remove {ids[0]}" in dry.output and "old.zip" in dry.output and ids[1] not in dry.output
    assert (settings.storage / "uploads" / ids[0]).exists()
    done = runner.invoke(app, ["uploads", "prune"])
    assert done.exit_code == 0, done.output
    assert f"removed {ids[0]}" in done.output and "1 upload(s) removed; freed" in done.output
    assert sorted(p.name for p in (settings.storage / "uploads").iterdir()) == [ids[1]]
    assert "0 upload(s) removed" in runner.invoke(app, ["uploads", "prune", "--older-than", "1"]).output
    with cli_db.connect() as conn:
        assert list(conn.scalars(sa.text("SELECT id FROM uploads"))) == [ids[1]]


def _lying_zip(tmp_path, encoding: str, cpg: str | None, name: str) -> object:
    """The caragana plots in ``encoding`` with a ``.cpg`` saying ``cpg`` (or none), zipped."""
    shp = make.write_shapefile(make.caragana_frame(3), tmp_path / name, encoding=encoding)
    if cpg is not None:
        shp.with_suffix(".cpg").write_text(cpg, "ascii")
    return make.zip_shapefile(shp, tmp_path / f"{name}.zip")


@pytest.mark.parametrize(("encoding", "cpg", "chosen"), [
    ("UTF-8", "UTF-8", "utf-8 (cpg)"), ("UTF-8", None, "utf-8 (detected)"),
    ("GBK", None, "gb18030 (detected)"),
    ("GBK", "UTF-8", "gb18030 (detected)"), ("UTF-8", "936", "utf-8 (detected)")])
def test_encodings_on_the_command_line(cli_db, tmp_path, encoding, cpg, chosen):
    runner = CliRunner()
    path = _lying_zip(tmp_path, encoding, cpg, "p")
    done = runner.invoke(app, ["import", str(path), "--layer", "caragana_plots", "--lang", "en"])
    assert done.exit_code == 0, done.output
    assert chosen in done.output and "Traceback" not in done.output
    if cpg not in (None, "UTF-8") or (cpg == "UTF-8" and encoding == "GBK"):
        assert "encoding_cpg_contradicted" in done.output
    with cli_db.connect() as conn:
        assert conn.scalar(sa.text("SELECT contractor FROM caragana_plots WHERE code = 'NT-0000'")) == \
            "鄂托克前旗绿源生态建设有限公司"  # exactly as typed, never mojibake


def test_a_contradicted_override_is_refused_not_a_traceback(cli_db, tmp_path):
    runner = CliRunner()
    path = _lying_zip(tmp_path, "GBK", "UTF-8", "p")
    wrong = runner.invoke(app, ["import", str(path), "--layer", "caragana_plots", "--encoding", "utf-8",
                                "--dry-run", "--json"])
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output
    body = json.loads(wrong.stdout)
    assert body["code"] == "encoding_mismatch" and "utf-8" in body["detail"] and "gb18030" in body["hint"]
    assert "您选择的编码" in body["detail"]  # Chinese by default
    en = runner.invoke(app, ["import", str(path), "--layer", "caragana_plots", "--encoding", "klingon",
                             "--lang", "en"])
    assert en.exit_code == 2 and "unknown_encoding" in en.output and "use utf-8, gbk or gb18030" in en.output
