"""Long work as jobs: queued in PostgreSQL by procrastinate, run by any worker, followed by people.

The queue (to do, doing, succeeded, failed, cancelled; attempts; each worker's heartbeat) is
procrastinate's, in the same database: no other server, and a worker on any machine that
reaches the database can take any job. The ``jobs`` table holds what a person follows: kind,
owner, progress fraction and message, result and error (a problem). A job is submitted in
the caller's transaction, so both rows exist or neither does.

Work is a plain function ``work(ctx, **params)`` declared with :func:`job_kind`; it reports
through ``ctx.progress(fraction, message)``, which raises :class:`JobCancelledError` once someone
cancelled the job, and writes its files under ``ctx.folder``. A worker that dies stops its
heartbeat: a periodic task of every worker retries the dead one's jobs, or fails them after
``job_max_attempts`` - a job is never left "running".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from layers.errors import BadRequestError, LandecoError, NotFoundError
from layers.settings import Settings
from layers.store.schema import jobs_table
from layers.uploads import private_folder

__all__ = ["KINDS", "JobCancelledError", "JobContext", "JobNotFoundError", "JobQueue", "cancel_job",
           "get_job", "job_kind", "list_jobs", "prune_jobs", "result_file", "submit"]

if TYPE_CHECKING:  # procrastinate loads with the first queue, not with every command
    import procrastinate

log = logging.getLogger("landeco.jobs")

#: What procrastinate's status means to a person.
STATES = {"todo": "queued", "doing": "running", "succeeded": "succeeded", "failed": "failed",
          "cancelled": "cancelled", "aborting": "cancelling", "aborted": "cancelled"}
FINISHED = ("succeeded", "failed", "cancelled", "aborted")
#: Seconds between two progress writes of one job (the last one is always written).
PROGRESS_EVERY_S = 0.5


class JobNotFoundError(NotFoundError):
    """No job has that id, or it is another person's."""

    code = "job_not_found"
    title = "No such job"


class UnknownJobKindError(BadRequestError):
    code = "unknown_job_kind"
    title = "No such kind of job"


class JobResultMissingError(LandecoError):
    code = "job_result_missing"
    status = 409
    title = "The job has no file (yet)"


class JobCancelledError(Exception):
    """Raised by :meth:`JobContext.progress` once the job was cancelled."""


@dataclass(frozen=True)
class Kind:
    """A kind of job: its name, its work and how to check its parameters before queueing."""

    name: str
    work: Callable[..., dict[str, Any] | None]
    check: Callable[[dict[str, Any]], dict[str, Any]]
    title_zh: str
    title_en: str


#: Every kind of job, by name (declared with :func:`job_kind`; see :mod:`layers.tasks`).
KINDS: dict[str, Kind] = {}


def job_kind(name: str, *, zh: str, en: str, check: Callable[[dict[str, Any]], dict[str, Any]] = dict):
    """Declare ``work(ctx, **params)`` as a kind of job; ``check`` validates params at submit."""
    def register(work: Callable[..., dict[str, Any] | None]) -> Callable[..., dict[str, Any] | None]:
        KINDS[name] = Kind(name, work, check, zh, en)
        return work
    return register


def _kinds() -> dict[str, Kind]:
    import layers.tasks  # noqa: F401  (declares the kinds)
    return KINDS


@dataclass
class JobContext:
    """What a job's work gets: its id, the engine, the settings, a folder and a progress line."""

    id: int
    engine: sa.Engine
    settings: Settings
    should_abort: Callable[[], bool] = lambda: False
    _last: float = field(default=0.0, repr=False)

    @property
    def folder(self) -> Path:
        """``<storage>/jobs/<id>/``: the job's files, removed with the job."""
        return private_folder(job_folder(self.settings, self.id))

    def progress(self, fraction: float, message: str | None = None, *, force: bool = False) -> None:
        """Record how far the job is (0-1) and what it does; raise if it was cancelled."""
        if self.should_abort():
            raise JobCancelledError
        now = time.monotonic()
        if not force and fraction < 1 and now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        with self.engine.begin() as conn:
            conn.execute(jobs_table.update().where(jobs_table.c.id == self.id).values(
                progress=min(max(float(fraction), 0.0), 1.0), message=message, updated_at=sa.func.now()))


