"""landeco's private PostgreSQL + PostGIS cluster in ``LANDECO_HOME`` (``<checkout>/.landeco``).

The zero-configuration default: without ``LANDECO_DATABASE_URL`` landeco creates its
own cluster with the machine's ``initdb`` and ``pg_ctl``, on a port of its own,
listening on loopback only, with a generated password (no trust authentication).
PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user and every server command runs as that user.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from layers.errors import ClusterError

__all__ = ["Cluster", "ClusterInfo", "find_bindir"]

DATABASE = "landeco"
SUPERUSER = "landeco"
FIRST_PORT = 54329
#: How many ports ``start`` tries when another program took the cluster's port meanwhile.
START_ATTEMPTS = 5
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "shared_buffers": "'512MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'256MB'",
    "max_connections": "100",
    "jit": "off",
}


@dataclass(frozen=True)
class ClusterInfo:
    """Where a cluster listens and how to log in; kept in ``cluster.json``."""

    port: int
    user: str
    password: str

    def url(self, database: str = DATABASE) -> str:
        """A SQLAlchemy URL for ``database`` on this cluster."""
        return (f"postgresql+psycopg://{self.user}:{self.password}"
                f"@127.0.0.1:{self.port}/{database}")


def find_bindir(explicit: Path | None = None) -> Path:
    """The folder of the newest installed PostgreSQL's server programs."""
    if explicit is not None:
        candidates = [Path(explicit)]
    else:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                            reverse=True)
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise ClusterError("PostgreSQL server programs (initdb, pg_ctl) not found: "
                       "install postgresql and postgis (`make setup`) or set LANDECO_PG_BINDIR")


def _free_port(start: int = FIRST_PORT) -> int:
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free port in {start}–{start + 199}")


