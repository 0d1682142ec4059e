"""The private cluster starts, stops and reports its state, as root and as a normal user."""

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from layers.store.cluster import Cluster
from layers.store.database import create_database, ping

LANDECO = Path(sys.executable).with_name("landeco")


@pytest.fixture
def home():
    path = Path(tempfile.mkdtemp(prefix="landeco-cluster-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_cluster_start_status_stop(home):
    cluster = Cluster(home)
    assert cluster.status() == {"home": str(home), "exists": False, "running": False}

    info = cluster.start()
    assert cluster.running
    state = cluster.status()
    assert state["running"] and state["port"] == info.port

    url = info.url("landeco")
    create_database(url, exists_ok=True)
    assert ping(url)["postgis"].startswith("3.")

    # loopback only, password required
    with sa.create_engine(url).connect() as conn:
        assert conn.scalar(sa.text("SHOW listen_addresses")) == "127.0.0.1"
        assert conn.scalar(sa.text("SHOW password_encryption")) == "scram-sha-256"
    wrong = url.replace(info.password, "wrong-password")
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        sa.create_engine(wrong).connect()

    cluster.stop()
    assert not cluster.running
    assert cluster.status()["exists"]

    assert cluster.start() == info  # same port and password after a restart
    cluster.destroy()
    assert not cluster.exists


@pytest.mark.skipif(os.geteuid() != 0, reason="the root case only arises as root")
def test_as_root_the_server_runs_as_the_postgres_user(home):
    cluster = Cluster(home)
    cluster.start()
    try:
        pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        owner = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
        assert owner == "postgres"
    finally:
        cluster.destroy()


def _as_normal_user(home: Path) -> list[str]:
    """Run the CLI as an unprivileged account: ``nobody`` when we are root, else us."""
    if os.geteuid() != 0:
        return []
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    probe = subprocess.run(["runuser", "-u", "nobody", "--", "test", "-x", str(LANDECO)],
                           check=False)
    if probe.returncode != 0:
        pytest.skip("this checkout is not readable by other users")
    return ["runuser", "-u", "nobody", "--"]


def test_cluster_commands_as_a_normal_user(home):
    prefix = _as_normal_user(home)
    env = {"PATH": os.environ["PATH"], "LANDECO_HOME": str(home), "HOME": str(home)}

    def landeco(*args):
        return subprocess.run([*prefix, str(LANDECO), "db", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    up = landeco("up")
    assert up.returncode == 0, up.stderr
    assert "PostGIS running on 127.0.0.1:" in up.stdout
    status = landeco("status")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["running"] is True and state["postgis"].startswith("3.")
    if prefix:
        assert (home / "pg").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # readable by the service only

    down = landeco("down")
    assert down.returncode == 0, down.stderr
    stopped = landeco("status")
    assert stopped.returncode == 3
    assert json.loads(stopped.stdout)["running"] is False


def test_start_moves_to_a_free_port_when_its_port_was_taken(home):
    cluster = Cluster(home)
    chosen = cluster.create().port
    squatter = socket.socket()
    try:
        try:
            squatter.bind(("127.0.0.1", chosen))
            squatter.listen()
        except OSError:
            pass  # someone else took it already: the same case
        info = cluster.start()
        assert info.port != chosen
        assert json.loads(cluster.infofile.read_text())["port"] == info.port
        assert cluster.info == info
        engine = sa.create_engine(info.url("postgres"), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SHOW port")) == str(info.port)
    finally:
        squatter.close()
        cluster.destroy()