def job_folder(settings: Settings, job_id: int) -> Path:
    return settings.storage / "jobs" / str(int(job_id))


def conninfo(url: URL) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class JobQueue:
    """procrastinate's app for one database, with every kind of job and the periodic chores."""

    def __init__(self, settings: Settings, url: URL) -> None:
        import procrastinate

        self.settings = settings
        self.url = url
        # the worker's app (asynchronous pool) ...
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(url), min_size=1, max_size=max(2, settings.worker_concurrency + 1)))
        # ... and the one that queues and cancels, always in the caller's own transaction (never
        # through a pool of its own, so that it works beside a running worker in one process)
        self.client = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(url)))
        for kind in _kinds().values():
            self._task(kind)
        self._chores()

    def _task(self, kind: Kind) -> None:
        def run(context: procrastinate.JobContext, **params: Any) -> None:
            _run(context, kind, params)
        run.__name__ = run.__qualname__ = f"job_{kind.name}"
        self.app.task(name=kind.name, pass_context=True)(run)

    def _chores(self) -> None:
        from procrastinate.jobs import Status

        app, settings = self.app, self.settings

        every = min(max(int(settings.job_stalled_after_s / 3), 1), 59)  # seconds

        @app.periodic(cron=f"*/{every} * * * * *")
        @app.task(name="chore.retry_stalled", queueing_lock="chore.retry_stalled", pass_context=True)
        async def retry_stalled(context: procrastinate.JobContext, timestamp: int) -> None:
            """Jobs of a silent worker: retried, or failed after ``job_max_attempts``."""
            for job in await app.job_manager.get_stalled_jobs(
                    seconds_since_heartbeat=settings.job_stalled_after_s):
                if job.id is None or job.task_name.startswith("chore."):
                    continue
                if job.attempts + 1 >= settings.job_max_attempts:
                    # the reason first: whoever sees the job failed sees why at once
                    await asyncio.to_thread(_fail_record, context.additional_context["engine"], job.id,
                                            "worker_lost", "the worker running this job stopped answering "
                                            f"{job.attempts + 1} times")
                    await app.job_manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
                    log.warning("job %s failed: its worker died %s times", job.id, job.attempts + 1)
                else:
                    await app.job_manager.retry_job(job)
                    log.warning("job %s retried: its worker stopped answering", job.id)

        @app.periodic(cron="17 3 * * *")
        @app.task(name="chore.prune", queueing_lock="chore.prune", pass_context=True)
        def prune(context: procrastinate.JobContext, timestamp: int) -> None:
            """Nightly: finished jobs and old uploads past their retention, tiles not rebuilt for a week."""
            from layers import tile_cache
            from layers.uploads import prune_uploads
            engine = context.additional_context["engine"]
            prune_jobs(engine=engine, settings=settings)
            prune_uploads(engine=engine, settings=settings)
            with engine.begin() as conn:
                tile_cache.prune(conn)

    async def run_worker(self, engine: sa.Engine, *, concurrency: int | None = None,
                         install_signal_handlers: bool = True) -> None:
        """Run a worker until cancelled (or a signal, when ``install_signal_handlers``)."""
        async with self.app.open_async():
            await self.app.run_worker_async(
                concurrency=concurrency or self.settings.worker_concurrency,
                install_signal_handlers=install_signal_handlers,
                update_heartbeat_interval=self.settings.job_heartbeat_s,
                stalled_worker_timeout=self.settings.job_stalled_after_s,
                additional_context={"settings": self.settings, "engine": engine},
                delete_jobs="never")

    def submit(self, conn: sa.Connection, kind: str, params: dict[str, Any], owner: str | None) -> int:
        """Queue a job in ``conn``'s transaction; its id."""
        found = _kinds().get(kind)
        if found is None:
            raise UnknownJobKindError(f"no kind of job {kind!r}; known: {', '.join(sorted(KINDS))}")
        params = found.check(dict(params))
        raw = conn.connection.driver_connection
        job_id = self.client.configure_task(kind, connection=raw).defer(**params)
        conn.execute(jobs_table.insert().values(id=job_id, kind=kind, params=params, owner=owner,
                                                message=None))
        return job_id

    def cancel(self, conn: sa.Connection, job_id: int) -> bool:
        """Cancel a queued job, or ask a running one to stop; whether anything was cancelled."""
        raw = conn.connection.driver_connection
        return self.client.job_manager.cancel_job_by_id(int(job_id), abort=True, connection=raw)


