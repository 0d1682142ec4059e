"""``landeco users …``: accounts, roles, passwords and API tokens, for the operator."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from api.cli.common import db_engine, fail
from layers.errors import LandecoError


def _stdin_password() -> str:
    """The first line of stdin (a pipe or a prompt-less terminal), without its line end."""
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def register(app: typer.Typer) -> None:
    """Add the ``landeco users`` group."""
    from layers import accounts
    from layers.audit import cli_who

    users = typer.Typer(help="Accounts (roles viewer, surveyor, planner, admin) and their API tokens.",
                        no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("add")
    def add(
        name: str,
        role: Annotated[str, typer.Option("--role", help="roles, comma-separated: viewer, surveyor, "
                                          "planner, admin")],
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="read the password from stdin (else one is generated and "
            "printed once)")] = False,
        display_name: Annotated[str | None, typer.Option(
            "--display-name", help="the name pages show")] = None,
    ) -> None:
        """Create an account."""
        password = _stdin_password() if password_stdin else None
        try:
            generated = accounts.add_user(engine=db_engine(), who=cli_who("users add"), name=name,
                                          roles=role.split(","), password=password, display_name=display_name)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"account {name} created", err=True)
        if generated is not None:
            typer.echo("its password (shown this once):", err=True)
            typer.echo(generated)

    @users.command("list")
    def list_() -> None:
        """Every account, its roles and whether it is disabled (never a password)."""
        for u in accounts.list_users(engine=db_engine()):
            state = "disabled" if u["disabled"] else "active"
            typer.echo(f"{u['name']:<20} {','.join(u['roles']) or '-':<32} {state:<9} "
                       f"{u['display_name'] or ''}")

    @users.command("disable")
    def disable(name: str,
                enable: Annotated[bool, typer.Option("--enable", help="enable it again")] = False) -> None:
        """Disable an account: its sessions and tokens stop working at once."""
        try:
            accounts.set_disabled(engine=db_engine(), who=cli_who("users disable"), name=name,
                                  disabled=not enable)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"account {name} {'enabled' if enable else 'disabled'}")

    @users.command("passwd")
    def passwd(name: str) -> None:
        """Set a new password, read from stdin; the account's page sessions end."""
        try:
            accounts.set_password(engine=db_engine(), who=cli_who("users passwd"), name=name,
                                  password=_stdin_password())
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"password of {name} changed")

    @users.command("grant")
    def grant(name: str, role: str) -> None:
        """Give an account a role."""
        try:
            roles = accounts.grant(engine=db_engine(), who=cli_who("users grant"), name=name, role=role)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"{name}: {','.join(roles)}")

    @users.command("revoke")
    def revoke(name: str, role: str) -> None:
        """Take a role from an account."""
        try:
            roles = accounts.revoke(engine=db_engine(), who=cli_who("users revoke"), name=name, role=role)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"{name}: {','.join(roles) or '-'}")

    @users.command("token")
    def token(
        name: str,
        label: Annotated[str, typer.Option("--label", help="what the token is for")] = "",
        expires: Annotated[float | None, typer.Option("--expires", help="days until it expires "
                                                      "(default: never)")] = None,
    ) -> None:
        """A new API token for the account, printed alone on stdout (shown this once)."""
        try:
            token_id, secret = accounts.create_token(engine=db_engine(), who=cli_who("users token"),
                                                     name=name, label=label, expires_days=expires)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"token {token_id} for {name} (shown this once; revoke with "
                   f"`landeco users revoke-token {token_id}`)", err=True)
        typer.echo(secret)

    @users.command("tokens")
    def tokens(name: str) -> None:
        """The account's tokens: id, label, created, expires, last used, revoked."""
        typer.echo(f"{'id':>6}  {'created':<16}  {'expires':<16}  {'last used':<16}  {'revoked':<16}  label")
        for t in accounts.list_tokens(engine=db_engine(), name=name):
            typer.echo(f"{t['id']:>6}  {_when(t['created_at']):<16}  {_when(t['expires_at']):<16}  "
                       f"{_when(t['last_used_at']):<16}  {_when(t['revoked_at']):<16}  {t['label']}")

    @users.command("revoke-token")
    def revoke_token(token_id: int) -> None:
        """Revoke a token by its id: it stops working at once."""
        try:
            accounts.revoke_token(engine=db_engine(), who=cli_who("users revoke-token"), token_id=token_id)
        except LandecoError as exc:
            raise fail(exc) from exc
        typer.echo(f"token {token_id} revoked")
