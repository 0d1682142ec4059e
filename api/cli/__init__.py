"""The command line: ``landeco db up|down|status|migrate|revision``, ``demo``, ``serve``."""

from __future__ import annotations

import json
import os
import socket

import typer
from psycopg.errors import UndefinedTable
from sqlalchemy.exc import ProgrammingError

from api.cli import (
    backup,
    change_patches,
    history,
    import_,
    jobs,
    maps,
    query,
    rasters,
    reports,
    uploads,
    users,
)
from api.cli.common import fail
from layers.errors import LandecoError
from layers.settings import Settings
from layers.store.cluster import Cluster
from layers.store.database import database_url, ping

app = typer.Typer(help="landeco — 鄂托克前旗土地与生态管理 land and ecology management.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db = typer.Typer(help="The database: the private local cluster or LANDECO_DATABASE_URL.",
                 no_args_is_help=True)
app.add_typer(db, name="db")


def _port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on (nothing else holds it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _settings() -> Settings:
    return Settings()


def _cluster(settings: Settings) -> Cluster | None:
    """The private cluster, or None when an external database is configured."""
    if settings.database_url:
        typer.echo("LANDECO_DATABASE_URL is set: using that server, not a local cluster.")
        return None
    return Cluster(settings.home, settings.pg_bindir)


@db.command("up")
def db_up() -> None:
    """Create (on first use) and start the local PostGIS cluster."""
    settings = _settings()
    try:
        cluster = _cluster(settings)
        if cluster is not None:
            info = cluster.start()
            typer.echo(f"PostGIS running on 127.0.0.1:{info.port} (cluster in {cluster.home})")
        url = database_url(settings)
        typer.echo(json.dumps(ping(url)))
    except LandecoError as exc:
        raise fail(exc) from exc


@db.command("down")
def db_down() -> None:
    """Stop the local cluster (its data stays)."""
    settings = _settings()
    try:
        cluster = _cluster(settings)
        if cluster is not None:
            cluster.stop()
            typer.echo("PostGIS stopped.")
    except LandecoError as exc:
        raise fail(exc) from exc


@db.command("status")
def db_status() -> None:
    """Say whether the database is up and which schema revision it has."""
    from layers.store.migrate import current_revision, head_revision

    settings = _settings()
    try:
        cluster = _cluster(settings)
        state: dict[str, object] = cluster.status() if cluster is not None else {}
        if cluster is None or state["running"]:
            url = database_url(settings, start=False)
            versions = ping(url)
            state["database"] = versions.pop("name")
            state.update(versions)
            state["schema_revision"] = current_revision(url)
            state["schema_head"] = head_revision()
    except LandecoError as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(state, ensure_ascii=False, indent=2))
    if not state.get("postgis"):
        raise typer.Exit(3)