def _problem(err: LandecoError) -> dict[str, Any]:
    """A domain error as the problem its route would have answered."""
    return {"type": f"https://landeco.example/problems/{err.code}", "code": err.code, "title": err.title,
            "status": err.status, "detail": str(err), **err.extra()}


def _fail_record(engine: sa.Engine, job_id: int, code: str, detail: str) -> None:
    with engine.begin() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.id == job_id).values(
            error={"type": f"https://landeco.example/problems/{code}", "code": code,
                   "title": "The job failed", "status": 500,
                   "detail": detail}, updated_at=sa.func.now()))


def _run(context: procrastinate.JobContext, kind: Kind, params: dict[str, Any]) -> None:
    """One attempt of one job: progress from 0, then result or error, all in ``jobs``."""
    from procrastinate import exceptions as pq_errors

    engine: sa.Engine = context.additional_context["engine"]
    settings: Settings = context.additional_context["settings"]
    assert context.job is not None and context.job.id is not None
    ctx = JobContext(context.job.id, engine, settings, should_abort=context.should_abort)
    with engine.begin() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.id == ctx.id).values(
            progress=0, message=None, error=None, result=None, updated_at=sa.func.now()))
    try:
        result = kind.work(ctx, **params) or {}
    except JobCancelledError:
        shutil.rmtree(job_folder(settings, ctx.id), ignore_errors=True)
        raise pq_errors.JobAborted from None
    except LandecoError as err:
        with engine.begin() as conn:
            conn.execute(jobs_table.update().where(jobs_table.c.id == ctx.id).values(
                error=_problem(err), updated_at=sa.func.now()))
        raise
    except Exception as err:
        log.error("job %s (%s) failed: %s", ctx.id, kind.name, traceback.format_exc())
        _fail_record(engine, ctx.id, "job_failed", f"{type(err).__name__}: {err}"[:500])
        raise
    with engine.begin() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.id == ctx.id).values(
            progress=1, message=None, result=result, updated_at=sa.func.now()))


_COLUMNS = ("SELECT j.id, j.kind, j.params, j.owner, j.progress, j.message, j.result, j.error, "
            "j.created_at, j.updated_at, q.status, q.attempts FROM jobs j "
            "LEFT JOIN procrastinate_jobs q ON q.id = j.id")


def _public(row: sa.Row) -> dict[str, Any]:
    m = row._mapping
    status = m["status"] or "failed"
    state = STATES.get(status, status)
    out = {"id": m["id"], "kind": m["kind"], "state": state, "progress": m["progress"],
           "message": m["message"], "params": m["params"], "owner": m["owner"],
           "attempts": (m["attempts"] or 0) + (1 if status == "doing" else 0),
           "created": m["created_at"].isoformat(), "updated": m["updated_at"].isoformat(),
           "result": m["result"], "error": m["error"] if state != "succeeded" else None}
    if state == "failed" and not out["error"]:
        out["error"] = {"type": "about:blank", "code": "job_failed", "title": "The job failed", "status": 500}
    if state == "cancelled" and not out["error"]:
        out["error"] = {"type": "about:blank", "code": "job_cancelled", "title": "The job was cancelled",
                        "status": 409}
    return out


