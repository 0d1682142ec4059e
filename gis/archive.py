"""Safe unpacking of uploaded archives: no escaping paths, no zip bombs, bounded size.

A surveyor's zip may hold folders, odd letter case and Chinese member names written by
Windows (GBK without the UTF-8 flag); a hostile one may hold ``../`` paths, symbolic
links or a few kilobytes that inflate to gigabytes. Everything is checked against the
central directory first and again while bytes are written, since headers can lie.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gis.errors import InputError

__all__ = ["Limits", "extract_zip", "member_name", "sniff"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How much an archive may hold once unpacked."""

    max_bytes: int = 2 * 1024**3
    max_members: int = 10_000
    max_ratio: float = 200.0


def sniff(path: Path) -> str:
    """The kind of an uploaded file from its first bytes: zip, gpkg, json, kml or unknown.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b'{"type": "FeatureCollection"}')
    >>> sniff(p)
    'json'
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return "json"
    if text.startswith(b"<?xml") or b"<kml" in head:
        return "kml"
    return "unknown"


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name, re-decoded as UTF-8 or GBK when the zip did not flag UTF-8.

    Windows tools write Chinese names in the local code page (GBK) without the UTF-8
    flag; :mod:`zipfile` then decodes them as CP437, which gives mojibake.
    """
    name = info.filename
    if info.flag_bits & 0x800 or name.isascii():
        return name
    raw = name.encode("cp437")
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return name


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InputError("unsafe_path", f"the archive holds a path that escapes its folder: {name!r}",
                         member=name)
    return path


def extract_zip(path: Path, dest: Path, limits: Limits | None = None) -> list[Path]:
    """Unpack ``path`` into ``dest`` after checking every member; returns the files written.

    Raises :class:`InputError` with code ``corrupt_zip``, ``unsafe_path``, ``zip_bomb``
    or ``too_large``; nothing is left in ``dest`` when it does.
    """
    limits = limits or Limits()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check(infos, limits)
            written: list[Path] = []
            try:
                for info in infos:
                    if info.is_dir():
                        continue
                    target = dest / _safe_relative(member_name(info))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _copy_member(zf, info, target, limits)
                    written.append(target)
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
            return written
    except zipfile.BadZipFile as exc:
        raise InputError("corrupt_zip", f"the file is not a readable zip archive ({exc})") from exc
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, zlib.error) as exc:
        raise InputError("corrupt_zip", f"the zip archive cannot be unpacked ({exc})") from exc


def _check(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_members:
        raise InputError("zip_bomb", f"the archive holds {len(infos)} members "
                         f"(at most {limits.max_members} are accepted)")
    total = 0
    for info in infos:
        _safe_relative(member_name(info))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InputError("unsafe_path", f"the archive holds a symbolic link: {info.filename!r}",
                             member=info.filename)
        total += info.file_size
        if info.file_size > 1024 * 1024 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise InputError("zip_bomb", f"{info.filename!r} would inflate {info.file_size:,} bytes from "
                             f"{info.compress_size:,}: refused as a zip bomb")
    if total > limits.max_bytes:
        raise InputError("too_large", f"the archive unpacks to {total:,} bytes; the limit is "
                         f"{limits.max_bytes:,}", limit_bytes=limits.max_bytes)


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: Limits) -> None:
    """Copy one member, stopping if it inflates beyond what its header declared."""
    allowed = min(info.file_size, limits.max_bytes)
    seen = 0
    with zf.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(_CHUNK):
            seen += len(chunk)
            if seen > allowed:
                raise InputError("zip_bomb", f"{info.filename!r} inflates beyond its declared size")
            out.write(chunk)
