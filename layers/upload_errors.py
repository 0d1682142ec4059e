"""Problems of uploads as landeco errors: a refused file, an upload that cannot be committed."""

from __future__ import annotations

from gis.errors import InputError
from layers.errors import LandecoError, NotFoundError

__all__ = ["ConfirmationRequiredError", "UploadCommitError", "UploadNotFoundError", "UploadQuotaError",
           "UploadRefusedError"]

#: HTTP status by InputError code; every other code is 422 (the file's content is wrong).
_STATUS = {"too_large": 413, "unsupported_format": 415, "crs_invalid": 400, "unknown_encoding": 400,
           "dataset_not_found": 400, "invalid_option": 400}


class UploadRefusedError(LandecoError):
    """The whole file is refused; ``code`` is the reading problem's stable code."""

    title = "Upload refused"

    def __init__(self, error: InputError) -> None:
        super().__init__(error.detail)
        self.code = error.code
        self.status = _STATUS.get(error.code, 422)
        self.hint = error.hint
        self.members = dict(error.extra)

    def extra(self) -> dict[str, object]:
        """The hint and the error's own members (candidates, suggested EPSG …)."""
        return {**({"hint": self.hint} if self.hint else {}), **self.members}


class UploadNotFoundError(NotFoundError):
    """No upload of that id is stored."""

    code = "upload_not_found"
    title = "Upload not found"


class UploadCommitError(LandecoError):
    """The upload cannot be committed (it has errors, or is committed already)."""

    code = "upload_not_committable"
    status = 409
    title = "Upload cannot be committed"

    def __init__(self, detail: str, code: str | None = None, problems: list | None = None) -> None:
        super().__init__(detail)
        if code:
            self.code = code
        self.problems = problems or []

    def extra(self) -> dict[str, object]:
        """The problems that stand in the way."""
        return {"problems": self.problems} if self.problems else {}


class UploadQuotaError(LandecoError):
    """The stored uploads would take more than ``upload_quota_bytes``, even after pruning."""

    code = "upload_quota_exceeded"
    status = 507
    title = "Upload storage full"

    def __init__(self, detail: str, *, quota_bytes: int, used_bytes: int, size_bytes: int) -> None:
        super().__init__(detail)
        self.members = {"quota_bytes": quota_bytes, "used_bytes": used_bytes, "size_bytes": size_bytes}

    def extra(self) -> dict[str, object]:
        """The quota, what is used, and what the upload needs."""
        return dict(self.members)


class ConfirmationRequiredError(LandecoError):
    """A replace would delete features of the layer and nobody confirmed it (``confirm=true``, ``--yes``)."""

    code = "confirmation_required"
    status = 409
    title = "Confirmation required"

    def __init__(self, detail: str, *, layer: str, deleted: int) -> None:
        super().__init__(detail)
        self.members = {"layer": layer, "deleted": deleted}

    def extra(self) -> dict[str, object]:
        """The layer and how many of its features the replace would delete."""
        return dict(self.members)
