"""``landeco history LAYER ID``: a feature's versions (``--restore N``); ``landeco undo UPLOAD``."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import db_engine, fail
from layers.errors import LandecoError


def _line(v: dict) -> str:
    until = v["valid_to"] or "now"
    who = v["by"] or "(before history)"
    source = f" upload {v['upload_id']}" if v.get("upload_id") else ""
    out = f"v{v['version']:<3} {v['valid_from']} → {until}  {v['operation'] or '-':<8} {who}{source}"
    changes = v.get("changes")
    if changes:
        parts = [f"{k}: {c['from']!r} → {c['to']!r}" for k, c in changes["attributes"].items()]
        size = next((k for k in changes if k.endswith("_change")), None)
        if size and changes[size]:
            parts.append(f"{size.removesuffix('_change')} {changes[size]:+g}")
        if changes["moved_m"]:
            parts.append(f"moved {changes['moved_m']:g} m")
        out += "\n      " + ("; ".join(parts) if parts else "no attribute or boundary change")
    return out


def register(app: typer.Typer) -> None:
    """Add ``landeco history`` and ``landeco undo``."""

    @app.command("history")
    def history_command(
        layer: Annotated[str, typer.Argument(help="layer id, e.g. caragana_plots")],
        feature_id: Annotated[int, typer.Argument(help="the feature's id")],
        restore: Annotated[int | None, typer.Option("--restore", help="make version N current again")] = None,
    ) -> None:
        """A feature's versions: when, who, what changed (attributes, size, how far it moved)."""
        from layers import history
        from layers.audit import cli_who
        from layers.registry import get_layer

        try:
            found = get_layer(layer)
            engine = db_engine()
            if restore is not None:
                who = cli_who("history --restore")
                done = history.restore_feature(engine, found, feature_id, restore, who)
                typer.echo(f"{found.id} {feature_id}: version {restore} is current again"
                           + (" (re-created)" if done.recreated else ""))
                return
            with engine.connect() as conn:
                versions = history.versions(conn, found, feature_id)
        except LandecoError as exc:
            raise fail(exc) from exc
        for v in versions:
            typer.echo(_line(v))

    @app.command("undo")
    def undo_command(
        upload_id: Annotated[str, typer.Argument(help="the upload's id (upload page, audit trail)")],
        force: Annotated[bool, typer.Option("--force", help="undo even over later changes")] = False,
    ) -> None:
        """Undo a committed upload in one transaction: inserts removed, updates and deletes restored."""
        from layers import history
        from layers.audit import cli_who

        try:
            done = history.undo_upload(db_engine(), upload_id, cli_who("undo"), force=force)
        except history.UndoConflictError as exc:
            typer.secho(f"error [{exc.code}]: {exc}", fg="red", err=True)
            if exc.feature_ids:
                typer.echo("changed since: " + ", ".join(map(str, exc.feature_ids)), err=True)
            raise typer.Exit(1) from exc
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"undid upload {upload_id} on {done['layer']}: {done['removed']} removed, "
                   f"{done['restored']} restored, {done['recreated']} re-created"
                   + (f" (over {done['later_changes']} later change(s))" if done["forced"] else ""))
