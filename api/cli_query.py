"""Commands of this area for the `landeco` command line."""

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
