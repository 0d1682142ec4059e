"""``landeco backup [--out FILE]`` and ``landeco restore FILE``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from layers.errors import LandecoError


def register(app: typer.Typer) -> None:
    """Add ``landeco backup`` and ``landeco restore``."""

    @app.command("backup")
    def backup_command(
        out: Annotated[Path | None, typer.Option(
            "--out", help="the archive (default <LANDECO_HOME>/backups/landeco-<UTC time>.tar)")] = None,
    ) -> None:
        """One archive: the database (pg_dump), stored uploads, a manifest with versions and checksums."""
        from layers.backup import create_backup
        from layers.settings import Settings
        from layers.store.database import database_url

        settings = Settings()
        target = out or settings.home / "backups" / f"landeco-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar"
        try:
            manifest = create_backup(database_url(settings), settings, target)
        except LandecoError as exc:
            typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        size = sum(f["bytes"] for f in manifest["files"].values())
        typer.echo(f"wrote {target} ({len(manifest['files'])} member(s), {size:,} bytes, schema "
                   f"{manifest['versions']['schema_revision']})")

    @app.command("restore")
    def restore_command(
        archive: Annotated[Path, typer.Argument(help="an archive written by landeco backup")],
    ) -> None:
        """Put a backup into an empty database and storage; a damaged or foreign archive writes nothing."""
        from layers.backup import restore_backup
        from layers.settings import Settings
        from layers.store.database import database_url

        settings = Settings()
        try:
            done = restore_backup(database_url(settings), settings, archive)
        except LandecoError as exc:
            typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        typer.echo(done.summary())
