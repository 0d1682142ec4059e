"""One-file backups: the database (``pg_dump`` custom format), stored uploads, a manifest.

The archive is a tar with ``manifest.json`` first (landeco's marker, versions, and the
size and SHA-256 of every other member), ``database.dump``, and ``storage/uploads/…``.
A restore reads the whole archive and checks every checksum before it writes anything,
and goes only into an empty database (the dump is restored in one transaction), so a
damaged or foreign archive leaves the target as it was. ``pg_dump``/``pg_restore`` are
the server's own major version when installed (``/usr/lib/postgresql/<major>/bin``),
else the newest, else ``LANDECO_PG_BINDIR``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.errors import LandecoError
from layers.settings import Settings
from layers.store.database import engine_for

__all__ = ["FORMAT", "BackupDamagedError", "BackupError", "BackupForeignError", "RestoreTargetNotEmptyError",
           "create_backup", "read_manifest", "restore_backup"]

#: The manifest's marker: an archive without it is not landeco's.
FORMAT = "landeco-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
STORAGE = "storage/uploads"
_CHUNK = 1024 * 1024


class BackupError(LandecoError):
    """``pg_dump`` or ``pg_restore`` failed, or cannot be found."""

    code = "backup_failed"
    status = 500
    title = "Backup failed"


class BackupDamagedError(LandecoError):
    """The archive is cut short, altered, or a member's checksum differs: nothing was written."""

    code = "backup_damaged"
    title = "Damaged archive"


class BackupForeignError(LandecoError):
    """The file is not a landeco backup (no manifest, another format, an unknown schema)."""

    code = "backup_foreign"
    title = "Not a landeco backup"


class RestoreTargetNotEmptyError(LandecoError):
    """A restore goes into an empty database and storage only."""

    code = "restore_target_not_empty"
    status = 409
    title = "Target not empty"


# --- the PostgreSQL programs -----------------------------------------------------------------

def _server_major(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.text("SHOW server_version_num"))) // 10000


def pg_program(name: str, major: int, settings: Settings) -> Path:
    """``pg_dump`` or ``pg_restore`` of the server's major version (or newer: they read older)."""
    candidates = [Path(settings.pg_bindir)] if settings.pg_bindir else []
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    candidates += sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin")
                          if p.parent.name.isdigit() and int(p.parent.name) > major),
                         key=lambda p: int(p.parent.name))
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / name).exists():
            return folder / name
    raise BackupError(f"{name} for PostgreSQL {major} not found: install postgresql-client-{major} "
                      "(`make setup`) or set LANDECO_PG_BINDIR")


