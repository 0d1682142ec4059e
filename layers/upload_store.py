"""Where uploads live between the two steps: ``<home>/uploads/<id>/`` with a ``state.json``.

Files, not a table, so that no migration is needed and a crashed commit leaves nothing in
the database but a state file saying ``committing``. The state is written atomically
(temporary file, then rename) so that a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from layers.upload_errors import UploadNotFoundError

__all__ = ["UploadStore"]

_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadStore:
    """The uploads under ``home``: create, read and update their state."""

    def __init__(self, home: Path) -> None:
        self.root = Path(home) / "uploads"

    def create(self) -> tuple[str, Path]:
        """A new upload id and its (empty) folder."""
        upload_id = uuid.uuid4().hex
        folder = self.root / upload_id
        folder.mkdir(parents=True)
        return upload_id, folder

    def folder(self, upload_id: str) -> Path:
        """The folder of ``upload_id``; ``UploadNotFoundError`` when there is none."""
        folder = self.root / upload_id
        if not _ID.match(upload_id) or not (folder / "state.json").exists():
            raise UploadNotFoundError(f"no upload with id {upload_id!r}")
        return folder

    def read(self, upload_id: str) -> dict[str, Any]:
        """The stored state of ``upload_id``."""
        return json.loads((self.folder(upload_id) / "state.json").read_text("utf-8"))

    def write(self, folder: Path, state: dict[str, Any]) -> None:
        """Replace the state atomically."""
        state = {**state, "updated": time.time()}
        tmp = folder / f".state.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state, ensure_ascii=False, default=str), "utf-8")
        os.replace(tmp, folder / "state.json")

    def update(self, upload_id: str, **changes: Any) -> dict[str, Any]:
        """Change some members of the state."""
        state = {**self.read(upload_id), **changes}
        self.write(self.root / upload_id, state)
        return state

    def discard(self, folder: Path) -> None:
        """Remove a refused upload entirely."""
        shutil.rmtree(folder, ignore_errors=True)
