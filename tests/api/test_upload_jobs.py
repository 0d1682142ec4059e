"""Large uploads as jobs: checked and committed by a worker, followed, refused cleanly, on any process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from layers.store.database import engine_for
from tests.conftest import client_for, job_finished, surveyor_headers, until
from tests.data.fixtures import make


@pytest.fixture
def job_db(new_database):
    with new_database("landeco_test_upload_jobs") as url:
        yield url


def _post(client, path: Path, **data):
    with open(path, "rb") as fh:
        return client.post("/uploads", files={"file": (path.name, fh)},
                           data={"layer": "caragana_plots", **data})


def test_a_large_upload_is_checked_and_committed_by_a_job(job_db, tmp_path):
    engine = engine_for(job_db.render_as_string(hide_password=False))
    with client_for(job_db, tmp_path / "home", inprocess_worker=True, upload_job_bytes=0) as client:
        r = _post(client, make.caragana_zip(tmp_path, 6))
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["state"] == "checking" and body["links"]["job"].endswith(f"/jobs/{body['job']}")
        checked = until(lambda: client.get(r.headers["location"]).json(), lambda b: b["state"] != "checking")
        assert checked["state"] == "checked" and checked["report"]["counts"]["features"] == 6
        # the job is marked done a moment after the work it did is written
        job = job_finished(client, body["links"]["job"])
        assert job["state"] == "succeeded" and job["progress"] == 1
        assert job["links"]["page"].endswith(body["id"])  # the job page links the upload's report

        c = client.post(f"/uploads/{body['id']}/commit")
        assert c.status_code == 202, c.text
        done = until(lambda: client.get(r.headers["location"]).json(), lambda b: b["state"] == "committed")
        assert done["report"]["written"]["inserted"] == 6
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots")) == 6
            actions = conn.execute(sa.text("SELECT action, actor FROM audit WHERE upload_id = :u "
                                           "ORDER BY id"), {"u": body["id"]}).all()
        assert [a for a, _ in actions] == ["upload.check", "upload.commit"]
        assert {who for _, who in actions} == {"test-surveyor"}  # the job acts for who asked


def test_a_large_refused_file_leaves_nothing_and_the_job_says_why(job_db, tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip at all" * 100)
    with client_for(job_db, home, inprocess_worker=True, upload_job_bytes=0) as client:
        r = _post(client, bad)
        assert r.status_code == 202
        job = job_finished(client, r.json()["links"]["job"])
        assert job["state"] == "failed" and job["error"]["code"] not in ("job_failed", "worker_lost")
        assert client.get(r.headers["location"]).status_code == 404
    assert not any((home / "storage" / "uploads").glob(f"{r.json()['id']}*"))


def test_a_large_replace_without_confirmation_is_refused_before_any_job(job_db, tmp_path):
    with client_for(job_db, tmp_path / "home", inprocess_worker=True, upload_job_bytes=0) as client:
        first = _post(client, make.caragana_zip(tmp_path, 3)).json()
        until(lambda: client.get(f"/uploads/{first['id']}").json(), lambda b: b["state"] == "checked")
        client.post(f"/uploads/{first['id']}/commit")
        until(lambda: client.get(f"/uploads/{first['id']}").json(), lambda b: b["state"] == "committed")
        second = _post(client, make.caragana_zip(tmp_path / "again", 2), mode="replace").json()
        until(lambda: client.get(f"/uploads/{second['id']}").json(), lambda b: b["state"] == "checked")
        jobs_before = len(client.get("/jobs?limit=500").json()["jobs"])
        refused = client.post(f"/uploads/{second['id']}/commit")
        assert refused.status_code == 409 and refused.json()["code"] == "confirmation_required"
        assert len(client.get("/jobs?limit=500").json()["jobs"]) == jobs_before


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], probe: str | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(300):
        if probe is None:
            return proc
        try:
            httpx.get(probe, timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def test_two_web_processes_and_one_job_worker_share_the_work(job_db, tmp_path):
    """Checked through one process, committed through the other, the work done by a third."""
    env = {**os.environ, "LANDECO_DATABASE_URL": job_db.render_as_string(hide_password=False),
           "LANDECO_HOME": str(tmp_path / "home"), "LANDECO_UPLOAD_JOB_BYTES": "0",
           "LANDECO_INPROCESS_WORKER": "false", "LANDECO_ACCESS_LOG": "false"}
    ports = _port(), _port()
    procs = [_spawn(["-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(p)], env,
                    f"http://127.0.0.1:{p}/health") for p in ports]
    try:
        auth = surveyor_headers(job_db)
        one, other = (httpx.Client(base_url=f"http://127.0.0.1:{p}", headers=auth, timeout=60) for p in ports)
        zipped = make.caragana_zip(tmp_path, 4)
        with open(zipped, "rb") as fh:
            r = one.post("/uploads", files={"file": (zipped.name, fh)}, data={"layer": "caragana_plots"})
        assert r.status_code == 202
        upload = r.json()["id"]
        time.sleep(1)
        assert other.get(f"/uploads/{upload}").json()["state"] == "checking"  # no worker yet: it waits
        procs.append(_spawn(["-c", "from api.cli import main; main()", "worker"], env))
        until(lambda: other.get(f"/uploads/{upload}").json(), lambda b: b["state"] == "checked")
        assert other.post(f"/uploads/{upload}/commit").status_code == 202
        done = until(lambda: one.get(f"/uploads/{upload}").json(), lambda b: b["state"] == "committed")
        assert done["report"]["written"]["inserted"] == 4
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
