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
    dry = runner.invoke(app, ["import", str(zipped), "--layer", "caragana_plots", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "gb18030 (detected)" in dry.output and "EPSG:4545" in dry.output and "地块编号" in dry.output
    assert "dry run: nothing written" in dry.output and count(cli_db) == 0
    done = runner.invoke(app, ["import", str(zipped), "--layer", "caragana_plots", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["committed"] and report["written"]["inserted"] == 3 and count(cli_db) == 3


def test_errors_write_nothing_and_refusals_explain(cli_db, tmp_path):
    runner = CliRunner()
    frame = make.caragana_frame(3)
    frame.loc[2, "种植方式"] = "乱种"
    bad = runner.invoke(app, ["import", str(make.caragana_zip(tmp_path, frame=frame)), "--layer",
                              "caragana_plots"])
    assert bad.exit_code == 1 and "value_not_allowed" in bad.output and "nothing written" in bad.output
    assert count(cli_db) == 0
    shp = make.write_shapefile(make.caragana_frame(2), tmp_path / "src")
    no_prj = make.zip_shapefile(shp, tmp_path / "noprj.zip", drop=("prj",))
    refused = runner.invoke(app, ["import", str(no_prj), "--layer", "caragana_plots"])
    assert refused.exit_code == 2 and "crs_missing" in refused.output and "4545" in refused.output
    ok = runner.invoke(app, ["import", str(no_prj), "--layer", "caragana_plots", "--crs", "4545",
                             "--encoding", "gbk", "--mode", "upsert"])
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
