"""GDAL's OGC API – Features driver (Debian's gdal-bin) reads landeco as a desktop GIS would."""

from __future__ import annotations

import shutil
import subprocess

import pyogrio
import pytest
import sqlalchemy as sa
from shapely import wkb

from layers.registry import LAYERS
from layers.store.database import engine_for

pytestmark = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin is not installed")


def _run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=300,
                         env={"GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_ogrinfo_lists_every_collection(live_url):
    out = _run("ogrinfo", "-ro", "-q", f"OAPIF:{live_url}")
    for layer in LAYERS.values():
        assert f"{layer.id} (title: {layer.zh})" in out


def test_ogrinfo_reads_a_layer_summary(live_url, demo_url):
    out = _run("ogrinfo", "-ro", "-so", f"OAPIF:{live_url}", "land_leases")
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM land_leases")).scalar()
    assert f"Feature Count: {total}" in out
    assert "Multi Polygon" in out and "lessee: String" in out and "start_date: Date" in out
    assert "annual_rent_yuan: Real" in out  # whole yuan on the first page, still a real field
    assert "area_mu: Real" in out


def test_ogr2ogr_copies_a_whole_layer_over_many_pages(live_url, demo_url, tmp_path):
    """Every feature and attribute, Chinese text intact, through pages of 50."""
    gpkg = tmp_path / "caragana.gpkg"
    _run("ogr2ogr", "-f", "GPKG", str(gpkg), f"OAPIF:{live_url}", "caragana_plots", "-oo", "PAGE_SIZE=50")
    copied = pyogrio.read_dataframe(gpkg).set_index("code").sort_index()
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT code, village_code, planted_year, method, seedlings, survival_rate, contractor, "
            "inspected_on, note, area_mu, ST_AsBinary(geom) AS wkb FROM caragana_plots ORDER BY code")).all()
    assert len(rows) > 50 * 3  # more than one page, many times over
    assert list(copied.index) == [r.code for r in rows]
    for r in rows:
        got = copied.loc[r.code]
        assert got["village_code"] == r.village_code
        assert got["contractor"] == r.contractor  # Chinese names, byte for byte
        assert got["method"] == r.method and got["planted_year"] == r.planted_year
        assert got["seedlings"] == r.seedlings
        assert got["survival_rate"] == pytest.approx(r.survival_rate)
        assert got["area_mu"] == pytest.approx(r.area_mu, rel=1e-9)
        if r.inspected_on is not None:
            assert str(got["inspected_on"])[:10] == r.inspected_on.isoformat()
    assert any("合作社" in (r.contractor or "") or "嘎查" in (r.contractor or "") for r in rows)
    for r in rows[:20]:
        assert copied.loc[r.code].geometry.equals_exact(wkb.loads(r.wkb), tolerance=1e-7)


def test_ogr2ogr_with_a_filter_and_a_bbox(live_url, demo_url, tmp_path):
    gpkg = tmp_path / "big.gpkg"
    _run("ogr2ogr", "-f", "GPKG", str(gpkg), f"OAPIF:{live_url}", "caragana_plots",
         "-where", "area_mu > 20", "-spat", "107.0", "38.0", "107.4", "38.4")
    copied = pyogrio.read_dataframe(gpkg)
    with engine_for(demo_url.render_as_string(hide_password=False)).connect() as conn:
        expected = conn.execute(sa.text(
            "SELECT count(*) FROM caragana_plots WHERE area_mu > 20 AND "
            "ST_Intersects(geom, ST_MakeEnvelope(107.0, 38.0, 107.4, 38.4, 4326))")).scalar()
    assert len(copied) == expected > 0
    assert (copied["area_mu"] > 20).all()
