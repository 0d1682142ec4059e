"""Uploads in two steps, shared by every worker: check and report, then commit once.

The state of an upload is a row of the ``uploads`` table and its files are in
``<storage>/uploads/<id>/``, so any process on any machine that sees the same database and
storage folder can commit an upload another one checked. A commit claims the row with one
atomic ``UPDATE … RETURNING`` while its transaction holds a PostgreSQL advisory lock keyed by
the upload, and writes ``committed`` in the same transaction as the features. A row left
``committing`` whose lock anyone can take belongs to a committer that died: it is shown
``interrupted`` and can be committed again. Files are readable by the service only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.archive import Limits
from gis.errors import InputError
from layers import audit, history
from layers.audit import Who
from layers.errors import LandecoError
from layers.importer import ImportOptions, Report, import_in_transaction, report_extras
from layers.registry import LAYERS, get_layer
from layers.settings import Settings
from layers.store.schema import UPLOAD_STATES
from layers.upload_errors import (
    ConfirmationRequiredError,
    UploadCommitError,
    UploadNotFoundError,
    UploadQuotaError,
    UploadRefusedError,
)

__all__ = ["PruneResult", "commit_upload", "create_upload", "get_upload", "preview_file", "private_folder",
           "prune_uploads", "recent_uploads", "record_write", "upload_counts", "uploads_root"]

_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20
#: Share of the percentage each stage covers (reading is the long one).
_STAGES = {"reading": (0, 80), "checking": (80, 90), "writing": (90, 100)}
#: First key of landeco's advisory locks on uploads ('upld'); the second is the upload's.
_LOCK_NS = 0x75706C64
#: The second key of the quota's lock (no upload key is taken from a fixed number).
_QUOTA_NS = 0x71756F74
#: The upload's lock key, from the first 8 hex digits of its id (a collision only means "busy").
_KEY = "('x' || substr({id}, 1, 8))::bit(32)::int"
_TRY_LOCK = f"pg_try_advisory_xact_lock({_LOCK_NS}, {_KEY.format(id=':id')})"
#: The state as readers see it: ``committing`` without a live committer is ``interrupted``.
_SHOWN = (f"CASE WHEN state <> 'committing' THEN state WHEN pg_try_advisory_xact_lock({_LOCK_NS}, "
          f"{_KEY.format(id='id')}) THEN 'interrupted' ELSE state END")
_COLUMNS = "id, layer, file_name, options, stage, percentage, report, error, size_bytes, created_at"


# -- files: private to the service ------------------------------------------------


def private_folder(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700, and make it 0700 if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid() or os.geteuid() == 0:
        path.chmod(0o700)
    return path


def uploads_root(settings: Settings) -> Path:
    """``<storage>/uploads``, created private; the home folder is made private too."""
    if settings.home.exists() or settings.storage.is_relative_to(settings.home):
        private_folder(settings.home)
    private_folder(settings.storage)
    return private_folder(settings.storage / "uploads")


def _private_file(path: Path) -> BinaryIO:
    """A new file only the service can read (0600 whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _stored_name(file_name: str) -> str:
    return "original" + "".join(Path(file_name).suffixes[-1:]).lower()[:8]


def _folder(settings: Settings, upload_id: str) -> Path:
    return settings.storage / "uploads" / upload_id


def _limits(settings: Settings) -> Limits:
    return Limits(max_bytes=max(10 * settings.upload_max_bytes, 64 * 1024**2))


def _save(source: BinaryIO, target: Path, limit: int, declared: int | None) -> int:
    if declared is not None and declared > limit:
        raise UploadRefusedError(InputError("too_large", f"the file has {declared:,} bytes; the limit is "
                                            f"{limit:,}", limit_bytes=limit))
    size = 0
    with _private_file(target) as out:
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadRefusedError(InputError("too_large", f"the file is larger than the limit of "
                                                    f"{limit:,} bytes", limit_bytes=limit))
            out.write(chunk)
    return size


def _remove_work(folder: Path) -> None:
    """Work folders of earlier commit attempts (a killed commit leaves its own behind)."""
    for work in folder.glob("work-*"):
        shutil.rmtree(work, ignore_errors=True)


# -- state -----------------------------------------------------------------------------


def _public(row: sa.Row) -> dict[str, Any]:
    m = row._mapping
    state = m["shown"]
    return {"id": m["id"], "state": state, "stage": None if state == "interrupted" else m["stage"],
            "percentage": m["percentage"], "layer": m["layer"], "file": m["file_name"],
            "options": m["options"], "report": m["report"] or {}, "error": m["error"],
            "bytes": m["size_bytes"]}


def _check_id(upload_id: str) -> None:
    if not _ID.match(upload_id):
        raise UploadNotFoundError(f"no upload with id {upload_id!r}")


def get_upload(*, engine: sa.Engine, upload_id: str) -> dict[str, Any]:
    """The state of an upload (``interrupted`` when its committer died), its options and report."""
    _check_id(upload_id)
    with engine.begin() as conn:  # a short transaction of its own: the lock test ends with it
        row = conn.execute(sa.text(f"SELECT {_COLUMNS}, {_SHOWN} AS shown FROM uploads WHERE id = :id"),
                           {"id": upload_id}).first()
    if row is None:
        raise UploadNotFoundError(f"no upload with id {upload_id!r}")
    return _public(row)


def preview_file(*, engine: sa.Engine, settings: Settings, upload_id: str) -> Path:
    """The upload's preview (GeoJSON of its first features in lon/lat)."""
    get_upload(engine=engine, upload_id=upload_id)
    path = _folder(settings, upload_id) / "preview.geojson"
    if not path.exists():
        raise UploadNotFoundError(f"the files of upload {upload_id!r} are gone")
    return path


def upload_counts(conn: Connection) -> dict[str, int]:
    """How many uploads are in each state (``interrupted`` apart from ``committing``).

    Tests each ``committing`` row's lock in ``conn``'s transaction: call it in a short one.
    """
    counts = dict.fromkeys((*UPLOAD_STATES, "interrupted"), 0)
    for state, n in conn.execute(sa.text(f"SELECT {_SHOWN} AS shown, count(*) FROM uploads GROUP BY 1")):
        counts[state] = n
    return counts


# -- check -----------------------------------------------------------------------------


def create_upload(*, engine: sa.Engine, settings: Settings, file: BinaryIO, file_name: str | None, layer: str,
                  options: ImportOptions, declared_size: int | None = None,
                  who: Who | None = None) -> dict[str, Any]:
    """Store ``file`` and check it for ``layer`` (nothing is written); a refused file leaves nothing.

    The stored upload is recorded in the audit trail (``upload.check``) with its row.
    """
    upload_id = receive_upload(engine=engine, settings=settings, file=file, file_name=file_name, layer=layer,
                               options=options, declared_size=declared_size, who=who)
    return check_upload(engine=engine, settings=settings, upload_id=upload_id, who=who)


def receive_upload(*, engine: sa.Engine, settings: Settings, file: BinaryIO, file_name: str | None,
                   layer: str, options: ImportOptions, declared_size: int | None = None,
                   who: Who | None = None) -> str:
    """Store ``file`` as an upload to be checked (``checking``, within the quota); its id.

    :func:`check_upload` checks it, in the request or in a job (large files).
    """
    if layer not in LAYERS:
        raise UploadRefusedError(InputError("invalid_option", f"no layer called {layer!r}", option="layer",
                                            layers=list(LAYERS)))
    upload_id = uuid.uuid4().hex
    folder = private_folder(uploads_root(settings) / upload_id)
    name = Path(file_name or "upload").name
    stored = folder / _stored_name(name)
    try:
        size = _save(file, stored, settings.upload_max_bytes, declared_size)
        _check_quota(engine, settings, size, who)
        row = {"id": upload_id, "layer": layer, "file_name": name, "size": size,
               "options": json.dumps(vars(options), ensure_ascii=False)}
        if not _insert(engine, settings, row):
            prune_uploads(engine=engine, settings=settings, who=who)  # expired uploads make room first
            if not _insert(engine, settings, row):
                raise _quota_error(engine, settings, size)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return upload_id


def check_upload(*, engine: sa.Engine, settings: Settings, upload_id: str, who: Who | None = None,
                 progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Check a received upload (nothing is written to the layer): ``checked`` with its report.

    A file refused as a whole leaves nothing: its row and files go, and the refusal is raised.
    """
    current = get_upload(engine=engine, upload_id=upload_id)
    if current["state"] != "checking":
        return current  # checked already (a job run again after its worker died)
    folder = uploads_root(settings) / upload_id
    options = ImportOptions(**current["options"])
    name = current["file"]
    stored = folder / _stored_name(name)
    last = [0.0]

    def track(stage: str, fraction: float) -> None:  # the row shows how far the check is
        now = time.monotonic()
        if now - last[0] > 0.2 or fraction >= 1.0:
            last[0] = now
            low, high = _STAGES[stage]
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE uploads SET stage = :stage, percentage = :p, updated_at = now() "
                                     "WHERE id = :id AND state = 'checking'"),
                             {"id": upload_id, "stage": stage, "p": round(low + (high - low) * fraction, 1)})
        if progress is not None:
            progress(stage, fraction)

    try:
        report = import_in_transaction(engine, stored, folder / f"check-{uuid.uuid4().hex}", options,
                                       write=False, limits=_limits(settings), file_name=name, progress=track,
                                       statement_timeout_ms=settings.import_timeout_ms)
        body = _body(report)
        preview = json.dumps(_preview(report, body.pop("preview")), ensure_ascii=False).encode()
        with _private_file(folder / "preview.geojson") as out:
            out.write(preview)
        if not _grow(engine, settings, upload_id, len(preview)):  # the preview counts in the quota too
            prune_uploads(engine=engine, settings=settings, who=who)
            if not _grow(engine, settings, upload_id, len(preview)):
                raise _quota_error(engine, settings, stored.stat().st_size + len(preview))
        entry = {"layer": options.layer, "upload_id": upload_id, "counts": body["counts"],
                 "detail": {"file": name, "mode": options.mode, "bytes": stored.stat().st_size + len(preview),
                            "can_commit": body["can_commit"], "skip_refused": options.skip_refused,
                            **_stake_counts(body)}}
        with engine.begin() as conn:
            conn.execute(sa.text(
                "UPDATE uploads SET state = 'checked', stage = NULL, percentage = 100, "
                "report = CAST(:report AS jsonb), updated_at = now() WHERE id = :id AND state = 'checking'"),
                {"id": upload_id, "report": json.dumps(body, ensure_ascii=False, default=str)})
            audit.record_as(conn, who, "upload.check", **entry)
    except BaseException:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM uploads WHERE id = :id AND state = 'checking'"),
                         {"id": upload_id})
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return get_upload(engine=engine, upload_id=upload_id)


def _body(report: Report, preview: bool = True) -> dict[str, Any]:
    """The report as stored: :meth:`Report.as_dict` and what uploads add (at stake, codes)."""
    return {**report.as_dict(preview=preview), **report_extras(report)}


def _stake_counts(body: dict[str, Any]) -> dict[str, int]:
    stake = body.get("at_stake") or {}
    return {k: stake[k] for k in ("deleted", "overwritten") if stake.get(k)}


def _preview(report: Report, collection: dict[str, Any]) -> dict[str, Any]:
    """The preview map's features: the importable ones, then refused ones.

    Each carries its index and whether it has a problem (``landeco_problem``), so the map
    can highlight it.
    """
    troubled = {p.index for p in report.problems if p.severity == "error" and p.index is not None}
    features = collection["features"]
    for feature, index in zip(features, report.preview_indexes, strict=False):
        feature["properties"] = {**feature["properties"], "landeco_index": index,
                                 "landeco_problem": index in troubled}
    for feature in report.preview_refused:
        feature["properties"]["landeco_problem"] = True
    return {"type": "FeatureCollection", "features": [*features, *report.preview_refused]}


def recent_uploads(*, engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The latest uploads, newest first, with their state and counts (for the upload page)."""
    with engine.begin() as conn:
        rows = conn.execute(sa.text(
            f"SELECT {_COLUMNS}, committed_at, {_SHOWN} AS shown FROM uploads ORDER BY created_at DESC "
            "LIMIT :n"), {"n": limit}).all()
    out = []
    for row in rows:
        up = _public(row)
        report = up.pop("report")
        up.update(created_at=row.created_at, committed_at=row.committed_at, counts=report.get("counts", {}),
                  written=report.get("written", {}), mode=(row.options or {}).get("mode", "insert"))
        out.append(up)
    return out


def _used(conn: Connection) -> int:
    return int(conn.scalar(sa.text("SELECT coalesce(sum(size_bytes), 0) FROM uploads")))


def _quota_error(engine: sa.Engine, settings: Settings, size: int) -> UploadQuotaError:
    with engine.connect() as conn:
        used = _used(conn)
    return UploadQuotaError(f"the stored uploads take {used:,} bytes of {settings.upload_quota_bytes:,}; "
                            f"this one needs {size:,} more: commit or prune older uploads",
                            quota_bytes=settings.upload_quota_bytes, used_bytes=used, size_bytes=size)


def _check_quota(engine: sa.Engine, settings: Settings, size: int, who: Who | None) -> None:
    with engine.connect() as conn:
        if _used(conn) + size <= settings.upload_quota_bytes:
            return
    prune_uploads(engine=engine, settings=settings, who=who)
    with engine.connect() as conn:
        if _used(conn) + size > settings.upload_quota_bytes:
            raise _quota_error(engine, settings, size)


def _grow(engine: sa.Engine, settings: Settings, upload_id: str, extra: int) -> bool:
    """Count ``extra`` bytes more for the upload if they fit the quota (as :func:`_insert` decides)."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :ns)"), {"ns": _QUOTA_NS})
        if _used(conn) + extra > settings.upload_quota_bytes:
            return False
        conn.execute(sa.text("UPDATE uploads SET size_bytes = size_bytes + :extra WHERE id = :id"),
                     {"id": upload_id, "extra": extra})
    return True


def _insert(engine: sa.Engine, settings: Settings, row: dict[str, Any]) -> bool:
    """Insert the received upload if it fits the quota (one inserter at a time decides)."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :ns)"), {"ns": _QUOTA_NS})
        if _used(conn) + row["size"] > settings.upload_quota_bytes:
            return False
        conn.execute(sa.text(
            "INSERT INTO uploads (id, layer, file_name, options, state, stage, percentage, size_bytes) "
            "VALUES (:id, :layer, :file_name, CAST(:options AS jsonb), 'checking', 'reading', 0, :size)"),
            row)
    return True


