"""``landeco raster add|list|show``: the same checks as the API, on the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.cli import app
from layers.store.database import engine_for
from tests.gis.test_raster import hand_written_tiff
from tests.layers.test_rasters import ndvi_file


@pytest.fixture
def cli_db(new_database, monkeypatch, tmp_path) -> Iterator[sa.Engine]:
    with new_database("landeco_test_raster_cli") as url:
        monkeypatch.setenv("LANDECO_DATABASE_URL", url.render_as_string(hide_password=False))
        monkeypatch.setenv("LANDECO_HOME", str(tmp_path / "home"))
        yield engine_for(url.render_as_string(hide_password=False))


def test_add_list_show(cli_db, tmp_path):
    runner = CliRunner()
    src = ndvi_file(tmp_path)
    added = runner.invoke(app, ["raster", "add", str(src), "--kind", "ndvi", "--date", "2022-07-15",
                                "--source", "Sentinel-2"])
    assert added.exit_code == 0, added.output
    assert "raster 1 added" in added.output and "EPSG:32648" in added.output
    as_json = runner.invoke(app, ["raster", "add", str(src), "--kind", "fvc", "--date", "2021-07-15",
                                  "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["kind"] == "fvc"

    listed = runner.invoke(app, ["raster", "list"])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert [line.split()[1:3] for line in lines] == [["fvc", "2021-07-15"], ["ndvi", "2022-07-15"]]
    only = runner.invoke(app, ["raster", "list", "--kind", "ndvi", "--json"])
    assert [json.loads(x)["id"] for x in only.stdout.splitlines()] == [1]

    shown = runner.invoke(app, ["raster", "show", "1"])
    assert shown.exit_code == 0
    body = json.loads(shown.stdout)
    assert body["source"] == "Sentinel-2" and Path(body["uri"]).is_file()
    with cli_db.connect() as conn:
        assert conn.scalar(sa.text("SELECT actor FROM audit WHERE action = 'raster.add' LIMIT 1"))


def test_refusals_explain_and_store_nothing(cli_db, tmp_path):
    runner = CliRunner()
    huge = runner.invoke(app, ["raster", "add", str(hand_written_tiff(tmp_path / "h.tif", 10**9, 10**9)),
                               "--kind", "ndvi", "--date", "2022-07-15"])
    assert huge.exit_code == 1 and "raster_dimensions_too_large" in huge.output
    bad_date = runner.invoke(app, ["raster", "add", str(ndvi_file(tmp_path)), "--kind", "ndvi",
                                   "--date", "2022-02-30"])
    assert bad_date.exit_code == 1 and "invalid_raster_parameter" in bad_date.output
    missing = runner.invoke(app, ["raster", "show", "42"])
    assert missing.exit_code == 1 and "raster_not_found" in missing.output
    with cli_db.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM rasters")) == 0
    assert not any((tmp_path / "home" / "storage" / "rasters").glob("*"))


def test_zonal_statistics_from_the_command_line(cli_db, tmp_path):
    """``landeco raster zonal``: plots' statistics over a raster, stored, with a ring; refusals say why."""
    runner = CliRunner()
    added = runner.invoke(app, ["raster", "add", str(ndvi_file(tmp_path, value=0.42)), "--kind", "ndvi",
                                "--date", "2022-07-15"])
    assert added.exit_code == 0, added.output
    with cli_db.begin() as conn:  # two plots inside the raster, one planted 2019, one 2021
        conn.execute(sa.text(
            "INSERT INTO caragana_plots (code, planted_year, method, geom) SELECT 'Z-' || y, y, 'enclosure', "
            "ST_Multi(ST_Buffer(ST_Translate(ST_PointOnSurface(footprint), 0.002 * (y - 2020), 0)"
            "::geography, 60)::geometry) FROM rasters, (VALUES (2019), (2021)) v(y) WHERE id = 1"))
    ran = runner.invoke(app, ["raster", "zonal", "1", "caragana_plots", "--ring", "100", "--json"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)
    assert summary["features"] == 2 and summary["features_with_values"] == 2
    assert summary["zones"] == ["feature", "ring_100"] and summary["mean_of_means"] == pytest.approx(0.42)
    with cli_db.connect() as conn:
        stored = conn.execute(sa.text("SELECT zone, count(*), min(mean), max(mean) FROM zonal_stats "
                                      "WHERE raster_id = 1 AND layer = 'caragana_plots' GROUP BY zone "
                                      "ORDER BY zone")).all()
    assert [(z, n) for z, n, _, _ in stored] == [("feature", 2), ("ring_100", 2)]
    assert all(lo == pytest.approx(0.42) and hi == pytest.approx(0.42) for _, _, lo, hi in stored)

    only = runner.invoke(app, ["raster", "zonal", "1", "caragana_plots", "--where", "planted_year = 2019"])
    assert only.exit_code == 0 and "1 features, 1 with values" in only.output
    for args, code in ((["9", "caragana_plots"], "raster_not_found"),
                       (["1", "fence_lines"], "unknown_zonal_layer"),
                       (["1", "caragana_plots", "--stats", "mean,average"], "unknown_zonal_stat"),
                       (["1", "caragana_plots", "--where", "nonsense ="], "invalid_filter")):
        refused = runner.invoke(app, ["raster", "zonal", *args])
        assert refused.exit_code == 1 and code in refused.output, (args, refused.output)


def test_delete_asks_then_removes_the_raster_and_its_statistics(cli_db, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["raster", "add", str(ndvi_file(tmp_path)), "--kind", "ndvi",
                               "--date", "2022-07-15"]).exit_code == 0
    kept = runner.invoke(app, ["raster", "delete", "1"], input="n\n")
    assert kept.exit_code == 1 and "删除该栅格" in kept.output
    with cli_db.connect() as conn:
        uri = conn.scalar(sa.text("SELECT uri FROM rasters WHERE id = 1"))
    assert Path(uri).is_file()
    gone = runner.invoke(app, ["raster", "delete", "1", "--yes"])
    assert gone.exit_code == 0 and "raster 1 removed" in gone.output
    assert not Path(uri).exists()
    with cli_db.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM rasters")) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM audit WHERE action = 'raster.delete'")) == 1
    missing = runner.invoke(app, ["raster", "delete", "1", "--yes"])
    assert missing.exit_code == 1 and "raster_not_found" in missing.output
