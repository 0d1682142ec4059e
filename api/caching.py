"""HTTP validators shared by the features and the tiles: weak ETags and If-None-Match."""

from __future__ import annotations

import hashlib

from fastapi import Request

__all__ = ["not_modified", "weak_etag"]


def weak_etag(data: bytes) -> str:
    """A weak ETag of ``data``: weak, since the same answer goes out gzipped or not."""
    return f'W/"{hashlib.blake2b(data, digest_size=12).hexdigest()}"'


def not_modified(request: Request, etag: str) -> bool:
    """Whether the client's ``If-None-Match`` already names ``etag`` (answer 304)."""
    sent = request.headers.get("if-none-match", "")
    return bool(sent) and (sent.strip() == "*" or etag in [t.strip() for t in sent.split(",")])