def _libpq(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the programs, the password in the environment (not in ``ps``)."""
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = ["--host", url.host or "localhost", "--port", str(url.port or 5432),
            "--dbname", url.database or ""]
    if url.username:
        args += ["--username", url.username]
    return args, env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-2000:]}")


# --- writing ----------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _versions(conn: sa.Connection) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        landeco = package_version("landeco")
    except PackageNotFoundError:
        landeco = None
    return {"landeco": landeco,
            "schema_revision": conn.scalar(sa.text("SELECT version_num FROM alembic_version")),
            "postgresql": conn.scalar(sa.text("SHOW server_version")),
            "postgis": conn.scalar(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'"))}


def create_backup(url: URL, settings: Settings, out: Path) -> dict[str, Any]:
    """Write the archive to ``out`` (through a temporary file, renamed when whole); its manifest."""
    engine = engine_for(url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        major = _server_major(conn)
        versions = _versions(conn)
    pg_dump = pg_program("pg_dump", major, settings)
    uploads = settings.storage / "uploads"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".landeco-backup-") as tmp:
        dump = Path(tmp) / DUMP
        args, env = _libpq(url)
        _run([str(pg_dump), *args, "--format=custom", "--no-owner", "--no-privileges",
              "--file", str(dump)], env)
        members: dict[str, Path] = {DUMP: dump}
        if uploads.is_dir():
            for path in sorted(uploads.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    members[f"{STORAGE}/{path.relative_to(uploads).as_posix()}"] = path
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(), "database": url.database,
            "versions": {**versions, "pg_dump": subprocess.run(
                [str(pg_dump), "--version"], capture_output=True, text=True, check=False).stdout.strip()},
            "files": {name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
                      for name, path in members.items()},
        }
        body = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        partial = Path(tmp) / "archive.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(datetime.now(UTC).timestamp()), 0o600
            tar.addfile(info, io.BytesIO(body))
            for name, path in members.items():
                tar.add(str(path), arcname=name, recursive=False)
        os.chmod(partial, 0o600)
        os.replace(partial, out)
    return manifest


# --- reading ------------------------------------------------------------------------------------

def _member_name(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise BackupDamagedError(f"the archive holds a path outside itself: {name!r}")
    return p.as_posix()


def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest of ``archive``, or :class:`BackupForeignError` / :class:`BackupDamagedError`."""
    try:
        with tarfile.open(archive, "r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise BackupForeignError(f"{archive} is not a landeco backup: it has no {MANIFEST} first")
            fh = tar.extractfile(first)
            manifest = json.loads(fh.read()) if fh else None
    except tarfile.ReadError as exc:
        raise BackupForeignError(f"{archive} is not a landeco backup (not a tar archive: {exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, tarfile.TarError) as exc:
        raise BackupDamagedError(f"{archive}: the manifest cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupForeignError(f"{archive} is not a landeco backup (its manifest is another format)")
    if manifest.get("format_version") != FORMAT_VERSION or not isinstance(manifest.get("files"), dict):
        raise BackupForeignError(f"{archive}: backup format {manifest.get('format_version')!r} is not "
                                 f"one this landeco reads ({FORMAT_VERSION})")
    return manifest


def _verify(archive: Path, into: Path) -> dict[str, Any]:
    """Unpack ``archive`` into ``into`` checking every member against the manifest."""
    manifest = read_manifest(archive)
    expected = manifest["files"]
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                name = _member_name(member.name)
                if not member.isfile() or name not in expected or name in seen:
                    raise BackupDamagedError(f"the archive holds {name!r}, which its manifest does not list")
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                h, size = hashlib.sha256(), 0
                src = tar.extractfile(member)
                with open(target, "wb") as dst:
                    while src is not None and (chunk := src.read(_CHUNK)):
                        h.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
                want = expected[name]
                if h.hexdigest() != want.get("sha256") or size != want.get("bytes"):
                    raise BackupDamagedError(f"{name} in the archive differs from its checksum: "
                                             "the archive is damaged")
                seen.add(name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, LandecoError):
            raise
        raise BackupDamagedError(f"{archive} cannot be read to its end ({exc}): it is damaged") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupDamagedError(f"the archive lacks {', '.join(missing[:5])}: it is cut short or damaged")
    if DUMP not in seen:
        raise BackupForeignError(f"{archive} holds no database dump")
    return manifest


def _user_tables(conn: sa.Connection) -> list[str]:
    return list(conn.scalars(sa.text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', "
        "'tiger', 'tiger_data', 'topology') AND n.nspname NOT LIKE 'pg\\_%' "
        "AND c.relname NOT IN ('spatial_ref_sys', 'geometry_columns', 'geography_columns')")))


@dataclass
class Restored:
    """What a restore put back."""

    manifest: dict[str, Any]
    files: int

    def summary(self) -> str:
        """One line for the command line."""
        v = self.manifest["versions"]
        return (f"restored the backup of {self.manifest['created_at']} (schema {v.get('schema_revision')}, "
                f"PostgreSQL {v.get('postgresql')}) and {self.files} stored file(s)")


def restore_backup(url: URL, settings: Settings, archive: Path) -> Restored:
    """Put ``archive`` back into the empty database at ``url`` and the empty upload storage.

    Everything is checked first; the dump is restored in one transaction; files are written
    last. Run ``landeco db migrate`` afterwards when the code is newer than the backup.
    """
    from layers.store.migrate import alembic_config

    archive = Path(archive)
    if not archive.is_file():
        raise BackupForeignError(f"{archive} is not a file")
    engine = engine_for(url.render_as_string(hide_password=False))
    uploads = settings.storage / "uploads"
    with tempfile.TemporaryDirectory(prefix="landeco-restore-") as tmp:
        work = Path(tmp)
        manifest = _verify(archive, work)
        revision = manifest.get("versions", {}).get("schema_revision")
        from alembic.script import ScriptDirectory

        known = {s.revision for s in ScriptDirectory.from_config(alembic_config("postgresql://")).walk_revisions()}
        if revision not in known:
            raise BackupForeignError(f"the backup's schema revision {revision!r} is unknown to this landeco "
                                     "(a newer version wrote it): upgrade landeco first")
        with engine.connect() as conn:
            major = _server_major(conn)
            taken = _user_tables(conn)
        if taken:
            raise RestoreTargetNotEmptyError(
                f"database {url.database} is not empty ({', '.join(sorted(taken)[:5])} …): restore into "
                "a new database (LANDECO_DATABASE_URL) or a new LANDECO_HOME")
        if uploads.is_dir() and any(uploads.iterdir()):
            raise RestoreTargetNotEmptyError(f"{uploads} is not empty: restore into a new storage folder")
        pg_restore = pg_program("pg_restore", major, settings)
        args, env = _libpq(url)
        # the dump creates PostGIS itself; the new database has it already (and nothing using it)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP EXTENSION IF EXISTS postgis"))
        try:
            _run([str(pg_restore), *args, "--single-transaction", "--exit-on-error", "--no-owner",
                  "--no-privileges", str(work / DUMP)], env)
        except BackupError:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            raise
        files = 0
        stored = work / STORAGE
        if stored.is_dir():
            uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in sorted(stored.rglob("*")):
                if path.is_file():
                    target = uploads / path.relative_to(stored)
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    os.chmod(target, 0o600)
                    files += 1
    engine.dispose()
    return Restored(manifest, files)