def _check_id(job_id: object) -> int:
    try:
        value = int(str(job_id))
    except ValueError:
        raise JobNotFoundError(f"no job {str(job_id)[:40]!r}") from None
    if not 0 < value < 2**63:
        raise JobNotFoundError(f"no job {value}")
    return value


def get_job(conn: sa.Connection, job_id: object) -> dict[str, Any]:
    """A job as a person follows it: state, progress, message, result or error."""
    value = _check_id(job_id)
    row = conn.execute(sa.text(f"{_COLUMNS} WHERE j.id = :id"), {"id": value}).first()
    if row is None:
        raise JobNotFoundError(f"no job {value}")
    return _public(row)


def list_jobs(conn: sa.Connection, *, owner: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest jobs (of ``owner`` when given)."""
    where = "WHERE j.owner = :owner" if owner is not None else ""
    rows = conn.execute(sa.text(f"{_COLUMNS} {where} ORDER BY j.id DESC LIMIT :limit"),
                        {"owner": owner, "limit": int(limit)}).all()
    return [_public(r) for r in rows]


def cancel_job(queue: JobQueue, conn: sa.Connection, job_id: object) -> dict[str, Any]:
    """Cancel ``job_id`` (a running job stops at its next progress report); the job after."""
    value = _check_id(job_id)
    get_job(conn, value)
    queue.cancel(conn, value)
    return get_job(conn, value)


def submit(queue: JobQueue, engine: sa.Engine, kind: str, params: dict[str, Any], owner: str | None) -> int:
    """Queue a job of ``kind``; its id."""
    with engine.begin() as conn:
        return queue.submit(conn, kind, params, owner)


def result_file(settings: Settings, job: dict[str, Any]) -> Path:
    """The file a finished job wrote (``result.file``), checked to lie in its folder."""
    name = (job.get("result") or {}).get("file")
    if job["state"] != "succeeded" or not name:
        raise JobResultMissingError(f"job {job['id']} is {job['state']} and has no file")
    folder = job_folder(settings, job["id"]).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise JobResultMissingError(f"the file of job {job['id']} is gone (pruned?)")
    return path


def wait(engine: sa.Engine, job_id: int, *, every_s: float = 0.3, timeout_s: float | None = None,
         on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Poll until the job is finished; the job. ``on_progress`` sees each poll."""
    start = time.monotonic()
    while True:
        with engine.connect() as conn:
            job = get_job(conn, job_id)
        if on_progress is not None:
            on_progress(job)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            return job
        time.sleep(every_s)


def prune_jobs(*, engine: sa.Engine, settings: Settings, older_than_days: float | None = None) -> int:
    """Remove finished jobs older than the retention, with their files; how many."""
    days = settings.job_retention_days if older_than_days is None else older_than_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(sa.text(
            "DELETE FROM jobs j USING procrastinate_jobs q WHERE q.id = j.id AND j.updated_at < :cutoff "
            "AND q.status::text = ANY(:finished) RETURNING j.id"),
            {"cutoff": cutoff, "finished": list(FINISHED)})]
        if ids:
            conn.execute(sa.text("DELETE FROM procrastinate_jobs WHERE id = ANY(:ids)"), {"ids": ids})
    for job_id in ids:
        shutil.rmtree(job_folder(settings, job_id), ignore_errors=True)
    return len(ids)


@contextmanager
def worker_in_background(queue: JobQueue, engine: sa.Engine) -> Iterator[None]:
    """A worker in a thread of its own event loop (``landeco serve``'s in-process worker)."""
    import threading
    loop = asyncio.new_event_loop()
    task: asyncio.Task | None = None

    def main() -> None:
        nonlocal task
        asyncio.set_event_loop(loop)
        task = loop.create_task(queue.run_worker(engine, install_signal_handlers=False))
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:  # stopped with the server
            pass
        except Exception:  # the database went away: serving goes on, jobs wait for a worker
            log.exception("the in-process job worker stopped")

    thread = threading.Thread(target=main, name="landeco-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)
