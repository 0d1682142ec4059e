"""Jobs over HTTP: queued with 202 + Location, followed, downloaded, private to their owner."""

from __future__ import annotations

import io

import openpyxl
import pytest

from layers import accounts
from layers.store.database import engine_for
from tests.conftest import client_for, job_finished


@pytest.fixture(scope="module")
def working(demo_url, tmp_path_factory):
    """The app over the demo township with its own job worker, acting for a surveyor."""
    with client_for(demo_url, tmp_path_factory.mktemp("home"), inprocess_worker=True) as client:
        yield client


def test_an_export_is_queued_followed_and_downloaded(working):
    r = working.post("/jobs/export/caragana_plots?format=xlsx&lang=en")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert r.json()["state"] in ("queued", "running", "succeeded")
    job = job_finished(working, location, 60)
    assert job["state"] == "succeeded" and job["progress"] == 1
    got = working.get(job["links"]["result"])
    assert got.status_code == 200
    assert "attachment" in got.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(got.content)).active
    assert sheet.max_row >= 300  # the demo's caragana plots, one row each
    listed = working.get("/jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]


def test_bad_exports_are_refused_before_anything_is_queued(working):
    before = len(working.get("/jobs?limit=500").json()["jobs"])
    assert working.post("/jobs/export/nope").status_code == 404
    assert working.post("/jobs/export/villages?format=docx").status_code == 400
    assert working.post("/jobs/export/villages?crs=3857").json()["code"] == "invalid_job_parameter"
    assert len(working.get("/jobs?limit=500").json()["jobs"]) == before


def test_a_job_is_its_owners(working, demo_url):
    job = working.post("/jobs/export/villages?format=geojson").json()
    engine = engine_for(demo_url.render_as_string(hide_password=False))
    if not any(u["name"] == "other-person" for u in accounts.list_users(engine=engine)):
        accounts.add_user(engine=engine, name="other-person", roles=["planner"], password="other-person-pw")
    _, token = accounts.create_token(engine=engine, name="other-person", label="tests")
    other = {"Authorization": f"Bearer {token}"}
    for path in (f"/jobs/{job['id']}", f"/jobs/{job['id']}/result"):
        r = working.get(path, headers=other)
        assert r.status_code == 404 and r.json()["code"] == "job_not_found"
    assert working.post(f"/jobs/{job['id']}/cancel", headers=other).status_code == 404
    assert job["id"] not in [j["id"] for j in working.get("/jobs", headers=other).json()["jobs"]]


def test_unknown_and_hostile_job_ids(working):
    for path in ("/jobs/999999999", "/jobs/0", "/jobs/-1", "/jobs/1e9", "/jobs/NaN",
                 "/jobs/99999999999999999999"):
        r = working.get(path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_the_result_of_an_unfinished_job_is_a_conflict(new_database, tmp_path):
    """No worker serves this database: the job stays queued."""
    with new_database("landeco_test_jobs_api") as url, client_for(url, tmp_path) as client:
        job = client.post("/jobs/export/villages").json()
        r = client.get(f"/jobs/{job['id']}/result")
        assert r.status_code == 409 and r.json()["code"] == "job_result_missing"
        cancelled = client.post(f"/jobs/{job['id']}/cancel").json()
        assert cancelled["state"] == "cancelled"
