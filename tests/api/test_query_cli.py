"""The planners' commands: landeco query, export, stats, conflicts — the same answers as the API."""

from __future__ import annotations

import json

import pyogrio
import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.layers import test_query_cases as cases
from tests.layers.test_query_cases import LEASES, V1, mu

township = cases.township
runner = CliRunner()


@pytest.fixture
def env(township, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", township.render_as_string(hide_password=False))


def test_query_prints_totals(env):
    r = runner.invoke(app, ["query", "land_leases", "--min", "3000", "--max", "6000", "--unit", "mu"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("land_leases"))
    assert line.split()[1] == "3"
    r = runner.invoke(app, ["query", "land_leases", "--village", "特布德嘎查", "--json"])
    fc = json.loads(r.output)
    assert fc["summary"]["layers"]["land_leases"]["count"] == 4


def test_query_to_a_geopackage(env, tmp_path):
    out = tmp_path / "big.gpkg"
    r = runner.invoke(app, ["query", "land_leases", "--where", "status=active", "--sort", "-area_mu",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    frame = pyogrio.read_dataframe(out)
    assert list(frame["code"]) == sorted([c for c, v in LEASES.items() if v[3] == "active"],
                                         key=lambda c: -mu(LEASES[c][-1]))


def test_export_gbk_shapefile(env, tmp_path):
    out = tmp_path / "leases.zip"
    r = runner.invoke(app, ["export", "land_leases", "--format", "shp", "--encoding", "gbk",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    frame = pyogrio.read_dataframe(f"/vsizip/{out}/land_leases.shp")
    assert "国电双维铁路公司" in set(frame["LESSEE"])


def test_stats_and_conflicts(env, tmp_path):
    r = runner.invoke(app, ["stats", "caragana_plots", "--by", "planted_year"])
    assert r.exit_code == 0 and r.output.splitlines()[-1].startswith("合计,3,")
    r = runner.invoke(app, ["conflicts"])
    assert "leases_overlapping" in r.output
    out = tmp_path / "c.geojson"
    r = runner.invoke(app, ["conflicts", "outside_village", "--on", "2026-11-01", "--out", str(out)])
    assert r.exit_code == 0 and "1 pieces" in r.output
    assert json.loads(out.read_text())["features"][0]["properties"]["b_code"] == V1


@pytest.mark.parametrize("args, code", [(["query", "land_leases", "--min", "-3"], "invalid_area"),
                                        (["query", "land_leases", "--village", "月球"], "unknown_village"),
                                        (["export", "roads", "--out", "x.gpkg"], "unknown_layer")])
def test_errors_name_their_code(env, args, code):
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and f"error [{code}]" in r.output