# -- commit ----------------------------------------------------------------------------


def _already() -> UploadCommitError:
    return UploadCommitError("the upload is committed already", code="upload_already_committed")


def _check_confirmed(conn: Connection, options: ImportOptions, confirm: bool) -> None:
    """A replace that would delete features of the layer needs ``confirm``."""
    if options.mode != "replace" or confirm:
        return
    existing = conn.scalar(sa.text(f"SELECT count(*) FROM {get_layer(options.layer).table}"))
    if existing:
        raise ConfirmationRequiredError(f"replacing the layer deletes its {existing:,} features: confirm the "
                                        "replace", layer=options.layer, deleted=existing)


def ready_to_commit(*, engine: sa.Engine, upload_id: str, confirm: bool) -> None:
    """Refuse at once what a commit would refuse, before a job is queued to do it.

    The commit itself checks again under the upload's lock: this only spares a queued job
    that could not succeed.
    """
    current = get_upload(engine=engine, upload_id=upload_id)
    if current["state"] == "committed":
        raise _already()
    if current["state"] in ("checking", "committing"):
        raise UploadCommitError(f"the upload is {current['state']}", code="upload_busy")
    if not current["report"].get("can_commit"):
        problems = current["report"].get("problems", [])[:100]
        raise UploadCommitError("the upload has errors; correct the file and upload it again",
                                code="upload_has_errors", problems=problems)
    with engine.connect() as conn:
        _check_confirmed(conn, ImportOptions(**current["options"]), confirm)


