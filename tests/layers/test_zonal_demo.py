"""The two examples on the demo township and its rasters (``landeco demo --rasters``)."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from layers.demo import load_demo
from layers.demo_rasters import load_demo_rasters
from layers.settings import Settings
from layers.store.database import engine_for
from layers.zonal import bans_against_rings, caragana_cover_by_year, run_examples

LATEST = "2022-07-15"


@pytest.fixture(scope="module")
def demo(new_database, tmp_path_factory):
    """A demo township of its own (the shared one is read-only) with its rasters, both examples run."""
    with new_database("landeco_test_zonal_demo") as url:
        load_demo(url)
        engine = engine_for(url.render_as_string(hide_password=False))
        load_demo_rasters(engine, Settings(home=tmp_path_factory.mktemp("demo-home")))
        summaries = run_examples(engine)
        yield engine, summaries


def test_every_ndvi_and_cover_raster_is_summarized_for_both_layers(demo):
    engine, summaries = demo
    with engine.connect() as conn:
        rasters = conn.execute(sa.text("SELECT count(*) FROM rasters WHERE kind IN ('ndvi', 'fvc')")).scalar()
        plots = conn.execute(sa.text("SELECT count(*) FROM caragana_plots")).scalar()
    assert rasters == 8 and len(summaries) == 2 * rasters
    for s in summaries:
        if s["layer"] == "caragana_plots":
            assert s["features"] == plots and s["features_with_values"] == plots
        else:
            assert s["zones"] == ["feature", "ring_500"]


def test_older_caragana_is_greener(demo):
    """Cover of each caragana plot by planting year: the earlier planted, the higher, on every date."""
    engine, _ = demo
    with engine.connect() as conn:
        table = caragana_cover_by_year(conn, kind="fvc")
    dates = sorted({r["acquired"] for r in table})
    assert len(dates) == 4
    for day in dates:
        rows = sorted((r for r in table if r["acquired"] == day), key=lambda r: r["planted_year"])
        years = np.array([r["planted_year"] for r in rows])
        cover = np.array([r["mean"] for r in rows])
        assert all(0 <= c <= 1 for c in cover)
        assert years.max() <= int(day[:4])  # plots planted after the image are bare ground on it: left out
        assert cover[0] > cover[-1] + 0.05, (day, dict(zip(years, cover, strict=True)))
        assert np.corrcoef(years, cover)[0, 1] < -0.8


def test_grazing_bans_are_greener_inside_than_in_their_ring_and_more_so_each_year(demo):
    """NDVI inside each ban against the 500 m ring outside it: the bans of 2019 recover."""
    engine, _ = demo
    with engine.connect() as conn:
        table = bans_against_rings(conn, kind="ndvi")
        since_2019 = set(conn.execute(sa.text(
            "SELECT id FROM grazing_bans WHERE valid_from = '2019-01-01'")).scalars())
    assert since_2019
    gaps = {}
    for day in sorted({r["acquired"] for r in table}):
        rows = [r for r in table if r["acquired"] == day and r["feature_id"] in since_2019]
        assert all(r["in_force"] for r in rows if day >= "2019-01-01")
        gaps[day] = float(np.mean([r["difference"] for r in rows]))
    assert list(gaps.values()) == sorted(gaps.values()), gaps
    assert gaps[LATEST] > 0 and gaps[LATEST] - min(gaps.values()) > 0.02, gaps
