"""``landeco worker`` runs jobs; ``landeco jobs`` lists, follows (with a progress bar) and cancels them."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from api.cli.common import fail
from layers.errors import LandecoError


def _context():
    from layers.jobs import JobQueue
    from layers.settings import Settings
    from layers.store.database import database_url, make_engine

    settings = Settings()
    url = database_url(settings)
    engine = make_engine(url, statement_timeout_ms=settings.query_timeout_ms)
    return settings, engine, JobQueue(settings, url)


def _line(job: dict) -> str:
    return (f"{job['id']:>6}  {job['kind']:<10} {job['state']:<10} {job['progress'] * 100:5.1f} %  "
            f"{job['owner'] or '-':<12} {job['created'][:19].replace('T', ' ')}  {job['message'] or ''}")


def follow(engine, job_id: int) -> dict:
    """Wait for a job with a progress bar; the finished job."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from layers.jobs import wait

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[message]}"), transient=False) as bar:
        task = bar.add_task(f"job {job_id}", total=1.0, message="")

        def show(job: dict) -> None:
            bar.update(task, completed=job["progress"], message=f"{job['state']} {job['message'] or ''}")

        return wait(engine, job_id, on_progress=show)


def register(app: typer.Typer) -> None:
    """Add ``landeco worker`` and the ``landeco jobs`` group."""

    @app.command("worker")
    def worker_command(
        concurrency: Annotated[int | None, typer.Option(
            help="jobs at once (default LANDECO_WORKER_CONCURRENCY, 2)")] = None,
    ) -> None:
        """Run jobs (uploads, exports, statistics, rasters) until stopped (Ctrl-C)."""
        settings, engine, queue = _context()
        at_once = concurrency or settings.worker_concurrency
        typer.echo(f"landeco worker: {at_once} job(s) at once; Ctrl-C stops")
        asyncio.run(queue.run_worker(engine, concurrency=concurrency))

    jobs = typer.Typer(help="Jobs: long work run by workers (landeco worker, or landeco serve's own).",
                       no_args_is_help=True)
    app.add_typer(jobs, name="jobs")

    @jobs.command("list")
    def list_command(limit: Annotated[int, typer.Option(help="how many, newest first")] = 20) -> None:
        """The newest jobs: id, kind, state, progress, owner, time, message."""
        from layers.jobs import list_jobs

        _, engine, _ = _context()
        with engine.connect() as conn:
            for job in list_jobs(conn, limit=limit):
                typer.echo(_line(job))

    @jobs.command("show")
    def show_command(job_id: int, wait: Annotated[bool, typer.Option(
            "--wait", help="follow it with a progress bar until it ends")] = False) -> None:
        """One job as JSON (exit 1 when it failed or was cancelled)."""
        from layers.jobs import get_job

        _, engine, _ = _context()
        try:
            if wait:
                job = follow(engine, job_id)
            else:
                with engine.connect() as conn:
                    job = get_job(conn, job_id)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(json.dumps(job, ensure_ascii=False, indent=2))
        if job["state"] in ("failed", "cancelled"):
            raise typer.Exit(1)

    @jobs.command("export")
    def export_command(
        layer: str,
        format: Annotated[str, typer.Option(help="geojson, gpkg, shp, csv, xlsx")] = "gpkg",
        crs: Annotated[int, typer.Option(help="EPSG: 4326, 4490 or 4545")] = 4326,
        wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow it with a progress bar")] = True,
    ) -> None:
        """Queue the export of LAYER as a job (a worker writes it); prints the job and its file."""
        from layers.audit import cli_who
        from layers.jobs import result_file, submit

        settings, engine, queue = _context()
        try:
            job_id = submit(queue, engine, "export", {"layer": layer, "format": format, "crs": crs},
                            cli_who("jobs export").actor)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"job {job_id} queued")
        if not wait:
            return
        job = follow(engine, job_id)
        if job["state"] != "succeeded":
            detail = (job["error"] or {}).get("detail", "")
            typer.secho(f"job {job_id} {job['state']}: {detail}", fg="red", err=True)
            raise typer.Exit(1)
        typer.echo(str(result_file(settings, job)))

    @jobs.command("cancel")
    def cancel_command(job_id: int) -> None:
        """Cancel a queued job, or ask a running one to stop."""
        from layers.jobs import cancel_job

        _, engine, queue = _context()
        try:
            with engine.begin() as conn:
                job = cancel_job(queue, conn, job_id)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(_line(job))

    @jobs.command("prune")
    def prune_command(older_than: Annotated[float | None, typer.Option(
            "--older-than", help="days (default LANDECO_JOB_RETENTION_DAYS, 7)")] = None) -> None:
        """Remove finished jobs older than the retention, with their files (workers do it nightly)."""
        from layers.jobs import prune_jobs

        settings, engine, _ = _context()
        removed = prune_jobs(engine=engine, settings=settings, older_than_days=older_than)
        typer.echo(f"{removed} job(s) removed")
