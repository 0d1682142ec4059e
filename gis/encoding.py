"""Which text encoding a shapefile's DBF uses: the ``.cpg``, else a strict guess.

Chinese software writes GBK without a ``.cpg`` and with a language driver id of 0, so
GDAL passes the bytes through undecoded. Rules, in order: an explicit override; the
``.cpg``; strict UTF-8; strict GB18030 (a superset of GBK) when the text is plausible
Chinese; else the DBF's language driver id; else Windows-1252. The source is reported.
"""

from __future__ import annotations

import codecs
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from gis.errors import InputError

__all__ = ["EncodingChoice", "cpg_encoding", "detect_dbf_encoding", "normalise"]

# DBF language driver ids (byte 29) that name a code page
_LDID = {0x01: "cp437", 0x02: "cp850", 0x03: "cp1252", 0x4D: "gbk", 0x7A: "gbk", 0x57: "cp1252",
         0x4E: "cp949", 0x4F: "cp950", 0x13: "cp932", 0x7B: "cp932", 0x7C: "cp874", 0xC8: "cp1250"}
_CPG_ALIASES = {"936": "gbk", "cp936": "gbk", "65001": "utf-8", "utf8": "utf-8", "ansi 936": "gbk",
                "54936": "gb18030", "1252": "cp1252", "ansi 1252": "cp1252", "88591": "latin-1",
                "8859_1": "latin-1", "iso88591": "latin-1", "950": "cp950", "437": "cp437"}
_SAMPLE = 4 * 1024 * 1024
_WIDE = re.compile(r"[^\x00-\x7f]")
_COMMON = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")


@dataclass(frozen=True)
class EncodingChoice:
    """The encoding chosen and why: ``override``, ``cpg``, ``detected`` or ``ldid``."""

    encoding: str
    source: str


def normalise(name: str) -> str:
    """A Python codec name for what a user or a ``.cpg`` wrote; ``InputError`` if unknown.

    Examples
    --------
    >>> normalise("936"), normalise("UTF8"), normalise("GBK")
    ('gbk', 'utf-8', 'gbk')
    """
    key = name.strip().lower().replace("-", "").replace(" ", "") if name.strip() else ""
    alias = _CPG_ALIASES.get(name.strip().lower()) or _CPG_ALIASES.get(key)
    candidate = alias or name.strip()
    try:
        return codecs.lookup(candidate).name.replace("_", "-")
    except LookupError:
        raise InputError("unknown_encoding", f"unknown text encoding {name!r}",
                         hint="use utf-8, gbk or gb18030") from None


def cpg_encoding(cpg: Path) -> str:
    """The encoding a ``.cpg`` file names."""
    return normalise(cpg.read_text("ascii", errors="replace").strip().splitlines()[0]
                     if cpg.read_bytes().strip() else "utf-8")


def _dbf_text(dbf: Path) -> tuple[bytes, int]:
    """The raw field names and the first records' bytes, and the language driver id."""
    with open(dbf, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return b"", 0
        header_len = struct.unpack("<H", head[8:10])[0]
        descriptors = fh.read(max(header_len - 32, 0))
        body = fh.read(_SAMPLE)
    # only the 11-byte names of the 32-byte descriptors: lengths and flags are binary
    names = b"".join(descriptors[i:i + 11].split(b"\0")[0] for i in range(0, len(descriptors) - 31, 32)
                     if descriptors[i] != 0x0D)
    return names + b" " + body, head[29]


def _plausible_chinese(text: str) -> bool:
    """Whether decoded GB18030 text looks like Chinese rather than mis-read Latin bytes."""
    wide = len(_WIDE.findall(text))
    if not wide:
        return True
    return len(_COMMON.findall(text)) / wide > 0.9


def detect_dbf_encoding(dbf: Path, cpg: Path | None = None, override: str | None = None) -> EncodingChoice:
    """Choose the encoding of ``dbf`` (see the module docstring for the order of rules)."""
    if override:
        return EncodingChoice(normalise(override), "override")
    if cpg is not None and cpg.exists():
        return EncodingChoice(cpg_encoding(cpg), "cpg")
    raw, ldid = _dbf_text(dbf)
    if raw.isascii():
        return EncodingChoice("utf-8", "detected")
    try:
        raw.decode("utf-8")
        return EncodingChoice("utf-8", "detected")
    except UnicodeDecodeError as exc:
        if exc.start > len(raw) - 4:  # a multi-byte sequence cut by the sample
            return EncodingChoice("utf-8", "detected")
    try:
        if _plausible_chinese(raw.decode("gb18030")):
            return EncodingChoice("gb18030", "detected")
    except UnicodeDecodeError:
        pass
    return EncodingChoice(_LDID.get(ldid, "cp1252"), "ldid" if ldid in _LDID else "detected")