def commit_upload(*, engine: sa.Engine, settings: Settings, upload_id: str,
                  who: Who | None = None, confirm: bool = False,
                  on_progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Write a checked upload in one transaction; the row says how far it got.

    A replace that would delete features of the layer needs ``confirm`` (else
    :class:`ConfirmationRequiredError`, 409 ``confirmation_required``): counted under the
    upload's lock, in the commit's transaction, so what is confirmed is what is there.

    Its audit entry (``upload.commit``, or ``upload.replace`` with the deleted count) is
    written in that transaction, so there is no commit without its record nor the reverse.

    Two commits of one upload at once: one writes, the other gets ``upload_busy`` (409).
    """
    _check_id(upload_id)
    folder = _folder(settings, upload_id)
    attempt = uuid.uuid4().hex
    claimed: dict[str, Any] = {}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as side:
        side_lock = threading.Lock()

        def set_state(**changes: Any) -> None:
            """Change the row outside the commit's transaction, only while this attempt owns it."""
            sets = ", ".join(f"{k} = CAST(:{k} AS jsonb)" if k in ("report", "error") else f"{k} = :{k}"
                             for k in changes)
            values = {k: json.dumps(v, ensure_ascii=False, default=str) if k in ("report", "error") else v
                      for k, v in changes.items()}
            with side_lock:
                side.execute(sa.text(f"UPDATE uploads SET {sets}, updated_at = now() WHERE id = :id "
                                     "AND attempt = :attempt AND state = 'committing'"),
                             {**values, "id": upload_id, "attempt": attempt})

        def prepare(conn: Connection) -> None:
            if not conn.scalar(sa.text(f"SELECT {_TRY_LOCK}"), {"id": upload_id}):
                state = get_upload(engine=engine, upload_id=upload_id)["state"]
                if state == "committed":
                    raise _already()
                raise UploadCommitError("the upload is being committed", code="upload_busy")
            _check_confirmed(conn, options, confirm)
            history.tie(conn)  # the layer's history rows and the commit's audit entry: one transaction
            # the lock is ours: a row still 'committing' belongs to a committer that died
            row = side.execute(sa.text(
                "UPDATE uploads SET state = 'committing', stage = 'reading', percentage = 0, error = NULL, "
                "attempt = :attempt, updated_at = now() WHERE id = :id AND state IN ('checked', 'failed', "
                "'committing') AND (report->>'can_commit')::boolean RETURNING options, file_name"),
                {"id": upload_id, "attempt": attempt}).first()
            if row is None:
                current = get_upload(engine=engine, upload_id=upload_id)
                if current["state"] == "committed":
                    raise _already()
                if current["state"] == "checking":
                    raise UploadCommitError("the upload is still being checked", code="upload_busy")
                raise UploadCommitError("the upload has errors; correct the file and upload it again",
                                        code="upload_has_errors",
                                        problems=current["report"].get("problems", [])[:100])
            claimed.update(row._mapping)
            _remove_work(folder)

        last = [0.0]

        def progress(stage: str, fraction: float) -> None:
            low, high = _STAGES[stage]
            now = time.monotonic()
            if now - last[0] > 0.2 or fraction >= 1.0:
                last[0] = now
                set_state(stage=stage, percentage=round(low + (high - low) * fraction, 1))
            if on_progress is not None:
                on_progress(stage, fraction)

        def before_commit(conn: Connection, report: Report) -> None:
            if report.at_stake is None:  # a direct write does not count again: keep what the check said
                report.at_stake = current["report"].get("at_stake")
            conn.execute(sa.text(
                "UPDATE uploads SET state = 'committed', stage = NULL, percentage = 100, "
                "report = CAST(:report AS jsonb), committed_at = now(), updated_at = now() "
                "WHERE id = :id AND attempt = :attempt"),
                {"id": upload_id, "attempt": attempt,
                 "report": json.dumps(_body(report, preview=False), ensure_ascii=False, default=str)})
            record_write(conn, who, report, upload_id=upload_id)

        # the options and name are read before the lock only to open the file; the claim rechecks all
        current = get_upload(engine=engine, upload_id=upload_id)
        options = ImportOptions(**current["options"])
        stored = folder / _stored_name(current["file"])
        try:
            report = import_in_transaction(engine, stored, folder / f"work-{attempt}", options, write=True,
                                           prepare=prepare, before_commit=before_commit,
                                           limits=_limits(settings), progress=progress,
                                           file_name=current["file"],
                                           statement_timeout_ms=settings.import_timeout_ms)
        except LandecoError as exc:
            if claimed:
                set_state(state="failed", stage=None, error={"code": exc.code, "detail": str(exc)})
            raise
        except Exception:
            if claimed:
                set_state(state="failed", stage=None, error={"code": "internal_error"})
            raise
        if not report.committed:
            body = _body(report, preview=False)
            set_state(state="checked", stage=None, percentage=100, report=body)
            raise UploadCommitError("the layer changed since the check and the upload now has errors",
                                    code="upload_has_errors", problems=body["problems"][:100])
    return get_upload(engine=engine, upload_id=upload_id)


# -- retention -------------------------------------------------------------------------


@dataclass
class PruneResult:
    """What a prune removed (or would remove, in a dry run)."""

    removed: list[dict[str, Any]] = field(default_factory=list)
    freed_bytes: int = 0
    dry_run: bool = False


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _expired(conn: Connection, days: float) -> Iterator[sa.Row]:
    return iter(conn.execute(sa.text(
        "SELECT id, layer, file_name, state, size_bytes, created_at FROM uploads "
        "WHERE created_at < now() - make_interval(secs => :secs) ORDER BY created_at"),
        {"secs": days * 86400}).all())


def prune_uploads(*, engine: sa.Engine, settings: Settings, older_than_days: float | None = None,
                  dry_run: bool = False, who: Who | None = None) -> PruneResult:
    """Remove the rows and files of uploads older than the retention, never one being committed.

    Also removes work folders that killed commits left behind, and folders without a row
    (a check that died) untouched for a day. Each upload removed is recorded in the audit
    trail (``upload.prune``), in the transaction that deletes its row.
    """
    days = settings.upload_retention_days if older_than_days is None else older_than_days
    root = settings.storage / "uploads"
    result = PruneResult(dry_run=dry_run)
    with engine.connect() as conn:
        expired = list(_expired(conn, days))
        known = set(conn.scalars(sa.text("SELECT id FROM uploads")))
    for row in expired:
        folder = root / row.id
        with engine.begin() as conn:  # the upload's lock: a live committer keeps its upload
            if not conn.scalar(sa.text(f"SELECT {_TRY_LOCK}"), {"id": row.id}):
                continue
            size = _folder_bytes(folder) if folder.exists() else 0
            result.removed.append({"id": row.id, "layer": row.layer, "file": row.file_name,
                                   "state": row.state, "created_at": row.created_at.isoformat(),
                                   "bytes": size})
            result.freed_bytes += size
            if not dry_run:
                conn.execute(sa.text("DELETE FROM uploads WHERE id = :id"), {"id": row.id})
                audit.record_as(conn, who, "upload.prune", layer=row.layer, upload_id=row.id,
                                counts={"bytes": size},
                                detail={"file": row.file_name, "state": row.state,
                                        "created_at": row.created_at.isoformat()})
                shutil.rmtree(folder, ignore_errors=True)
        known.discard(row.id)
    if not root.exists():
        return result
    for folder in sorted(root.iterdir()):
        if folder.name in known:
            works = list(folder.glob("work-*"))
            if not works:
                continue
            with engine.begin() as conn:
                if not conn.scalar(sa.text(f"SELECT {_TRY_LOCK}"), {"id": folder.name}):
                    continue
                for work in works:
                    result.freed_bytes += _folder_bytes(work)
                    if not dry_run:
                        shutil.rmtree(work, ignore_errors=True)
        elif _ID.match(folder.name) and folder.is_dir() and time.time() - folder.stat().st_mtime > 86400:
            size = _folder_bytes(folder)
            result.removed.append({"id": folder.name, "layer": None, "file": None, "state": "orphan",
                                   "created_at": None, "bytes": size})
            result.freed_bytes += size
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
                with engine.begin() as conn:
                    audit.record_as(conn, who, "upload.prune", upload_id=folder.name, counts={"bytes": size},
                                    detail={"state": "orphan"})
    return result


def record_write(conn: Connection, who: Who | None, report: Report, *, upload_id: str | None = None) -> int:
    """The audit entry of an import written in ``conn``'s transaction (web or command line)."""
    action = "upload.replace" if report.mode == "replace" else "upload.commit"
    return audit.record_as(conn, who, action, layer=report.layer, upload_id=upload_id,
                           counts={**{"inserted": 0, "updated": 0, "deleted": 0}, **report.written},
                           feature_ids=report.written_ids,
                           detail={"file": report.file, "mode": report.mode, "features": report.features,
                                   **({"skip_refused": True, "left_out": report.refused}
                                      if report.skip_refused else {})})
