"""Which text encoding an upload's text uses, checked against the bytes themselves.

Chinese software writes GBK without a ``.cpg``, or with a ``.cpg`` copied from another
file that says ``UTF-8``; a declaration is therefore verified, never trusted. Rules, in
order: an explicit override, verified (refused if the bytes contradict it); text that is
valid UTF-8 is UTF-8; text that decodes as GB18030 (a superset of GBK) and reads as
Chinese is GB18030; else what the ``.cpg`` or the DBF's language driver id declares, if
the bytes decode in it; else Windows-1252 for text with no Chinese in it. Whatever text
cannot be decoded without guessing is refused (``encoding_mismatch`` for a declared or
chosen encoding, ``encoding_undetermined`` when nothing fits): Chinese is stored as the
surveyor typed it or not at all. Every candidate is checked against every text value
of the DBF (its character fields, read in bounded chunks), not a sample.
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gis.errors import InputError

__all__ = ["EncodingChoice", "cpg_encoding", "detect_dbf_encoding", "detect_text_encoding", "normalise",
           "transcode_to_utf8"]

# DBF language driver ids (byte 29) that name a code page
_LDID = {0x01: "cp437", 0x02: "cp850", 0x03: "cp1252", 0x4D: "gbk", 0x7A: "gbk", 0x57: "cp1252",
         0x4E: "cp949", 0x4F: "cp950", 0x13: "cp932", 0x7B: "cp932", 0x7C: "cp874", 0xC8: "cp1250"}
_CPG_ALIASES = {"936": "gbk", "cp936": "gbk", "65001": "utf-8", "utf8": "utf-8", "ansi 936": "gbk",
                "54936": "gb18030", "1252": "cp1252", "ansi 1252": "cp1252", "88591": "latin-1",
                "8859_1": "latin-1", "iso88591": "latin-1", "950": "cp950", "437": "cp437"}
_CHINESE = ("gbk", "gb18030", "gb2312")
_WIDE = re.compile(r"[^\x00-\x7f]")
_COMMON = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")
_RECORDS_PER_CHUNK = 20_000
#: the hint of every encoding refusal: how to choose one
HINT = "choose the encoding the file was saved in (utf-8, gbk or gb18030) with the encoding option, " \
       "or save the file again as UTF-8"


@dataclass(frozen=True)
class EncodingChoice:
    """The encoding chosen and why.

    ``source``: ``override`` (the user's), ``cpg`` (the ``.cpg``, verified), ``detected``
    (from the bytes), ``ldid`` (the DBF header), ``fallback`` (Windows-1252 for text with
    no Chinese) or ``format`` (UTF-8 by the format's definition). ``declared`` is what a
    ``.cpg`` said when the bytes contradicted it; ``cut_values`` counts text values whose
    last character a field width had cut in half (that half is dropped).
    """

    encoding: str
    source: str
    declared: str | None = None
    cut_values: int = 0


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
        found = codecs.lookup(candidate).name.replace("_", "-")
    except LookupError:
        raise InputError("unknown_encoding", f"unknown text encoding {name[:40]!r}",
                         hint="use utf-8, gbk or gb18030", encoding=name[:40]) from None
    if found in ("utf-8-sig",):
        return "utf-8"
    return found


def cpg_encoding(cpg: Path) -> str:
    """The encoding a ``.cpg`` file names (UTF-8 when it is empty)."""
    text = cpg.read_bytes()[:200].decode("ascii", errors="replace").strip()
    return normalise(text.splitlines()[0] if text else "utf-8")


@dataclass(frozen=True)
class _Dbf:
    header_len: int
    record_len: int
    records: int
    ldid: int
    names: list[bytes]
    #: (name, offset in the record, width) of each character field
    text_fields: list[tuple[bytes, int, int]]


def _dbf(dbf: Path) -> _Dbf:
    with open(dbf, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return _Dbf(0, 0, 0, 0, [], [])
        records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        descriptors = fh.read(max(header_len - 32, 0))
    names, fields, offset = [], [], 1  # byte 0 of a record is the deletion flag
    for i in range(0, len(descriptors) - 31, 32):
        d = descriptors[i:i + 32]
        if d[0] == 0x0D:
            break
        name = d[:11].split(b"\0")[0]
        width = d[16]
        names.append(name)
        if d[11:12] in (b"C", b"V"):
            fields.append((name, offset, width))
        offset += width
    return _Dbf(header_len, record_len, records, head[29], names, fields)


def _values(dbf: Path, info: _Dbf) -> Iterator[tuple[int, bytes, bytes]]:
    """(first record, field name, the field's values each followed by a newline), chunk by chunk."""
    if not info.text_fields or info.record_len == 0:
        return
    with open(dbf, "rb") as fh:
        fh.seek(info.header_len)
        start = 0
        while start < info.records:
            raw = fh.read(info.record_len * _RECORDS_PER_CHUNK)
            n = len(raw) // info.record_len
            if n == 0:
                return
            rows = np.frombuffer(raw[:n * info.record_len], dtype=np.uint8).reshape(n, info.record_len)
            for name, offset, width in info.text_fields:
                cells = rows[:, offset:offset + width]
                if not (cells >= 0x80).any():
                    continue
                yield start, name, np.hstack([cells, np.full((n, 1), 0x0A, np.uint8)]).tobytes()
            start += n


@dataclass
class _Failure:
    record: int  # 0-based
    column: str
    value: str  # the bytes around the fault, shown escaped


def _check(data: bytes, width: int, encoding: str) -> tuple[_Failure | None, list[int], str]:
    """Decode ``data`` (values of ``width`` bytes, each plus a newline) strictly in ``encoding``.

    Returns the first value that does not decode (None if all do), the indices of values
    whose end is half a character (cut by the field width), and the decoded text.
    """
    cut: list[int] = []
    pos, text = 0, []
    step = width + 1
    while pos < len(data):
        try:
            text.append(data[pos:].decode(encoding))
            break
        except UnicodeDecodeError as exc:
            bad = pos + exc.start
            index = bad // step
            end = index * step + width  # the value's "\n"
            if _half_char(data[bad:end], encoding):
                cut.append(index)  # a character cut in half by the field width
                text.append(data[pos:bad].decode(encoding))
                pos = end
                continue
            value = data[index * step:end].rstrip(b" ")
            return _Failure(index, "", repr(value[:60])[2:-1]), cut, ""
    return None, cut, "".join(text)


def _half_char(tail: bytes, encoding: str) -> bool:
    """Whether ``tail`` is the start of a character whose rest is missing."""
    try:
        return bool(tail) and codecs.getincrementaldecoder(encoding)().decode(tail, final=False) == ""
    except UnicodeDecodeError:
        return False


def _scan(dbf: Path, info: _Dbf, encoding: str) -> tuple[_Failure | None, list[tuple[int, int, int]], str]:
    """Check every text value of ``dbf`` (and the field names) in ``encoding``.

    Returns the first failure, the cut values as (record, offset, width), and a sample of
    the decoded text (for judging whether it is Chinese).
    """
    cuts: list[tuple[int, int, int]] = []
    sample: list[str] = []
    for name in info.names:
        # a name cut at 10 bytes in the middle of a character is repaired later; others fail
        try:
            sample.append(name.decode(encoding))
        except UnicodeDecodeError as exc:
            if not _half_char(name[exc.start:], encoding):
                return _Failure(-1, "", repr(name)[2:-1]), [], ""
            sample.append(name[:exc.start].decode(encoding))
    size = 0
    widths = {name: (offset, width) for name, offset, width in info.text_fields}
    for start, name, data in _values(dbf, info):
        offset, width = widths[name]
        failure, cut, text = _check(data, width, encoding)
        if failure is not None:
            failure.record += start
            failure.column = name.decode(encoding, errors="replace")
            return failure, cuts, ""
        cuts.extend((start + i, offset, width) for i in cut)
        if size < 1_000_000:
            sample.append(text)
            size += len(text)
    return None, cuts, "".join(sample)


def _chinese(text: str) -> bool:
    """Whether decoded text reads as Chinese rather than as mis-read Latin bytes."""
    wide = len(_WIDE.findall(text))
    return wide > 0 and len(_COMMON.findall(text)) / wide > 0.9


_WHERE = {"option": "the encoding option", "cpg": "the .cpg file", "format": "the format"}


def _mismatch(encoding: str, where: str, failure: _Failure | None, hint: str = HINT,
              **extra: object) -> InputError:
    """``encoding_mismatch``: ``where`` (option, cpg, format) names an encoding the bytes contradict."""
    at = ""
    if failure is not None:
        at = (f" (field name {failure.value!r})" if failure.record < 0 else
              f" (feature {failure.record}, column {failure.column!r}: {failure.value!r})")
    said = _WHERE[where]
    return InputError("encoding_mismatch", f"the text of the file is not {encoding}, as {said} says{at}",
                      hint=hint, encoding=encoding, where=where,
                      **({} if failure is None else {"field_name": failure.value} if failure.record < 0 else
                         {"feature": failure.record, "column": failure.column}), **extra)


def _patch_cuts(dbf: Path, info: _Dbf, cuts: list[tuple[int, int, int]], encoding: str) -> None:
    """Blank the half character at the end of each cut value (the upload's own copy)."""
    with open(dbf, "r+b") as fh:
        for record, offset, width in cuts:
            at = info.header_len + record * info.record_len + offset
            fh.seek(at)
            value = fh.read(width)
            keep = value
            while keep:
                try:
                    keep.decode(encoding)
                    break
                except UnicodeDecodeError:
                    keep = keep[:-1]
            fh.seek(at)
            fh.write(keep.ljust(width, b" "))


def detect_dbf_encoding(dbf: Path, cpg: Path | None = None, override: str | None = None) -> EncodingChoice:
    """Choose and verify the encoding of ``dbf`` (see the module docstring for the rules).

    Values cut mid-character by their field width are repaired in place (the caller's
    copy): the half character is dropped. Raises ``InputError`` when no encoding fits.
    """
    info = _dbf(dbf)
    declared = cpg_encoding(cpg) if cpg is not None and cpg.exists() else None

    def chosen(encoding: str, source: str, cuts: list, contradicted: str | None = None) -> EncodingChoice:
        if cuts:
            _patch_cuts(dbf, info, cuts, encoding)
        return EncodingChoice(encoding, source, contradicted, len(cuts))

    utf8_fail, utf8_cuts, utf8_text = _scan(dbf, info, "utf-8")
    ascii_only = utf8_fail is None and not _WIDE.search(utf8_text)
    if override:
        wanted = normalise(override)
        failure, cuts, _ = _scan(dbf, info, wanted)
        if failure is not None:
            suggested = "utf-8" if utf8_fail is None else "gb18030" if _gb_text(dbf, info) else None
            raise _mismatch(wanted, "option", failure,
                            **({"suggested": suggested} if suggested else {}))
        if wanted != "utf-8" and utf8_fail is None and not ascii_only:
            raise _mismatch(wanted, "option", None,
                            hint="the text is valid UTF-8: choose utf-8, or leave the encoding empty",
                            suggested="utf-8")
        if wanted not in _CHINESE and wanted != "utf-8" and _chinese(_gb_text(dbf, info)):
            raise _mismatch(wanted, "option", None,
                            hint="the text reads as Chinese in GB18030: choose gb18030", suggested="gb18030")
        return chosen(wanted, "override", cuts)
    if utf8_fail is None:
        if ascii_only or declared in (None, "utf-8"):
            return chosen("utf-8", "cpg" if declared == "utf-8" else "detected", utf8_cuts)
        return chosen("utf-8", "detected", utf8_cuts, declared)
    gb_fail, gb_cuts, gb_text = _scan(dbf, info, "gb18030")
    if gb_fail is None and _chinese(gb_text):
        if declared in _CHINESE:
            failure, cuts, _ = _scan(dbf, info, declared)
            if failure is None:
                return chosen(declared, "cpg", cuts)
        return chosen("gb18030", "detected", gb_cuts, declared)
    for encoding, source in ((declared, "cpg"), (_LDID.get(info.ldid), "ldid")):
        if encoding is not None and encoding != "utf-8" and encoding not in _CHINESE:
            failure, cuts, _ = _scan(dbf, info, encoding)
            if failure is None:
                return chosen(encoding, source, cuts)
    if declared is not None:
        failure, _, _ = _scan(dbf, info, declared)
        raise _mismatch(declared, "cpg", failure if failure is not None else utf8_fail)
    if not _looks_chinese(dbf, info):  # no Chinese in it, however read: a Western code page
        failure, cuts, _ = _scan(dbf, info, "cp1252")
        if failure is None:
            return chosen("cp1252", "fallback", cuts)
    failure = gb_fail or utf8_fail
    raise InputError("encoding_undetermined", "the text of the file is neither UTF-8 nor GB18030 (GBK)"
                     + (f": feature {failure.record}, column {failure.column!r} holds {failure.value!r}"
                        if failure and failure.record >= 0 else ""),
                     hint=HINT, **({"feature": failure.record, "column": failure.column}
                                   if failure and failure.record >= 0 else {}))


def _looks_chinese(dbf: Path, info: _Dbf) -> bool:
    """Whether the text, read leniently as GB18030, is mostly Chinese (a damaged GBK file)."""
    text, size = [], 0
    for _start, _name, data in _values(dbf, info):
        text.append(data.decode("gb18030", errors="replace"))
        size += len(data)
        if size > 1_000_000:
            break
    joined = "".join(text)
    wide = len(_WIDE.findall(joined))
    return wide > 0 and len(_COMMON.findall(joined)) / wide > 0.5


def _gb_text(dbf: Path, info: _Dbf) -> str:
    failure, _, text = _scan(dbf, info, "gb18030")
    return "" if failure is not None else text


# --- text formats (GeoJSON, CSV): the whole file is text ---

def _text_failure(path: Path, encoding: str) -> tuple[int, str] | None:
    """The first byte offset (and the bytes there) where ``path`` stops decoding in ``encoding``."""
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return done + exc.start, repr(chunk[max(exc.start - 20, 0):exc.start + 20])[2:-1]
            done += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return done + exc.start, ""
    return None


def _text_sample(path: Path, encoding: str) -> str:
    with open(path, "rb") as fh:
        raw = fh.read(4 * 1024 * 1024)
    return raw.decode(encoding, errors="ignore")


def detect_text_encoding(path: Path, override: str | None = None) -> EncodingChoice:
    """The encoding of a text file (GeoJSON, CSV): the override verified, else UTF-8, else GB18030.

    The format says UTF-8, so UTF-8 text is ``format``; GB18030 that reads as Chinese is
    ``detected`` (the caller then transcodes, see :func:`transcode_to_utf8`).
    """
    utf8 = _text_failure(path, "utf-8")
    if override:
        wanted = normalise(override)
        failure = _text_failure(path, wanted)
        if failure is not None:
            raise InputError("encoding_mismatch", f"the text of the file is not {wanted}, as the encoding "
                             f"option says (at byte {failure[0]:,}: {failure[1]!r})", hint=HINT,
                             encoding=wanted, where="option")
        if wanted != "utf-8" and utf8 is None and not _text_sample(path, "utf-8").isascii():
            raise InputError("encoding_mismatch", f"the text of the file is not {wanted}, as the encoding "
                             "option says: it is valid UTF-8",
                             hint="choose utf-8 (or leave the encoding to be detected)", encoding=wanted,
                             where="option", suggested="utf-8")
        return EncodingChoice(wanted, "override")
    if utf8 is None:
        return EncodingChoice("utf-8", "format")
    if _text_failure(path, "gb18030") is None and _chinese(_text_sample(path, "gb18030")):
        return EncodingChoice("gb18030", "detected")
    raise InputError("encoding_undetermined", "the text of the file is neither UTF-8 nor GB18030 (GBK) "
                     f"(at byte {utf8[0]:,}: {utf8[1]!r})", hint=HINT)


def transcode_to_utf8(path: Path, encoding: str) -> None:
    """Rewrite the upload's own copy of a text file as UTF-8, in bounded chunks."""
    if encoding == "utf-8":
        return
    tmp = path.with_name(path.name + ".utf8")
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(4 * 1024 * 1024):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    tmp.replace(path)
