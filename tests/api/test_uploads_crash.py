"""A real uvicorn is killed (SIGKILL) mid-commit: nothing is written, and the commit can be run again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.store.database import engine_for
from tests.conftest import surveyor_headers
from tests.data.fixtures import make


@pytest.fixture
def crash_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_crash") as url:
        yield url


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: URL, home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LANDECO_DATABASE_URL": url.render_as_string(hide_password=False),
           "LANDECO_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/uploads/new", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "uvicorn did not start")


def test_killing_the_server_mid_commit_writes_nothing(crash_url, tmp_path):
    engine = engine_for(crash_url.render_as_string(hide_password=False))
    with engine.begin() as conn:  # something already in the layer, which must survive as it is
        conn.execute(sa.text("INSERT INTO caragana_plots (code, planted_year, method, geom) VALUES "
                             "('KEEP-1', 2019, 'enclosure', ST_Multi(ST_MakeEnvelope(107, 38, 107.001, "
                             "38.001, 4326)))"))
    zipped = make.grid_zip(tmp_path, 30_000)
    home, port = tmp_path / "home", _port()
    server = _serve(crash_url, home, port)
    base = f"http://127.0.0.1:{port}"
    auth = surveyor_headers(crash_url)
    try:
        with open(zipped, "rb") as fh:
            r = httpx.post(f"{base}/uploads", files={"file": ("grid.zip", fh)},
                           data={"layer": "caragana_plots"}, timeout=600, headers=auth)
        assert r.status_code == 201, r.text
        upload_id = r.json()["id"]
        assert r.json()["report"]["can_commit"]
        with httpx.Client(timeout=600, headers=auth) as client:
            # the commit request is left running; the upload's row tells how far it got
            pending = subprocess.Popen([sys.executable, "-c", f"import httpx; httpx.post('{base}/uploads/"
                                        f"{upload_id}/commit', timeout=600, headers={auth!r})"])
            seen = 0.0
            for _ in range(600):
                state = client.get(f"{base}/uploads/{upload_id}").json()
                seen = state["percentage"]
                if state["state"] == "committing" and 10 <= seen < 100:
                    break
                time.sleep(0.05)
            assert state["state"] == "committing", state
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        pending.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    # the killed connection's transaction is rolled back by PostgreSQL
    for _ in range(100):
        with engine.connect() as conn:
            busy = conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                       "current_database() AND pid <> pg_backend_pid()"))
        if not busy:
            break
        time.sleep(0.1)
    with engine.connect() as conn:
        assert list(conn.scalars(sa.text("SELECT code FROM caragana_plots"))) == ["KEEP-1"]
        assert conn.scalar(sa.text("SELECT to_regclass('upload_caragana_plots')")) is None
    # after a restart the upload says how far it got, and that its committer died
    server = _serve(crash_url, home, port)
    try:
        state = httpx.get(f"{base}/uploads/{upload_id}", headers=auth).json()
        assert state["state"] == "interrupted" and state["percentage"] >= seen, state
        assert state["stage"] is None
        leftovers = list((home / "storage" / "uploads" / upload_id).glob("work-*"))
        assert leftovers  # the killed commit left its unpacked files
        again = httpx.post(f"{base}/uploads/{upload_id}/commit", timeout=600, headers=auth)
        assert again.status_code == 200, again.text
        assert again.json()["state"] == "committed"
        assert again.json()["report"]["written"]["inserted"] == 30_000
        assert all(not p.exists() for p in leftovers)
        assert not list((home / "storage" / "uploads" / upload_id).glob("work-*"))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    with engine.connect() as conn:  # every feature once, and what was there before
        assert conn.execute(sa.text("SELECT count(*), count(DISTINCT code) FROM caragana_plots")).one() == (
            30_001, 30_001)
        assert conn.scalar(sa.text("SELECT count(*) FROM caragana_plots WHERE code = 'KEEP-1'")) == 1


def test_two_workers_commit_one_upload_at_once_one_200_one_409(crash_url, tmp_path):
    """Two server processes sharing the database and the storage folder: checked by one,
    committed by both at once, written once."""
    engine = engine_for(crash_url.render_as_string(hide_password=False))
    home = tmp_path / "home"
    servers = [(_serve(crash_url, home, port), f"http://127.0.0.1:{port}") for port in (_port(), _port())]
    auth = surveyor_headers(crash_url)
    try:
        with open(make.grid_zip(tmp_path, 3000), "rb") as fh:
            r = httpx.post(f"{servers[0][1]}/uploads", files={"file": ("grid.zip", fh)},
                           data={"layer": "caragana_plots"}, timeout=600, headers=auth)
        assert r.status_code == 201, r.text
        barrier, answers = threading.Barrier(2), []

        def commit(base: str) -> None:
            barrier.wait()
            answers.append(httpx.post(f"{base}/uploads/{r.json()['id']}/commit", timeout=600, headers=auth))

        threads = [threading.Thread(target=commit, args=(base,)) for _proc, base in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = [httpx.get(f"{base}/uploads/{r.json()['id']}", headers=auth).json()["state"]
                for _proc, base in servers]
    finally:
        for proc, _base in servers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    ok, refused = sorted(answers, key=lambda a: a.status_code)
    assert (ok.status_code, refused.status_code) == (200, 409), (ok.text, refused.text)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] in ("upload_busy", "upload_already_committed")
    assert seen == ["committed", "committed"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), count(DISTINCT code) FROM caragana_plots")).one() == (
            3000, 3000)
