"""Zonal statistics over HTTP: the request checked at the edge, the job run, the series read."""

from __future__ import annotations

import pytest

from tests.conftest import client_for, job_finished
from tests.layers.test_zonal import township  # noqa: F401  (the demo township and its rasters)


@pytest.fixture(scope="module")
def client(township, tmp_path_factory):  # noqa: F811
    """The app over the township with its rasters and its own job worker, acting for a surveyor."""
    home = township["settings"].home  # where the rasters are stored
    with client_for(township["url"], home, inprocess_worker=True) as c:
        yield c


def test_a_zonal_job_is_queued_run_and_read_as_a_series(client, township):  # noqa: F811
    raster = township["rasters"]["ndvi_2020"]
    answer = client.post(f"/rasters/{raster.id}/zonal",
                         json={"layer": "grazing_bans", "ring_m": 500, "threshold": 0.5})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["kind"] == "zonal" and answer.headers["Location"] == job["links"]["self"]
    assert job["params"]["stats"][-1] == "share_above" and job["params"]["ring_m"] == 500
    done = job_finished(client, answer.headers["Location"], 120)
    assert done["state"] == "succeeded", done
    assert done["result"]["zones"] == ["feature", "ring_500"] and done["result"]["features"] > 0
    fid = 1
    series = client.get(f"/collections/grazing_bans/items/{fid}/zonal")
    assert series.status_code == 200 and series.headers["content-type"].startswith("application/json")
    body = series.json()
    assert body["layer"] == "grazing_bans" and body["feature_id"] == fid
    by_zone = {s["zone"]: s for s in body["series"] if s["kind"] == "ndvi"}
    assert set(by_zone) >= {"feature", "ring_500"}
    inside = next(p for p in by_zone["feature"]["points"] if p["raster_id"] == raster.id)
    assert inside["acquired"] == "2020-07-15" and inside["mean"] == pytest.approx(0.6, abs=0.01)
    assert inside["share_above"] == pytest.approx(1.0, abs=0.02) and inside["threshold"] == 0.5
    assert by_zone["feature"]["label"] == "归一化植被指数 (NDVI)"
    en = client.get(f"/collections/grazing_bans/items/{fid}/zonal?lang=en").json()
    assert {s["label"] for s in en["series"] if s["kind"] == "ndvi"} == {"Vegetation index (NDVI)"}


def test_a_feature_without_statistics_has_an_empty_series(client):
    answer = client.get("/collections/villages/items/1/zonal")
    assert answer.status_code == 200 and answer.json()["series"] == []


@pytest.mark.parametrize("path, code", [
    ("/collections/grazing_bans/items/999999/zonal", "feature_not_found"),
    ("/collections/grazing_bans/items/abc/zonal", "feature_not_found"),
    ("/collections/grazing_bans/items/-1/zonal", "feature_not_found"),
    ("/collections/no_such_layer/items/1/zonal", "unknown_layer"),
])
def test_unknown_features_are_404(client, path, code):
    answer = client.get(path)
    assert answer.status_code == 404 and answer.json()["code"] == code


@pytest.mark.parametrize("body, status, code", [
    ({"layer": "no_such_layer"}, 400, "unknown_zonal_layer"),
    ({"layer": "fence_lines"}, 400, "unknown_zonal_layer"),
    ({"layer": "caragana_plots", "stats": ["mean", "mode"]}, 400, "unknown_zonal_stat"),
    ({"layer": "caragana_plots", "stats": ["share_above"]}, 400, "invalid_zonal_parameter"),
    ({"layer": "caragana_plots", "ring_m": 0}, 400, "invalid_zonal_parameter"),
    ({"layer": "caragana_plots", "ring_m": 100000}, 400, "invalid_zonal_parameter"),
    ({"layer": "caragana_plots", "where": "no_such_field = 1"}, 400, "invalid_filter"),
    ({"layer": "caragana_plots", "where": "planted_year >"}, 400, "invalid_filter"),
    ({"layer": "caragana_plots", "colour": "red"}, 400, "invalid_parameter"),
    ({"stats": ["mean"]}, 400, "invalid_parameter"),
])
def test_bad_requests_are_refused_before_anything_is_queued(client, township, body, status, code):  # noqa: F811
    raster = township["rasters"]["uniform"]
    before = client.get("/jobs").json()
    answer = client.post(f"/rasters/{raster.id}/zonal", json=body)
    assert answer.status_code == status and answer.json()["code"] == code, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get("/jobs").json() == before


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(client, township, number):  # noqa: F811
    raster = township["rasters"]["uniform"]
    answer = client.post(f"/rasters/{raster.id}/zonal", content=f'{{"layer": "caragana_plots", '
                         f'"threshold": {number}}}', headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_parameter", answer.text


@pytest.mark.parametrize("raster_id", ["999999", "abc", "0", "-3", "1.5"])
def test_an_unknown_raster_is_404(client, raster_id):
    answer = client.post(f"/rasters/{raster_id}/zonal", json={"layer": "caragana_plots"})
    assert answer.status_code == 404 and answer.json()["code"] == "raster_not_found"


def test_anonymous_visitors_cannot_queue_but_can_read(township, tmp_path):  # noqa: F811
    raster = township["rasters"]["uniform"]
    with client_for(township["url"], tmp_path, surveyor=False) as anonymous:
        refused = anonymous.post(f"/rasters/{raster.id}/zonal", json={"layer": "caragana_plots"})
        assert refused.status_code == 401
        assert anonymous.get("/collections/grazing_bans/items/1/zonal").status_code == 200
