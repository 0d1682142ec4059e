"""Opening a surveyor's upload with GDAL (pyogrio) and reading it in bounded batches.

An upload is a zipped shapefile (any folder depth, any letter case, several of them),
a GeoPackage, GeoJSON, KML or KMZ. :func:`open_upload` unpacks and checks it, chooses
the dataset and layer, the text encoding and reads the header; :func:`batches` then yields
features a batch at a time (``skip_features``/``max_features``), so memory stays bounded
whatever the file's size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import struct
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError
from pyogrio.raw import read as ogr_read

from gis.archive import Limits, extract_zip, sniff
from gis.encoding import (
    HINT,
    EncodingChoice,
    detect_dbf_encoding,
    detect_text_encoding,
    normalise,
    transcode_to_utf8,
)
from gis.errors import InputError

__all__ = ["Batch", "Candidate", "Upload", "batches", "candidates", "open_upload"]

_SHAPEFILE_PARTS = ("shp", "shx", "dbf", "prj", "cpg")
_OTHER = {"gpkg": "GPKG", "geojson": "GeoJSON", "json": "GeoJSON", "kml": "KML", "csv": "CSV"}
#: a CSV's geometry as WKT in one of these columns (what ``landeco export --format csv`` writes)
_CSV_OPTIONS = (("GEOM_POSSIBLE_NAMES", "WKT,wkt,geometry,geom,几何"), ("KEEP_GEOM_COLUMNS", "NO"))
#: GeoJSON dates stay text: GDAL would type "2023-02-30" a date that Python cannot hold; the
#: importer checks each date itself (and refuses that one as a value, not the file).
_GEOJSON_OPTIONS = (("DATE_AS_STRING", "YES"),)
DEFAULT_LIMITS = Limits()
_SHP_ZM = (11, 13, 15, 18, 21, 23, 25, 28)
_OGR_ERRORS = (DataSourceError, DataLayerError, FieldError, GeometryError)


@dataclass(frozen=True)
class Candidate:
    """One dataset (a shapefile, or a layer of a GeoPackage/KML) the upload holds."""

    name: str
    path: Path
    driver: str
    layer: str | None = None
    error: InputError | None = None  # why it cannot be read, raised only if it is chosen
    #: a text file's encoding, verified (the file itself is then a UTF-8 copy)
    encoding: EncodingChoice | None = None
    #: GDAL open options (a CSV's geometry column)
    options: tuple[tuple[str, str], ...] = ()


@dataclass
class Upload:
    """The chosen dataset, ready to read: header facts that the report shows."""

    candidate: Candidate
    candidates: list[Candidate]
    encoding: EncodingChoice | None
    crs_wkt: str | None
    geometry_type: str  # "None" for a table without geometry (XLSX, a CSV without WKT)
    columns: list[str]
    dtypes: list[str]
    count: int
    bounds: tuple[float, float, float, float]
    warnings: list[tuple[str, str]] = field(default_factory=list)
    #: the totals row a spreadsheet export ends with (``合计（N 个）``), left out of ``count``
    totals_row: str | None = None

    @property
    def has_geometry(self) -> bool:
        """Whether the file carries geometries (an XLSX export does not)."""
        return self.geometry_type != "None"

    @property
    def has_zm(self) -> bool:
        """Whether the file declares Z or M values (dropped on import)."""
        g = self.geometry_type
        if " Z" in g or g.endswith("M") or "Measured" in g:
            return True
        return self.candidate.driver == "ESRI Shapefile" and _shp_type(self.candidate.path) in _SHP_ZM


@dataclass(frozen=True)
class Batch:
    """Features ``start`` … ``start + len(geoms) - 1`` of the upload (0-based)."""

    start: int
    geoms: np.ndarray
    columns: dict[str, np.ndarray]
    unreadable: np.ndarray


def _shp_type(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(36)
    return struct.unpack("<i", head[32:36])[0] if len(head) >= 36 else 0


def _parts(folder: Path) -> dict[tuple[Path, str], dict[str, Path]]:
    """Shapefile parts grouped by (folder, lower-case stem), any letter case."""
    groups: dict[tuple[Path, str], dict[str, Path]] = {}
    for p in sorted(folder.rglob("*")):
        ext = p.suffix[1:].lower()
        if p.is_file() and ext in _SHAPEFILE_PARTS and not p.name.startswith("._"):
            groups.setdefault((p.parent, p.stem.lower()), {})[ext] = p
    return groups


def _normalise_shapefile(parts: dict[str, Path], dest: Path) -> Path:
    """Move a shapefile's parts to ASCII, lower-case names, so GDAL finds every one."""
    dest.mkdir(parents=True, exist_ok=True)
    for ext, p in parts.items():
        shutil.move(p, dest / f"data.{ext}")
    return dest / "data.shp"


