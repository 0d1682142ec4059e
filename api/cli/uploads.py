"""``landeco uploads commit ID``: write a checked upload; ``landeco uploads prune``: remove old ones.

A replace that deletes features asks first (or needs ``--yes``), on the command line as on the page.
"""

from __future__ import annotations

from typing import Annotated

import typer

from layers.errors import LandecoError


def confirm_replace(layer: str, mode: str, *, yes: bool, dry_run: bool = False) -> bool:
    """Whether a write may go ahead: a replace of a layer that has features needs ``yes`` or a "y".

    Returns False (nothing to write) when the person says no; without a terminal to ask,
    exits 2 with ``confirmation_required``.
    """
    if mode != "replace" or yes or dry_run:
        return True
    import sys

    import sqlalchemy as sa

    from layers.registry import get_layer
    from layers.settings import Settings
    from layers.store.database import database_url, engine_for

    engine = engine_for(database_url(Settings()).render_as_string(hide_password=False))
    with engine.connect() as conn:
        existing = conn.scalar(sa.text(f"SELECT count(*) FROM {get_layer(layer).table}"))
    if not existing:
        return True
    question = f"replace deletes the {existing:,} features of {layer} (替换将删除现有的 {existing:,} 个要素)"
    if not sys.stdin.isatty():
        typer.secho(f"error [confirmation_required]: {question}; run again with --yes", fg="red", err=True)
        raise typer.Exit(2)
    return typer.confirm(f"{question}. Go on?", default=False)


def register(app: typer.Typer) -> None:
    """Add the ``landeco uploads`` group."""
    uploads = typer.Typer(help="Stored uploads (checked, committed …) in the storage folder.",
                          no_args_is_help=True)
    app.add_typer(uploads, name="uploads")

    @uploads.command("commit")
    def commit_command(
        upload_id: Annotated[str, typer.Argument(help="the upload's id (from the page or POST /uploads)")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="confirm a replace that deletes features")]
        = False,
    ) -> None:
        """Write a checked upload in one transaction (a replace that deletes features asks first)."""
        import sys

        from layers.audit import cli_who
        from layers.settings import Settings
        from layers.store.database import database_url, engine_for
        from layers.upload_errors import ConfirmationRequiredError
        from layers.uploads import commit_upload

        settings = Settings()
        try:
            engine = engine_for(database_url(settings).render_as_string(hide_password=False))
            commit = lambda confirm: commit_upload(engine=engine, settings=settings,  # noqa: E731
                                                   upload_id=upload_id, who=cli_who("uploads commit"),
                                                   confirm=confirm)
            try:
                state = commit(yes)
            except ConfirmationRequiredError as exc:
                if not sys.stdin.isatty():
                    raise
                if not typer.confirm(f"{exc} (替换将删除现有的 {exc.members['deleted']:,} 个要素). Go on?",
                                     default=False):
                    typer.echo("not committed")
                    raise typer.Exit(1) from exc
                state = commit(True)
        except LandecoError as exc:
            hint = "; run again with --yes" if exc.code == "confirmation_required" else ""
            typer.secho(f"error [{exc.code}]: {exc}{hint}", fg="red", err=True)
            raise typer.Exit(2 if exc.code == "confirmation_required" else 1) from exc
        report = state["report"]
        left_out = report.get("counts", {}).get("refused", 0) if report.get("skip_refused") else 0
        typer.echo(f"{state['id']} {state['state']}: {report.get('written', {})}"
                   + (f"; {left_out} refused feature(s) left out" if left_out else ""))

    @uploads.command("prune")
    def prune_command(
        older_than: Annotated[float | None, typer.Option(
            "--older-than", help="days (default LANDECO_UPLOAD_RETENTION_DAYS, 30)")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go, remove nothing")] = False,
    ) -> None:
        """Remove the files and rows of uploads older than the retention (never one being committed)."""
        from layers.audit import cli_who
        from layers.settings import Settings
        from layers.store.database import database_url, engine_for
        from layers.uploads import prune_uploads

        settings = Settings()
        try:
            engine = engine_for(database_url(settings).render_as_string(hide_password=False))
            result = prune_uploads(engine=engine, settings=settings, older_than_days=older_than,
                                   dry_run=dry_run, who=cli_who("uploads prune"))
        except LandecoError as exc:
            typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        verb = "would remove" if dry_run else "removed"
        for u in result.removed:
            typer.echo(f"{verb} {u['id']} {u['state']:<11} {u['layer'] or '-'} {u['file'] or '-'} "
                       f"({u['created_at'] or 'no record'}) {u['bytes']:,} bytes")
        freed = "would free" if dry_run else "freed"
        typer.echo(f"{len(result.removed)} upload(s) {verb}; {freed} {result.freed_bytes:,} bytes")
