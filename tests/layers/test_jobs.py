"""Jobs: queued in PostgreSQL, run by a worker, followed, cancelled, retried when a worker dies."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from layers import jobs
from layers.settings import Settings
from layers.store.database import make_engine

WORKER = Path(__file__).with_name("slow_job.py")
# declares the test_slow kind before any queue is made
_spec = importlib.util.spec_from_file_location("slow_job", WORKER)
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))


@pytest.fixture
def queue_db(new_database, tmp_path):
    """A migrated database of its own (workers see every job of their database)."""
    with new_database("landeco_test_jobs") as url:
        settings = Settings(database_url=url.render_as_string(hide_password=False), home=tmp_path,
                            job_heartbeat_s=0.5, job_stalled_after_s=3, job_max_attempts=2)
        engine = make_engine(url, statement_timeout_ms=30_000)
        yield settings, engine, jobs.JobQueue(settings, url)
        engine.dispose()


def _worker(settings: Settings, **env: str) -> subprocess.Popen:
    variables = {**os.environ, "LANDECO_DATABASE_URL": settings.database_url,
                 "LANDECO_HOME": str(settings.home), "LANDECO_JOB_HEARTBEAT_S": "0.5",
                 "LANDECO_JOB_STALLED_AFTER_S": "3",
                 "LANDECO_JOB_MAX_ATTEMPTS": "2", **env}
    return subprocess.Popen([sys.executable, str(WORKER)], env=variables, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for(engine, job_id, condition, timeout=40):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with engine.connect() as conn:
            job = jobs.get_job(conn, job_id)
        if condition(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {job}")


def test_an_export_job_writes_the_layer_to_a_file(demo_url, tmp_path):
    """The export reads the demo township: a queue on the demo database, a worker for it."""
    demo_settings = Settings(database_url=demo_url.render_as_string(hide_password=False), home=tmp_path)
    demo_engine = make_engine(demo_url, statement_timeout_ms=30_000)
    demo_queue = jobs.JobQueue(demo_settings, demo_url)
    job_id = jobs.submit(demo_queue, demo_engine, "export", {"layer": "villages", "format": "xlsx"},
                         "planner1")
    with demo_engine.connect() as conn:
        assert jobs.get_job(conn, job_id)["state"] == "queued"
    seen = []
    with jobs.worker_in_background(demo_queue, demo_engine):
        job = jobs.wait(demo_engine, job_id, timeout_s=60, on_progress=lambda j: seen.append(j["state"]))
    assert job["state"] == "succeeded", job
    assert job["progress"] == 1 and job["owner"] == "planner1"
    path = jobs.result_file(demo_settings, job)
    sheet = openpyxl.load_workbook(path).active
    with demo_engine.connect() as conn:
        villages = conn.execute(sa.text("SELECT count(*) FROM villages")).scalar()
    assert sheet.max_row - 1 >= villages  # a header, every village (a totals row may follow)
    assert seen[0] == "queued" and seen[-1] == "succeeded"
    demo_engine.dispose()


def test_bad_parameters_are_refused_when_queued_and_nothing_is_queued(queue_db):
    _, engine, queue = queue_db
    for params in ({"layer": "nope"}, {"layer": "villages", "format": "docx"},
                   {"layer": "villages", "crs": 3857}, {"layer": "villages", "extra": 1}):
        with pytest.raises(jobs.LandecoError):
            jobs.submit(queue, engine, "export", params, None)
    with pytest.raises(jobs.UnknownJobKindError):
        jobs.submit(queue, engine, "format_disk", {}, None)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM procrastinate_jobs "
                                    "WHERE task_name NOT LIKE 'chore.%'")).scalar() == 0


def test_a_queued_job_cancelled_never_runs(queue_db):
    settings, engine, queue = queue_db
    job_id = jobs.submit(queue, engine, "test_slow", {"steps": 2}, "me")
    with engine.begin() as conn:
        assert jobs.cancel_job(queue, conn, job_id)["state"] == "cancelled"
    with jobs.worker_in_background(queue, engine):
        time.sleep(2)
    with engine.connect() as conn:
        job = jobs.get_job(conn, job_id)
    assert job["state"] == "cancelled" and job["progress"] == 0
    assert job["error"]["code"] == "job_cancelled"
    assert not (settings.storage / "jobs" / str(job_id)).exists()


def test_a_running_job_stops_when_cancelled(queue_db):
    settings, engine, queue = queue_db
    job_id = jobs.submit(queue, engine, "test_slow", {"steps": 200, "pause": 0.05}, "me")
    with jobs.worker_in_background(queue, engine):
        _wait_for(engine, job_id, lambda j: j["progress"] > 0.05)
        with engine.begin() as conn:
            jobs.cancel_job(queue, conn, job_id)
        job = _wait_for(engine, job_id, lambda j: j["state"] == "cancelled")
    assert job["progress"] < 0.9  # it stopped, it did not run to the end
    assert not (settings.storage / "jobs" / str(job_id)).exists()  # its half-written files went


def test_a_job_whose_worker_dies_is_retried_by_another(queue_db):
    settings, engine, queue = queue_db
    job_id = jobs.submit(queue, engine, "test_slow", {"steps": 40, "pause": 0.1}, "me")
    first = _worker(settings)
    try:
        _wait_for(engine, job_id, lambda j: j["state"] == "running" and j["progress"] > 0)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with engine.connect() as conn:
        assert jobs.get_job(conn, job_id)["state"] == "running"  # the queue does not know yet
    second = _worker(settings)
    try:
        job = _wait_for(engine, job_id, lambda j: j["state"] in ("succeeded", "failed"), timeout=60)
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert job["state"] == "succeeded", job
    assert job["attempts"] >= 2 and job["result"]["steps"] == 40


def test_a_job_whose_workers_keep_dying_fails_instead_of_running_forever(queue_db):
    settings, engine, queue = queue_db
    job_id = jobs.submit(queue, engine, "test_slow", {"steps": 1000, "pause": 0.1}, "me")
    for attempt in (1, 2):  # job_max_attempts=2: two workers die holding it
        worker = _worker(settings)
        try:
            _wait_for(engine, job_id, lambda j, n=attempt: j["state"] == "running" and j["attempts"] == n
                      and j["progress"] > 0)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    watcher = _worker(settings, LANDECO_WORKER_CONCURRENCY="1")
    try:
        job = _wait_for(engine, job_id, lambda j: j["state"] == "failed", timeout=60)
    finally:
        watcher.terminate()
        watcher.wait(timeout=20)
    assert job["error"]["code"] == "worker_lost"


def test_finished_jobs_are_pruned_with_their_files(queue_db):
    settings, engine, queue = queue_db
    job_id = jobs.submit(queue, engine, "test_slow", {"steps": 1, "pause": 0}, "me")
    with jobs.worker_in_background(queue, engine):
        job = _wait_for(engine, job_id, lambda j: j["state"] == "succeeded")
    assert jobs.result_file(settings, job).read_text() == "1"
    assert jobs.prune_jobs(engine=engine, settings=settings) == 0  # younger than the retention
    assert jobs.prune_jobs(engine=engine, settings=settings, older_than_days=0) == 1
    assert not (settings.storage / "jobs" / str(job_id)).exists()
    with engine.connect() as conn, pytest.raises(jobs.JobNotFoundError):
        jobs.get_job(conn, job_id)