def _fix_bare_array(path: Path) -> None:
    """A top-level JSON array of Features (DataV exports) becomes a FeatureCollection."""
    if path.stat().st_size > 256 * 1024**2:
        return
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("corrupt_file", f"the GeoJSON cannot be parsed ({exc})") from exc
    if isinstance(doc, list):
        path.write_text(json.dumps({"type": "FeatureCollection", "features": doc}, ensure_ascii=False),
                        encoding="utf-8")


def _xlsx_like(path: Path) -> bool:
    """Whether a zip is an Excel workbook (what ``landeco export --format xlsx`` writes)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _csv_like(path: Path) -> bool:
    """Whether a file sniffed as unknown is a CSV table with a WKT geometry column.

    Its first line is a header naming one of the geometry columns GDAL is told to read
    (what ``landeco export --format csv`` writes), with no NUL byte in the first 4 KiB.
    """
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf")
    line = head.split(b"\n", 1)[0].strip().lower()
    names = {n.strip(b'" ') for n in line.split(b",")}
    geometry = {n.lower().encode() for n in dict(_CSV_OPTIONS)["GEOM_POSSIBLE_NAMES"].split(",")}
    return b"\0" not in head and len(names) > 1 and bool(names & geometry)


def _text_copy(path: Path, workdir: Path, display: str, encoding: str | None) -> tuple[Path, EncodingChoice]:
    """A UTF-8 copy of a text file (GeoJSON, CSV) in ``workdir``, its encoding verified first."""
    try:
        choice = detect_text_encoding(path, encoding)
    except InputError as exc:
        exc.extra.setdefault("dataset", display)
        raise
    if choice.encoding == "utf-8":
        return path, choice
    base = workdir / "text"
    folder = base / str(len(list(base.glob("*"))) if base.exists() else 0)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / ("data" + path.suffix.lower())
    shutil.copyfile(path, copy)
    transcode_to_utf8(copy, choice.encoding)
    return copy, choice


def _text_candidates(path: Path, workdir: Path, driver: str, display: str,
                     encoding: str | None) -> list[Candidate]:
    if driver == "GeoJSON":
        path, choice = _text_copy(path, workdir, display, encoding)
        _fix_bare_array(path)
    elif driver == "CSV":
        path, choice = _text_copy(path, workdir, display, encoding)
        if path.suffix.lower() != ".csv":  # GDAL's CSV driver goes by the suffix
            named = workdir / "text" / f"csv{len(display)}" / "data.csv"
            named.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, named)
            path = named
    else:
        return _layers(path, driver, display)
    return [dataclasses.replace(c, encoding=choice) for c in _layers(path, driver, display)]


def candidates(path: Path, workdir: Path, limits: Limits = DEFAULT_LIMITS,
               encoding: str | None = None) -> list[Candidate]:
    """Every dataset the upload holds, after unpacking a zip into ``workdir``.

    Text files (GeoJSON, CSV) have their encoding verified against their bytes (``encoding``
    is the user's choice, verified too) and are read from a UTF-8 copy.
    """
    kind = sniff(path)
    if kind == "unknown" and _csv_like(path):
        kind = "csv"
    if kind == "zip" and _xlsx_like(path):
        target = path
        if path.suffix.lower() != ".xlsx":  # GDAL's XLSX driver goes by the suffix
            target = workdir / "xlsx" / "data.xlsx"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return _layers(target, "XLSX", path.name)
    if kind == "zip":
        unpacked = workdir / "unpacked"
        files = extract_zip(path, unpacked, limits)
        found: list[Candidate] = []
        for n, ((folder, _stem), parts) in enumerate(_parts(unpacked).items()):
            display = str((folder / parts.get("shp", next(iter(parts.values()))).name)
                          .relative_to(unpacked))
            missing = [e for e in ("shp", "shx", "dbf") if e not in parts]
            if missing == ["shp", "shx", "dbf"]:
                continue  # a lone .prj or .cpg
            if missing:
                names = " and ".join(f".{m}" for m in missing)
                error = InputError("shapefile_incomplete", f"{display}: the {names} file is missing",
                                   hint="zip every file of the shapefile (.shp .shx .dbf .prj .cpg)",
                                   dataset=display, missing=missing)
                found.append(Candidate(display, folder / display, "ESRI Shapefile", error=error))
                continue
            shp = _normalise_shapefile(parts, workdir / "datasets" / str(n))
            found.append(Candidate(display, shp, "ESRI Shapefile"))
        for f in files:
            ext = f.suffix[1:].lower()
            if ext in _OTHER and f.exists():
                display = str(f.relative_to(unpacked))
                found.extend(_text_candidates(f, workdir, _OTHER[ext], display, encoding))
        if not found:
            raise InputError("no_dataset", "the zip holds no shapefile, GeoPackage, GeoJSON or KML",
                             hint="zip the .shp with its .shx, .dbf and .prj")
        return found
    if kind == "gpkg":
        return _layers(path, "GPKG", path.name)
    if kind == "json":
        return _text_candidates(path, workdir, "GeoJSON", path.name, encoding)
    if kind == "csv":
        return _text_candidates(path, workdir, "CSV", path.name, encoding)
    if kind == "kml":
        return _layers(path, "KML", path.name)
    raise InputError("unsupported_format", "the file is not a zip, GeoPackage, GeoJSON or KML file",
                     hint="zip the shapefile's files (.shp .shx .dbf .prj .cpg) and upload the zip")


def _layers(path: Path, driver: str, display: str) -> list[Candidate]:
    options = {"CSV": _CSV_OPTIONS, "GeoJSON": _GEOJSON_OPTIONS}.get(driver, ())
    try:
        names = pyogrio.list_layers(path)[:, 0].tolist()
    except _OGR_ERRORS as exc:
        raise InputError("corrupt_file", f"{display} cannot be opened ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise _undecodable(display, exc) from exc
    if len(names) == 1:
        return [Candidate(display, path, driver, names[0], options=options)]
    return [Candidate(f"{display}:{name}", path, driver, name, options=options) for name in names]


def _undecodable(display: str, exc: UnicodeDecodeError, encoding: str = "utf-8") -> InputError:
    """Text GDAL hands over that is not in the encoding chosen: refused, never a traceback."""
    raw = exc.object if isinstance(exc.object, bytes) else b""
    sample = repr(raw[max(exc.start - 10, 0):exc.end + 10])[2:-1]
    return InputError("encoding_mismatch", f"the text of {display} is not {encoding} ({sample!r})",
                      hint=HINT, encoding=encoding, where="format", dataset=display)


def _choose(found: list[Candidate], choice: str | None) -> Candidate:
    if choice:
        for c in found:
            if choice in (c.name, c.layer) or Path(c.name).stem == choice:
                return c
        raise InputError("dataset_not_found", f"the upload holds no dataset called {choice!r}",
                         candidates=[c.name for c in found])
    if len(found) > 1:
        raise InputError("dataset_ambiguous", f"the upload holds {len(found)} datasets; say which to import",
                         hint="choose one with the dataset option", candidates=[c.name for c in found])
    return found[0]


def _check_shapefile(shp: Path) -> None:
    """Refuse truncated or mutually inconsistent .shp/.shx/.dbf before GDAL guesses."""
    dbf, shx = shp.with_suffix(".dbf"), shp.with_suffix(".shx")
    head = shp.read_bytes()[:100]
    if len(head) < 100 or struct.unpack(">i", head[:4])[0] != 9994:
        raise InputError("corrupt_shp", "the .shp file is not a shapefile (bad header)")
    declared = struct.unpack(">i", head[24:28])[0] * 2
    if shp.stat().st_size < declared:
        raise InputError("corrupt_shp", f"the .shp file is cut short: {shp.stat().st_size:,} bytes of "
                         f"{declared:,} declared", hint="copy the file again from the surveyor's computer")
    records = (shx.stat().st_size - 100) // 8
    raw = dbf.read_bytes()[:32]
    if len(raw) < 32 or raw[0] not in (0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x43, 0x63, 0x83, 0x8B, 0xF5):
        raise InputError("corrupt_dbf", "the .dbf file is not a dBase table (bad header)")
    n, header_len, record_len = struct.unpack("<IHH", raw[4:12])
    if header_len + n * record_len > dbf.stat().st_size:
        raise InputError("corrupt_dbf", f"the .dbf file is cut short: it declares {n:,} records that "
                         "it does not hold", hint="copy the file again from the surveyor's computer")
    if n != records and not (n == 0 and header_len <= 34):
        raise InputError("count_mismatch", f"the .shp holds {records:,} shapes but the .dbf {n:,} records",
                         hint="the shapefile was edited by a tool that left its parts out of step")


def _trim_field_names(dbf: Path, encoding: str) -> None:
    """Cut field names that a 10-byte DBF limit split inside a character (UTF-8 Chinese).

    GDAL writes ``地块编号`` in UTF-8 as 9 bytes plus the first byte of ``号``; readers then
    fail to decode the name. The upload's own copy is patched: the stray bytes become NUL.
    """
    with open(dbf, "r+b") as fh:
        head = fh.read(32)
        header_len = struct.unpack("<H", head[8:10])[0]
        descriptors = fh.read(max(header_len - 32, 0))
        for pos in range(0, len(descriptors) - 31, 32):
            if descriptors[pos] == 0x0D:
                break
            name = descriptors[pos:pos + 11].split(b"\0")[0]
            cut = name
            while cut:
                try:
                    cut.decode(encoding)
                    break
                except UnicodeDecodeError:
                    cut = cut[:-1]
            if cut != name:
                fh.seek(32 + pos)
                fh.write(cut.ljust(11, b"\0"))


def open_upload(path: Path, workdir: Path, *, dataset: str | None = None, encoding: str | None = None,
                limits: Limits = DEFAULT_LIMITS) -> Upload:
    """Unpack, choose and open an upload; ``InputError`` for anything that cannot be read."""
    found = candidates(path, workdir, limits, encoding)
    chosen = _choose(found, dataset)
    if chosen.error is not None:
        raise chosen.error
    enc: EncodingChoice | None = chosen.encoding
    gdal_encoding: str | None = None  # text formats are read from their UTF-8 copy
    if chosen.driver == "ESRI Shapefile":
        _check_shapefile(chosen.path)
        cpg = chosen.path.with_suffix(".cpg")
        try:
            enc = detect_dbf_encoding(chosen.path.with_suffix(".dbf"), cpg if cpg.exists() else None,
                                      encoding)
        except InputError as exc:
            exc.extra.setdefault("dataset", chosen.name)
            raise
        _trim_field_names(chosen.path.with_suffix(".dbf"), enc.encoding)
        gdal_encoding = enc.encoding
    elif enc is None and encoding and normalise(encoding) != "utf-8":
        # GeoPackage and KML hold UTF-8 by definition; GDAL hands it over as such
        raise InputError("encoding_mismatch", f"a {chosen.driver} file holds UTF-8 text by definition, "
                         f"not {normalise(encoding)}", hint="leave the encoding option empty for this file",
                         encoding=normalise(encoding), where="option", suggested="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = pyogrio.read_info(chosen.path, layer=chosen.layer, encoding=gdal_encoding,
                                     force_total_bounds=True, **dict(chosen.options))
    except _OGR_ERRORS as exc:
        raise InputError("corrupt_file", f"{chosen.name} cannot be read ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise _undecodable(chosen.name, exc, gdal_encoding or "utf-8") from exc
    if info["features"] == 0:
        raise InputError("empty_file", f"{chosen.name} holds no features")
    bounds = info.get("total_bounds")
    if not info["geometry_type"] or bounds is None:  # a table without geometry (XLSX, CSV)
        bounds = (math.nan,) * 4
    if enc is None:
        enc = EncodingChoice("utf-8", "format")
    count = int(info["features"])
    totals = _totals_row(chosen, count, gdal_encoding) if chosen.driver in ("CSV", "XLSX") else None
    return Upload(chosen, found, enc, info["crs"] if info["crs"] else _prj(chosen),
                  info["geometry_type"] or "None", list(info["fields"]), list(info["dtypes"]),
                  count - (totals is not None), tuple(float(v) for v in bounds), totals_row=totals)


#: The totals row landeco's CSV and XLSX exports end with (gis.sheets), in either language.
_TOTALS = re.compile(r"^(合计（\d+ 个）|Total \(\d+ features?\))$")


def _totals_row(c: Candidate, count: int, encoding: str | None) -> str | None:
    """The label of a spreadsheet's last row when it is an export's totals row (no geometry)."""
    if count < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, _, wkb, values = ogr_read(c.path, layer=c.layer, encoding=encoding, skip_features=count - 1,
                                         max_features=1, **dict(c.options))
    except (*_OGR_ERRORS, UnicodeDecodeError):
        return None
    if len(values) == 0 or len(values[0]) != 1 or (wkb is not None and wkb[0] is not None):
        return None
    first = values[0][0]
    return first if isinstance(first, str) and _TOTALS.match(first.strip()) else None


def _prj(c: Candidate) -> str | None:
    prj = c.path.with_suffix(".prj")
    if c.driver == "ESRI Shapefile" and prj.exists():
        return prj.read_text("latin-1").strip() or None
    return None


def batches(upload: Upload, size: int = 20_000, first: int = 2_000) -> Iterator[Batch]:
    """The upload's features, ``size`` at a time, 2D, geometries parsed by shapely.

    A geometry GEOS cannot parse (a MultiPatch/TIN) becomes ``None`` with ``unreadable``
    set, so that it is reported per feature rather than failing the file. The ``first``
    batch is small so that the database has work while the rest is read.
    """
    c = upload.candidate
    gdal_encoding = upload.encoding.encoding if upload.encoding and c.driver == "ESRI Shapefile" else None
    start = 0
    while start < upload.count:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                meta, _fids, wkb, values = ogr_read(
                    c.path, layer=c.layer, encoding=gdal_encoding,
                    skip_features=start,
                    max_features=min(min(size, first) if start == 0 else size, upload.count - start),
                    force_2d=True, **dict(c.options))
        except _OGR_ERRORS as exc:
            raise InputError("corrupt_file",
                             f"{c.name} cannot be read after feature {start} ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise _undecodable(c.name, exc, gdal_encoding or "utf-8") from exc
        if wkb is None:  # a table without geometry: one None per row
            wkb = np.full(len(values[0]) if len(values) else 0, None, dtype=object)
        if len(wkb) == 0:
            raise InputError("count_mismatch", f"{c.name} declares {upload.count:,} features but only "
                             f"{start:,} can be read", hint="the shapefile's .shp and .dbf are out of step")
        geoms, unreadable = _parse(wkb)
        names = _unique(list(meta["fields"]))
        yield Batch(start, geoms, dict(zip(names, values, strict=True)), unreadable)
        start += len(wkb)


def _parse(wkb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if wkb.dtype == object and all(w is None for w in wkb[:1]) and not any(w is not None for w in wkb):
        return np.full(len(wkb), None, dtype=object), np.zeros(len(wkb), dtype=bool)
    try:
        return shapely.from_wkb(wkb), np.zeros(len(wkb), dtype=bool)
    except shapely.errors.GEOSException:
        out = np.empty(len(wkb), dtype=object)
        bad = np.zeros(len(wkb), dtype=bool)
        for i, item in enumerate(wkb):
            try:
                out[i] = shapely.from_wkb(item)
            except shapely.errors.GEOSException:
                bad[i] = True
        return out, bad


def _unique(names: list[str]) -> list[str]:
    """Column names made unique (a DBF may hold two ``TestColumn``): the second gets ``_2``."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def column_names(upload: Upload) -> list[str]:
    """The upload's column names as :func:`batches` keys them."""
    return _unique(upload.columns)

