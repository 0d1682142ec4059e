"""Printed maps over HTTP and from the command line."""

import io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from api.cli import app as cli

PROBLEM = "application/problem+json"


def _ink(png: bytes) -> float:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return float((pixels != 255).any(axis=1).mean())


@pytest.mark.parametrize("layer", ["subsidence_zones", "grazing_bans", "caragana_plots", "land_leases"])
def test_png_of_each_layer(demo_client, layer):
    r = demo_client.get(f"/maps/{layer}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert 50_000 < len(r.content) < 5_000_000
    assert _ink(r.content) > 0.02


def test_pdf_and_bad_requests(demo_client):
    r = demo_client.get("/maps/land_leases.pdf", params={"lang": "en"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    for path, status, code in [("/maps/nope.png", 404, "unknown_layer"),
                               ("/maps/villages.gif", 400, "invalid_parameter"),
                               ("/maps/caragana_plots.png?by=contractor", 400, "invalid_style_field")]:
        r = demo_client.get(path)
        assert (r.status_code, r.headers["content-type"], r.json()["code"]) == (status, PROBLEM, code)


def test_landeco_map_writes_the_file(demo_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", demo_url.render_as_string(hide_password=False))
    runner = CliRunner()
    out = tmp_path / "柠条.png"
    result = runner.invoke(cli, ["map", "caragana_plots", "--out", str(out), "--by", "survival_rate"])
    assert result.exit_code == 0, result.output
    assert _ink(out.read_bytes()) > 0.02
    bad = runner.invoke(cli, ["map", "nope", "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 1 and "unknown_layer" in bad.output
    assert not (tmp_path / "x.png").exists()
    wrong = runner.invoke(cli, ["map", "villages", "--out", str(tmp_path / "x.gif")])
    assert wrong.exit_code == 2