@db.command("migrate")
def db_migrate(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Bring the schema to ``revision`` (default: the newest); safe to repeat."""
    from layers.store.migrate import upgrade

    try:
        reached = upgrade(database_url(_settings()), revision)
    except LandecoError as exc:
        raise fail(exc) from exc
    typer.echo(f"schema at revision {reached}")


@db.command("distribute")
def db_distribute(shards: int = typer.Option(None, help="shards per distributed table (Citus's "
                                             "citus.shard_count, default 32)")) -> None:
    """Distribute the layers by township with Citus (docs/scale.md); safe to repeat.

    The database must be migrated and have the citus extension (refused otherwise).
    """
    from layers.store.citus import distribute
    from layers.store.database import engine_for

    url = database_url(_settings())
    try:
        with engine_for(url.render_as_string(hide_password=False)).begin() as conn:
            done = distribute(conn, shard_count=shards)
    except LandecoError as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(done, ensure_ascii=False, indent=2))


@db.command("revision")
def db_revision(
    message: str = typer.Option(..., "-m", "--message", help="what the migration does"),
    empty: bool = typer.Option(False, "--empty", help="write an empty migration to fill in by hand "
                               "(no database needed)"),
) -> None:
    """Write the next migration (0003, …): what the registry declares and the database lacks.

    The database must be at the newest revision (`landeco db migrate`). When it already
    matches the registry nothing is written and the command says so (exit 0).
    """
    from alembic.util import CommandError

    from layers.store.migrate import new_revision

    try:
        url = None if empty else database_url(_settings())
        path = new_revision(url, message, autogenerate=not empty)
    except LandecoError as exc:
        raise fail(exc) from exc
    except CommandError as exc:
        typer.secho(f"error [migration_error]: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if path is None:
        typer.echo("the schema already matches the registry: no migration written "
                   "(--empty writes one to fill in by hand)")
        return
    typer.echo(str(path))


@app.command("demo")
def demo(
    seed: int = typer.Option(20220701, help="random seed: the same seed gives the same township"),
    parcels: int | None = typer.Option(None, help="number of caragana plots (benchmarks: "
                                       "100000, 1000000); default: a township-sized 300–600"),
    replace: bool = typer.Option(True, help="empty the layers before loading"),
    rasters: bool = typer.Option(True, help="add the demo's NDVI and vegetation cover rasters "
                                 "(4 summers, 30 m; about 10-20 s) and their zonal statistics over the "
                                 "caragana plots and grazing bans (about 30 s more)"),
) -> None:
    """Load the demo township (deterministic) into the database, and its rasters."""
    from rich.progress import Progress

    from layers.demo import load_demo
    from layers.store.migrate import upgrade

    try:
        url = database_url(_settings())
        upgrade(url)
        with Progress(transient=True) as bar:
            task = bar.add_task("generating the township…", total=None)

            current = {"layer": ""}

            def advance(layer_id: str, k: int, total: int) -> None:
                if layer_id != current["layer"]:
                    current["layer"] = layer_id
                    bar.reset(task, total=total, description=f"loading {layer_id}")
                bar.advance(task, k)

            counts = load_demo(url, seed=seed, parcels=parcels, replace=replace,
                               progress=advance)
            if rasters:
                from layers.demo_rasters import load_demo_rasters
                from layers.store.database import engine_for

                settings = _settings()
                engine = engine_for(url.render_as_string(hide_password=False))
                added = load_demo_rasters(engine, settings, seed=seed, progress=advance)
                counts["rasters"] = len(added)
                if parcels is None:  # each plot's and ban's series over the demo rasters (popup charts)
                    from layers.zonal import run_examples

                    counts["zonal_stats"] = sum(s["rows"] for s in run_examples(engine, on_progress=advance))
    except LandecoError as exc:
        raise fail(exc) from exc
    for layer_id, n in counts.items():
        typer.echo(f"{layer_id:18} {n:>9,}")


def _first_admin_hint(settings: Settings) -> None:
    """Say how to make the first administrator when there is none (best effort)."""
    from layers.accounts import any_admin
    from layers.store.database import engine_for

    try:
        engine = engine_for(database_url(settings).render_as_string(hide_password=False))
        if any_admin(engine=engine):
            return
    except Exception:
        return
    typer.secho("No administrator yet. Create the first one (the password is printed once):\n"
                "    landeco users add admin --role admin\n"
                "Reading the layers is open to anyone while LANDECO_PUBLIC_READ is on (the default); "
                "uploads need an account with the surveyor role.", fg="yellow", err=True)


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, help="address (default LANDECO_HOST, 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default LANDECO_PORT, 8000)"),
    workers: int = typer.Option(1, help="worker processes"),
    worker: bool = typer.Option(True, "--worker/--no-worker",
                                help="run a job worker in each process too (off when `landeco worker` runs)"),
) -> None:
    """Serve the web API and pages (one JSON access line per request on stderr, /metrics)."""
    import uvicorn

    settings = _settings()
    _first_admin_hint(settings)
    if host:  # the application (api.main, in each worker) reads its settings from the environment
        os.environ["LANDECO_HOST"] = host
    where, number = host or settings.host, port or settings.port
    if not _port_free(where, number):
        typer.secho(f"error [port_taken]: {where}:{number} is already in use by another program; "
                    f"choose another port: LANDECO_PORT={number + 1} make run (or landeco serve "
                    f"--port {number + 1})", fg="red", err=True)
        raise typer.Exit(1)
    if worker:
        os.environ["LANDECO_INPROCESS_WORKER"] = "true"
    # landeco writes its own access line (api.observability): uvicorn's would repeat it, with query strings
    uvicorn.run("api.main:app", host=where, port=number,
                workers=workers, log_level="info", access_log=False)


for _area in (import_, query, maps, uploads, users, history, backup, jobs, rasters, change_patches, reports):
    _area.register(app)


def main() -> None:
    """The ``landeco`` command: a database without landeco's tables is a clear error, not a trace."""
    try:
        app()
    except ProgrammingError as exc:
        if not isinstance(exc.orig, UndefinedTable):
            raise
        typer.secho("error [schema_not_migrated]: the database has no landeco tables; "
                    "run `landeco db migrate` (and `landeco demo` for the demo township)", fg="red", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
