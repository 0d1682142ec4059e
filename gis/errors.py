"""Errors of reading an uploaded file: each carries a stable ``code`` and helpful members.

``gis`` knows no HTTP and no database; :mod:`layers.importer` turns these into
problem documents. The codes are part of landeco's interface (see ``docs/uploads.md``).
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """The uploaded file cannot be read as it is; ``code`` says why, ``hint`` what to do."""

    def __init__(self, code: str, detail: str, *, hint: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.hint = hint
        self.extra = extra
