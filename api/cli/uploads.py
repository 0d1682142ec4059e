"""``landeco uploads prune``: remove stored uploads past their retention."""

from __future__ import annotations

from typing import Annotated

import typer

from layers.errors import LandecoError


def register(app: typer.Typer) -> None:
    """Add the ``landeco uploads`` group."""
    uploads = typer.Typer(help="Stored uploads (checked, committed …) in the storage folder.",
                          no_args_is_help=True)
    app.add_typer(uploads, name="uploads")

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