class Cluster:
    """A private cluster in ``home/pg``; create, start, stop and ask its state."""

    def __init__(self, home: Path, bindir: Path | None = None) -> None:
        self.home = Path(home).absolute()
        self.datadir = self.home / "pg"
        self.logfile = self.home / "postgresql.log"
        self.infofile = self.home / "cluster.json"
        self._bindir = bindir

    # -- who runs the server -------------------------------------------------
    @property
    def bindir(self) -> Path:
        """Folder of initdb/pg_ctl."""
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        """The account the server runs as: ``postgres`` when we are root, else us."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterError("running as root needs the 'postgres' system user "
                               "(created by Debian's postgresql package)") from None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        user = self._server_user()
        if user is not None:
            cmd = ["runuser", "-u", user.pw_name, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env={**os.environ, "LC_ALL": "C.UTF-8"})
        if check and proc.returncode != 0:
            raise ClusterError(f"{args[0]} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    # -- state ----------------------------------------------------------------
    @property
    def exists(self) -> bool:
        """Whether the cluster has been created."""
        return (self.datadir / "PG_VERSION").exists() and self.infofile.exists()

    @property
    def running(self) -> bool:
        """Whether its server is up (``pg_ctl status``)."""
        if not self.exists:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.datadir), check=False).returncode == 0

    @property
    def info(self) -> ClusterInfo:
        """Port and credentials of a created cluster."""
        if not self.infofile.exists():
            raise ClusterError(f"no cluster in {self.home} (run `landeco db up`)")
        return ClusterInfo(**json.loads(self.infofile.read_text()))

    def status(self) -> dict[str, object]:
        """A summary for people: created, running, where."""
        state: dict[str, object] = {"home": str(self.home), "exists": self.exists,
                                    "running": self.running}
        if self.exists:
            state["port"] = self.info.port
        return state

    # -- lifecycle ------------------------------------------------------------
    def create(self) -> ClusterInfo:
        """Initdb a new cluster with a generated password; a no-op if it exists."""
        if self.exists:
            return self.info
        user = self._server_user()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.chmod(0o700)  # the password file, the data and the uploads: the service's only
        if self.datadir.exists():  # left over from an initdb that failed half-way
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(mode=0o700)
        info = ClusterInfo(port=_free_port(), user=SUPERUSER, password=secrets.token_urlsafe(24))
        pwfile = self.home / ".pwfile"
        pwfile.write_text(info.password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            for path in (self.datadir, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
            os.chown(self.home, user.pw_uid, user.pw_gid)
            self._check_reachable(user)
        try:
            self._run("initdb", "-D", str(self.datadir), "-U", SUPERUSER, "-E", "UTF8",
                      "--no-locale", "--auth=scram-sha-256", f"--pwfile={pwfile}")
        finally:
            pwfile.unlink(missing_ok=True)
        settings = {**SERVER_SETTINGS, "port": str(info.port)}
        with self._autoconf.open("a") as fh:
            fh.write("# landeco: private cluster, loopback only\n")
            fh.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self._write_info(info)
        return info

    @property
    def _autoconf(self) -> Path:
        return self.datadir / "postgresql.auto.conf"

    def _write_info(self, info: ClusterInfo) -> None:
        self.infofile.write_text(json.dumps(info.__dict__))
        self.infofile.chmod(0o600)

    def _move_to_port(self, info: ClusterInfo, port: int) -> ClusterInfo:
        """Make ``port`` the cluster's port: in its configuration and in ``cluster.json``."""
        conf = self._autoconf.read_text()
        conf, n = re.subn(r"(?m)^port = \d+$", f"port = {port}", conf)
        if n == 0:
            conf += f"port = {port}\n"
        self._autoconf.write_text(conf)  # rewritten in place: owner (postgres as root) kept
        moved = dataclasses.replace(info, port=port)
        self._write_info(moved)
        return moved

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        probe = subprocess.run(["runuser", "-u", user.pw_name, "--", "test", "-w",
                                str(self.home)], check=False)
        if probe.returncode != 0:
            raise ClusterError(f"the postgres user cannot write {self.home}: a parent folder "
                               "is not traversable; set LANDECO_HOME to a folder it can reach")

    def start(self, timeout: float = 60) -> ClusterInfo:
        """Create if needed and start the server; wait until it accepts connections."""
        info = self.create()
        if not self.running:
            info = self._start_server(info, timeout)
        self._wait(info, timeout)
        return info

    def _start_server(self, info: ClusterInfo, timeout: float) -> ClusterInfo:
        """``pg_ctl start``; when the port was taken since it was chosen, move to a free one.

        The port is chosen when the cluster is created and kept, so another program (or
        another stopped cluster, started first) may hold it by now.
        """
        self.logfile.touch()
        user = self._server_user()
        if user is not None:
            os.chown(self.logfile, user.pw_uid, user.pw_gid)
        for _ in range(START_ATTEMPTS):
            logged = self.logfile.stat().st_size
            proc = self._run("pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.logfile),
                             "-w", "-t", str(int(timeout)), check=False)
            if proc.returncode == 0:
                return info
            with self.logfile.open("rb") as fh:
                fh.seek(logged)
                log = fh.read().decode("utf-8", "replace")
            if "could not bind" not in log:
                raise ClusterError(f"pg_ctl failed: {(proc.stderr or proc.stdout).strip()}\n"
                                   f"{log.strip()[-2000:]}")
            info = self._move_to_port(info, _free_port(info.port + 1))
        raise ClusterError(f"the server found its port taken {START_ATTEMPTS} times "
                           f"(last tried {info.port}); see {self.logfile}")

    def stop(self) -> None:
        """Stop the server (fast shutdown); a no-op when it is not running."""
        if self.running:
            self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w")

    def destroy(self) -> None:
        """Stop the server and delete the cluster and everything in it."""
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)
        self.infofile.unlink(missing_ok=True)
        self.logfile.unlink(missing_ok=True)

    @staticmethod
    def _wait(info: ClusterInfo, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", info.port)) == 0:
                    return
            time.sleep(0.1)
        raise ClusterError(f"the server did not listen on 127.0.0.1:{info.port} "
                           f"within {timeout:.0f} s")
