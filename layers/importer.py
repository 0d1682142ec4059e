"""Importing a surveyor's file into a layer: validate everything, then write all or nothing.

One pass reads the file in batches (:func:`gis.readers.batches`), checks and repairs
geometries, reprojects them to EPSG:4326, coerces attributes to the layer's fields and
checks codes and villages; the good features are COPYed while the next batch is read.
Inserts and replacements COPY straight into the layer (locked against other writers);
checks (dry runs, the web's first step) and upserts COPY into a temporary staging table.
The database then checks what needs the whole upload: row rules and overlaps where the
layer forbids them. Everything happens in the caller's transaction, which the caller
commits only when no feature has an error, so a crash at any point leaves the layer as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import coerce
from gis.archive import Limits
from gis.crs import CrsChoice, check_coordinates, resolve_crs, to_lonlat
from gis.errors import InputError
from gis.geometry import check_geometries
from gis.readers import Upload, batches, column_names, open_upload
from layers.messages import localise_report, message, quote
from layers.model import TOWNSHIP_CODE, Field, Layer
from layers.overviews import defer_cells, refresh_cells
from layers.registry import get_layer
from layers.store.citus import same_township
from layers.store.load import copy_columns, copy_records, encode_features
from layers.store.schema import AUDIT_MAX_FEATURE_IDS
from layers.upload_errors import UploadRefusedError

__all__ = ["AT_STAKE_LISTED", "BANNER_BOX", "MODES", "ImportOptions", "Problem", "Report",
           "import_in_transaction", "map_columns", "report_extras", "run_import"]

MODES = ("insert", "upsert", "replace")
#: 鄂托克前旗 in lon/lat: the region features must fall in while no villages are loaded.
BANNER_BOX = (106.45, 37.6, 108.6, 38.9)
#: How far (degrees, about 5 km) a feature may lie outside the villages' extent.
MARGIN_DEG = 0.05
#: Problems listed in a report; all are counted.
MAX_LISTED = 1000
#: Feature ids of a write kept for its audit entry (the counts are always complete).
WRITTEN_IDS_LISTED = AUDIT_MAX_FEATURE_IDS
PREVIEW_FEATURES = 500
#: Overlaps smaller than this (m²) are reprojection slivers, not overlaps.
OVERLAP_TOLERANCE_M2 = 1.0
#: Overlaps narrower on average than this (m; twice the area over the perimeter) are slivers
#: of coordinate rounding (GeoJSON keeps 7 decimals of a degree, about 1 cm), not surveying.
OVERLAP_WIDTH_TOLERANCE_M = 0.05
#: An upserted geometry no vertex of which is farther than this (degrees, about 2 cm) from the
#: stored one is the same geometry, rounded by a file format: the stored one is kept.
GEOMETRY_SAME_DEG = 2e-7
#: Pairs of the file's features whose interiors meet, found while reading, beyond which the
#: database looks for the file's overlaps itself (a file of stacked copies: the pairs grow as n²).
OVERLAP_CANDIDATES_MAX = 20_000
#: Features of a batch looked up in the trees at a time (bounds the pairs one look-up returns).
_OVERLAP_CHUNK = 1_000
#: Files of more features have their overlaps found by the database alone (the boxes and WKB
#: kept of every feature, about 0.25 KB a parcel, would crowd the rest out).
OVERLAPS_IN_PYTHON_MAX = 2_000_000
#: Features kept parsed, in search trees, for the look-up (about 0.8 KB a parcel); the oldest
#: batches beyond keep only their boxes and WKB and are parsed again where a later chunk meets them.
OVERLAP_KEEP_PARSED = 200_000
#: Features parsed again beyond which the database finds the file's overlaps: a file in no
#: spatial order meets every earlier batch everywhere, and parsing again grows as n².
OVERLAP_REPARSE_MAX = 5_000_000


def overlap_sql(a: str = "a", b: str = "b") -> str:
    """The SQL condition that ``a`` and ``b`` overlap by more than the rounding tolerances.

    An overlap counts when its area is above :data:`OVERLAP_TOLERANCE_M2` and its mean width
    (2·area/perimeter, geodesic) above :data:`OVERLAP_WIDTH_TOLERANCE_M`: a 2 m² sliver
    along a 4 km boundary is 5 mm wide, a real overlap is metres wide. CASE fixes the order:
    the planner may otherwise compute the costly intersection for every pair of boxes.
    """
    inter = f"ST_CollectionExtract(ST_Intersection({a}.geom, {b}.geom), 3)::geography"
    return (f"CASE WHEN ST_Relate({a}.geom, {b}.geom, '2********') THEN ST_Area({inter}) > "
            f"{OVERLAP_TOLERANCE_M2} AND 2 * ST_Area({inter}) > {OVERLAP_WIDTH_TOLERANCE_M} * "
            f"ST_Perimeter({inter}) END")


@dataclass
class ImportOptions:
    """What the user chose: the layer, the identity mode, and overrides of what is detected."""

    layer: str
    mode: str = "insert"
    crs: str | None = None
    encoding: str | None = None
    dataset: str | None = None
    #: column of the file → field of the layer (or ``extra``), where the automatic match is wrong
    columns: dict[str, str] | None = None
    #: write the good features and leave the refused ones out (they stay in the report)
    skip_refused: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UploadRefusedError(InputError("invalid_option", f"mode must be one of {', '.join(MODES)}",
                                                option="mode"))
        for name in ("crs", "encoding", "dataset", "columns"):
            if not getattr(self, name):
                setattr(self, name, None)
        if self.columns is not None:
            layer = get_layer(self.layer)
            names = {f.name for f in layer.all_fields} | {"extra"}
            if not isinstance(self.columns, dict) or not set(self.columns.values()) <= names:
                raise UploadRefusedError(InputError(
                    "invalid_option", "columns must map column names to fields of the layer or 'extra'",
                    option="columns", fields=sorted(names)))


@dataclass
class Problem:
    """One thing wrong with one feature (``index`` is 0-based) or with the file (``index`` None)."""

    index: int | None
    code: str
    message: str
    field: str | None = None
    severity: str = "error"
    #: the message's parts (values quoted from the file are made safe by :func:`quote`)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


def problem(index: int | None, code: str, fld: str | None = None, /, *, severity: str = "error",
            **params: Any) -> Problem:
    """A problem whose message comes from the catalogue (English here; see :meth:`Report.as_dict`)."""
    return Problem(index, code, message(code, "en", **params), fld, severity, params)


@dataclass
class ColumnMap:
    """How one column of the file is used: the field it fills, or ``extra``."""

    column: str
    field: str | None
    how: str  # name, alias, truncated, extra, duplicate


@dataclass
class Report:
    """What an import found and did; :meth:`as_dict` is what the API and CLI show."""

    layer: str
    mode: str
    file: str
    dataset: str | None = None
    datasets: list[str] = field(default_factory=list)
    format: str | None = None
    encoding: dict[str, str] | None = None
    crs: dict[str, object] | None = None
    geometry_type: str | None = None
    mapping: list[ColumnMap] = field(default_factory=list)
    features: int = 0
    refused: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: Counter = field(default_factory=Counter)
    preview: list[dict] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    committed: bool = False
    #: ids of the features written, the first :data:`WRITTEN_IDS_LISTED` (for the audit trail)
    written_ids: list[int] = field(default_factory=list, repr=False)
    #: the good features are written and the refused ones left out (``ImportOptions.skip_refused``)
    skip_refused: bool = False
    #: errors of the whole file (no feature index): even ``skip_refused`` cannot commit past them
    file_errors: int = 0
    #: what a replace or upsert will delete or overwrite in the layer (:func:`at_stake`)
    at_stake: dict[str, Any] | None = None
    #: feature index → its code, for the features with problems (the error list names them)
    feature_codes: dict[int, str] = field(default_factory=dict, repr=False)
    #: index of each feature of :attr:`preview`, and refused features drawn on the preview map
    preview_indexes: list[int] = field(default_factory=list, repr=False)
    preview_refused: list[dict] = field(default_factory=list, repr=False)

    @property
    def errors(self) -> int:
        """Problems that block the commit."""
        return sum(n for (code, sev), n in self.problem_counts.items() if sev == "error")

    @property
    def ok(self) -> bool:
        """Whether the upload can be committed."""
        if self.skip_refused:
            return self.file_errors == 0 and self.features - self.refused > 0
        return self.errors == 0 and self.features > 0

    def add(self, problem: Problem) -> None:
        """Count a problem; keep the first :data:`MAX_LISTED` for the report."""
        self.problem_counts[(problem.code, problem.severity)] += 1
        if problem.severity == "error" and (problem.index is None or problem.index < 0):
            self.file_errors += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)

    def as_dict(self, preview: bool = True, lang: str | None = None) -> dict[str, Any]:
        """The report as JSON-ready data; its words in ``lang`` (zh, en) when given.

        Without ``lang`` the messages are English; :func:`layers.messages.localise_report`
        renders a report in either language from each line's code and parameters.
        """
        out = {
            "layer": self.layer, "mode": self.mode, "file": self.file, "dataset": self.dataset,
            "datasets": self.datasets, "format": self.format, "encoding": self.encoding, "crs": self.crs,
            "geometry_type": self.geometry_type,
            "mapping": [dataclasses.asdict(m) for m in self.mapping],
            "counts": {"features": self.features, "importable": self.features - self.refused,
                       "refused": self.refused, "errors": self.errors,
                       "warnings": sum(n for (_c, s), n in self.problem_counts.items() if s == "warning")},
            "problem_codes": {f"{c}": n for (c, _s), n in sorted(self.problem_counts.items())},
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "problems_listed": len(self.problems),
            "can_commit": self.ok and not self.committed,
            "committed": self.committed,
            "written": self.written,
        }
        if preview:
            out["preview"] = {"type": "FeatureCollection", "features": self.preview}
        return localise_report(out, lang) if lang else out


def map_columns(layer: Layer, columns: list[str], chosen: dict[str, str] | None = None) -> list[ColumnMap]:
    """Which field each column fills: as ``chosen``, else by name, alias or truncated alias.

    Columns that match nothing go to ``extra``; a second column for a field already filled
    stays in ``extra`` (``duplicate``). What landeco computes and exports (``id``, stored
    sizes such as ``area_mu``) is ``computed``: left out, so a downloaded file goes back.
    """
    lookup = layer.file_columns()
    labels = {_bare(label): f for f in layer.all_fields for label in (f.label("zh"), f.label("en"))}
    chosen = chosen or {}
    taken: set[str] = {f for f in chosen.values() if f != "extra"}
    computed = {"id", layer.inside_name, *(m.name for m in layer.stored_measures)}
    computed_labels = {_bare(label) for m in layer.stored_measures for label in (m.zh, m.en)} | {
        "范围内面积", "范围内长度", "area inside", "length inside"}
    # a spreadsheet export shows each village's name beside its code: the code is imported
    code_headers = {_bare("嘎查村代码"), _bare("Village code")}
    if {_bare(c) for c in columns} & code_headers and "village_code" in {f.name for f in layer.all_fields}:
        computed_labels |= {_bare("嘎查村"), _bare("Village")}
        labels.update(dict.fromkeys(code_headers, layer.get_field("village_code")))
    out = []
    for col in columns:
        if col in chosen:
            target = chosen[col]
            out.append(ColumnMap(col, None if target == "extra" else target, "chosen"))
            continue
        if _bare(col) in computed_labels and col.strip().upper() not in {"VILLAGE_CODE", "XZQDM"}:
            out.append(ColumnMap(col, None, "computed"))
            continue
        if col.strip().lower() in computed and col.strip().upper() not in lookup:
            out.append(ColumnMap(col, None, "computed"))  # landeco's own: exported, never imported
            continue
        f = lookup.get(col.strip().upper())
        how = None
        if f is None and col.strip().upper() not in lookup:
            # the column titles of an XLSX export: a field's label, its unit in brackets
            f, how = labels.get(_bare(col)), "label"
            if f is None and _bare(col) in computed_labels:
                out.append(ColumnMap(col, None, "computed"))
                continue
        if f is None:
            out.append(ColumnMap(col, None, "extra"))
        elif f.name in taken:
            out.append(ColumnMap(col, None, "duplicate"))
        else:
            taken.add(f.name)
            key = col.strip().upper()
            how = how or ("name" if key == f.name.upper() else (
                "alias" if key in {a.upper() for a in f.aliases} else "truncated"))
            out.append(ColumnMap(col, f.name, how))
    return out


def _bare(title: str) -> str:
    """A column title without a unit in brackets, case-folded: ``人口 (人)`` → ``人口``."""
    return re.sub(r"\s*[(（][^()（）]*[)）]\s*$", "", title.strip()).casefold()


def _choices(f: Field) -> dict[str, str]:
    out = {}
    for c in f.choices:
        for word in (c.value, c.zh, c.en):
            out[word.casefold()] = c.value
    return out


def _json_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _region(conn: Connection, layer: Layer) -> tuple[float, float, float, float]:
    """Where features are expected: the loaded villages' extent, else the banner."""
    if not layer.is_frame:  # frames define the region; the others must lie in it
        box = conn.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                   "FROM (SELECT ST_Extent(geom) AS e FROM villages) s")).one()
        if box[0] is not None:
            return tuple(float(v) for v in box)  # type: ignore[return-value]
    return BANNER_BOX


def _staging(conn: Connection, layer: Layer) -> Layer:
    """A temporary table shaped like the layer's, dropped at the end of the transaction."""
    name = f"upload_{layer.id}"
    cols = ", ".join(copy_columns(layer))
    conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    conn.execute(sa.text(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {cols} FROM {layer.table} "
                         "WITH NO DATA"))
    return dataclasses.replace(layer, id=name)


@dataclass
class _Seen:
    """A batch kept for the overlap look-up of later ones: boxes and WKB, and while room is left its tree."""

    extent: np.ndarray  # the batch's box: xmin, ymin, xmax, ymax
    bounds: np.ndarray  # each feature's box, (n, 4)
    codes: list[str]
    tree: shapely.STRtree | None
    geoms: np.ndarray | None
    wkb: np.ndarray | None = None  # once the tree is given up


def _meets(bounds: np.ndarray, box: np.ndarray) -> np.ndarray | np.bool_:
    """Whether boxes (``(..., 4)``) meet ``box``: a pair of geometries can intersect only then."""
    return ((bounds[..., 0] <= box[2]) & (box[0] <= bounds[..., 2])
            & (bounds[..., 1] <= box[3]) & (box[1] <= bounds[..., 3]))


class _Overlaps:
    """Pairs of the file's features whose interiors meet, found batch by batch in Python.

    The database's overlap check of the new rows among themselves (a self-join on the
    spatial index over the whole upload) is the costliest check of an import; here each
    chunk of a batch is looked up in the batches before it and its own (shapely ``STRtree``,
    ``intersects``, then DE-9IM ``2********``, the same GEOS test as ``ST_Relate`` in
    :func:`overlap_sql`) while the database is busy copying the batch before. Only batches
    whose box meets the chunk's are searched, so a file in the usual spatial order meets a
    few neighbours. Memory is bounded: past :data:`OVERLAP_KEEP_PARSED` parsed features the
    oldest batches keep only their boxes and WKB, parsed again where a chunk's box meets them.
    The database then measures only the pairs found, with :func:`overlap_sql` unchanged: every
    overlap it counts (more than 1 m² and 5 cm wide) has interiors that meet in any GEOS.
    Past :data:`OVERLAP_CANDIDATES_MAX` pairs or :data:`OVERLAP_REPARSE_MAX` features parsed
    again (``overflow``), or for files of more than :data:`OVERLAPS_IN_PYTHON_MAX` features,
    the database checks as before.
    """

    def __init__(self) -> None:
        self.seen: list[_Seen] = []
        self.parsed = 0  # features of self.seen kept parsed
        self.reparsed = 0
        self.pairs: list[tuple[str, str]] = []  # (code of the later feature, code of the earlier)
        self.overflow = False

    def add(self, geoms: np.ndarray, codes: list[str]) -> None:
        """Look up a batch's good features (in file order) and keep it for the next ones."""
        if self.overflow or not len(geoms):
            return
        bounds = shapely.bounds(geoms)
        mine = _Seen(_extent(bounds), bounds, codes, shapely.STRtree(geoms), geoms)
        self.seen.append(mine)
        self.parsed += len(geoms)
        for start in range(0, len(geoms), _OVERLAP_CHUNK):
            part = geoms[start:start + _OVERLAP_CHUNK]
            box = _extent(bounds[start:start + _OVERLAP_CHUNK])
            part_tree = None
            for other in self.seen:
                if not _meets(other.extent, box):
                    continue
                if other.tree is not None:
                    mine_i, theirs = other.tree.query(part, predicate="intersects")
                    theirs_geoms = other.geoms[theirs]
                else:  # parsed again: only the features whose box meets the chunk's
                    near = np.flatnonzero(_meets(other.bounds, box))
                    self.reparsed += len(near)
                    if self.reparsed > OVERLAP_REPARSE_MAX:
                        return self._give_up()
                    if not len(near):
                        continue
                    part_tree = part_tree if part_tree is not None else shapely.STRtree(part)
                    near_geoms = shapely.from_wkb(other.wkb[near])
                    found, mine_i = part_tree.query(near_geoms, predicate="intersects")
                    theirs, theirs_geoms = near[found], near_geoms[found]
                mine_i = mine_i + start
                if other is mine:  # the batch itself: each pair once, the later feature first
                    earlier = theirs < mine_i
                    mine_i, theirs, theirs_geoms = mine_i[earlier], theirs[earlier], theirs_geoms[earlier]
                if not len(mine_i):
                    continue
                meet = shapely.relate_pattern(geoms[mine_i], theirs_geoms, "2********")
                self.pairs.extend((codes[i], other.codes[j]) for i, j in zip(mine_i[meet], theirs[meet],
                                                                               strict=True))
                if len(self.pairs) > OVERLAP_CANDIDATES_MAX:
                    return self._give_up()
        for old in self.seen:  # the oldest batches give up their trees past the room kept
            if self.parsed <= OVERLAP_KEEP_PARSED:
                break
            if old.tree is not None:
                self.parsed -= len(old.codes)
                old.wkb, old.tree, old.geoms = shapely.to_wkb(old.geoms), None, None

    def _give_up(self) -> None:
        self.overflow = True
        self.seen, self.pairs = [], []


def _extent(bounds: np.ndarray) -> np.ndarray:
    return np.array([np.nanmin(bounds[:, 0]), np.nanmin(bounds[:, 1]),
                     np.nanmax(bounds[:, 2]), np.nanmax(bounds[:, 3])])


class _Progress:
    def __init__(self, callback: Callable[[str, float], None] | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, fraction: float) -> None:
        if self.callback is not None:
            self.callback(stage, min(max(fraction, 0.0), 1.0))


@dataclass
class _Target:
    """Where good features go: the layer itself (``direct``) or a staging table."""

    layer: Layer
    direct: bool
    before: int = 0  # ids above this are the upload's (direct)
    codes: dict[str, int] = field(default_factory=dict)  # code → feature index
    villages: frozenset[str] | None = None
    copied: int = 0
    lookup: Connection | None = None  # a second connection for code look-ups while COPY runs
    pending: Future | None = None
    #: the layer had rows before a direct write (they are checked for overlaps in the database)
    old_rows: bool = True
    #: the file's overlap candidates (None: the layer allows overlaps, or a table without geometry)
    overlaps: _Overlaps | None = None

    def flush(self) -> None:
        """Wait for the COPY in flight (raising its error)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.copied += pending.result()


class _FallbackError(Exception):
    """A row rule of the table stopped the direct COPY: redo the import through staging."""


def import_in_transaction(engine: sa.Engine, path: Path, workdir: Path, options: ImportOptions, *,
                          write: bool, prepare: Callable[[Connection], None] | None = None,
                          before_commit: Callable[[Connection, Report], None] | None = None,
                          statement_timeout_ms: int | None = None, **kwargs: Any) -> Report:
    """:func:`run_import` in a transaction of its own; ``workdir`` is removed afterwards.

    Committed only when ``write`` and the file had no errors, rolled back otherwise (also on
    any exception), so the web and the command line write all or nothing alike.
    ``prepare(conn)`` runs first in the transaction (an upload's commit takes its lock there)
    and ``before_commit(conn, report)`` last, so what it writes is committed with the features.
    ``statement_timeout_ms`` replaces the engine's limit for this transaction (0: none), since
    checking a million parcels takes longer than a web request may.
    """
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                if statement_timeout_ms is not None:
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
                if prepare is not None:
                    prepare(conn)
                if write:  # the overview cells are refreshed once, not at every batch
                    defer_cells(conn)
                report = run_import(conn, path, workdir, options, write=write, **kwargs)
                if write and report.committed:
                    refresh_cells(conn, get_layer(options.layer))
                    if before_commit is not None:
                        before_commit(conn, report)
                    trans.commit()
                else:
                    trans.rollback()
            except BaseException:
                trans.rollback()
                raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def run_import(conn: Connection, path: Path, workdir: Path, options: ImportOptions, *, write: bool,
               limits: Limits | None = None, region: tuple[float, float, float, float] | None = None,
               progress: Callable[[str, float], None] | None = None, batch_size: int = 20_000,
               file_name: str | None = None) -> Report:
    """Validate ``path`` for ``options.layer`` and, when ``write`` and it has no errors, write it.

    Runs inside ``conn``'s transaction and neither commits nor rolls back: the caller does,
    after looking at ``report.committed``. Raises :class:`UploadRefusedError` when the
    whole file is refused. Inserts and replacements COPY straight into the layer (its
    table locked against other writers) and check what they wrote, since the transaction
    is rolled back anyway when anything is wrong; a check or a dry run goes through a
    staging table.
    """
    direct = write and options.mode in ("insert", "replace") and not options.skip_refused
    if direct:
        savepoint = conn.begin_nested()
        try:
            return _run(conn, path, workdir, options, True, limits, region, progress, batch_size, file_name)
        except _FallbackError:
            savepoint.rollback()
            shutil.rmtree(workdir, ignore_errors=True)
    return _run(conn, path, workdir, options, write, limits, region, progress, batch_size, file_name,
                direct=False)


def _run(conn: Connection, path: Path, workdir: Path, options: ImportOptions, write: bool,
         limits: Limits | None, region: tuple[float, float, float, float] | None,
         progress: Callable[[str, float], None] | None, batch_size: int, file_name: str | None,
         direct: bool = True) -> Report:
    layer = get_layer(options.layer)
    report = Report(layer=layer.id, mode=options.mode, file=file_name or path.name,
                    skip_refused=options.skip_refused)
    step = _Progress(progress)
    try:
        upload = open_upload(path, workdir, dataset=options.dataset, encoding=options.encoding,
                             limits=limits or Limits())
        _describe(report, upload)
        box = region or _region(conn, layer)
        if upload.has_geometry:
            crs = _crs(upload, options)
            report.crs = crs.as_dict()
            check_coordinates(upload.bounds, crs, box)
            _check_extent(upload, crs, box)
        else:  # a table (an XLSX export): it can change the attributes of features in the layer
            if options.mode != "upsert":
                raise InputError("geometry_absent", "the file has no geometries: it can only change the "
                                 "attributes of features already in the layer (mode upsert)",
                                 mode=options.mode)
            crs = resolve_crs(None, "4326")
    except InputError as exc:
        raise UploadRefusedError(exc) from exc
    report.mapping = map_columns(layer, column_names(upload), options.columns)
    if upload.has_zm:
        report.add(problem(None, "zm_dropped", severity="warning"))
    enc = upload.encoding
    if enc is not None and enc.declared and enc.declared != enc.encoding:
        report.add(problem(None, "encoding_cpg_contradicted", severity="warning", declared=enc.declared,
                           encoding=enc.encoding))
    if enc is not None and enc.cut_values:
        report.add(problem(None, "text_cut", severity="warning", count=enc.cut_values))
    if direct:
        conn.execute(sa.text(f"LOCK TABLE {layer.table} IN SHARE ROW EXCLUSIVE MODE"))
        if options.mode == "replace":
            report.written["deleted"] = conn.execute(sa.text(f"DELETE FROM {layer.table}")).rowcount
        before = conn.scalar(sa.text(f"SELECT coalesce(max(id), 0) FROM {layer.table}"))
        target = _Target(layer, True, before)
        target.old_rows = options.mode != "replace" and bool(
            conn.scalar(sa.text(f"SELECT EXISTS (SELECT 1 FROM {layer.table})")))
    else:
        target = _Target(_staging(conn, layer), False)
    if not layer.overlaps_allowed and upload.has_geometry and upload.count <= OVERLAPS_IN_PYTHON_MAX:
        target.overlaps = _Overlaps()
    if layer.has_village:
        target.villages = frozenset(conn.scalars(sa.text("SELECT code FROM villages")))
    # COPY of one batch runs in a thread while the next is read and checked: PostgreSQL and
    # Python work at the same time, and at most two batches are in memory
    with ExitStack() as stack:
        if options.mode == "insert":
            target.lookup = stack.enter_context(conn.engine.connect())
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        try:
            try:
                for batch in batches(upload, batch_size):
                    _batch(conn, report, layer, target, batch, crs, box, options.mode, pool)
                    step("reading", (batch.start + len(batch.geoms)) / upload.count)
            finally:
                if target.pending is not None:
                    wait([target.pending])
            target.flush()
        except InputError as exc:
            raise UploadRefusedError(exc) from exc
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            if direct:
                raise _FallbackError from exc
            raise
    step("checking", 0.0)
    if not direct:
        conn.execute(sa.text(f"CREATE INDEX ON {target.layer.table} USING gist (geom)"))
    # statistics of the rows just written: without them the planner guesses from before a
    # TRUNCATE or a replace; a direct write into an empty layer whose overlaps were found while
    # reading runs no query that needs them
    if not direct or target.old_rows or target.overlaps is None or target.overlaps.overflow:
        conn.execute(sa.text(f"ANALYZE {target.layer.table}"))
    if not (direct and report.errors):  # a direct write stopped copying at the first error
        _database_checks(conn, report, layer, target, options.mode)
    if not target.direct:
        _after_checks(conn, report, layer, target, options)
    step("checking", 1.0)
    if write and report.ok:
        step("writing", 0.0)
        if direct:
            report.written["inserted"] = target.copied
            report.written.setdefault("updated", 0)
            report.written.setdefault("deleted", 0)
        else:
            report.written = _write(conn, layer, target.layer, options.mode)
        report.written_ids = _written_ids(conn, layer, target)
        report.committed = True
        step("writing", 1.0)
    return report


def _describe(report: Report, upload: Upload) -> None:
    report.dataset = upload.candidate.name
    report.datasets = [c.name for c in upload.candidates]
    report.format = upload.candidate.driver
    report.geometry_type = upload.geometry_type
    report.features = upload.count
    if upload.totals_row is not None:
        report.add(problem(None, "totals_row_left_out", severity="warning", label=quote(upload.totals_row)))
    if upload.encoding is not None:
        report.encoding = {"encoding": upload.encoding.encoding, "source": upload.encoding.source}


def _crs(upload: Upload, options: ImportOptions) -> CrsChoice:
    if upload.candidate.driver in ("GeoJSON", "KML") and not options.crs:
        # RFC 7946 and KML are lon/lat on WGS 84 by definition
        return resolve_crs(None, "4326") if not upload.crs_wkt else resolve_crs(upload.crs_wkt)
    minx, miny, maxx, maxy = upload.bounds
    if upload.candidate.driver == "CSV" and not options.crs and not upload.crs_wkt \
            and -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90:
        # a CSV names no CRS; degrees are lon/lat (what landeco's CSV export writes by default)
        return dataclasses.replace(resolve_crs(None, "4326"), source="coordinates")
    return resolve_crs(upload.crs_wkt, options.crs)


def _check_extent(upload: Upload, crs: CrsChoice, box: tuple[float, float, float, float]) -> None:
    """Refuse a file none of whose features can be in the township (wrong CRS, wrong place)."""
    minx, miny, maxx, maxy = upload.bounds
    corners = shapely.box(minx, miny, maxx, maxy)
    try:
        lonlat = to_lonlat(np.array([shapely.segmentize(corners, max(maxx - minx, maxy - miny, 1e-9) / 8)]),
                           crs.crs)[0]
    except Exception:  # a box PROJ cannot transform is simply far away
        lonlat = None
    west, south, east, north = box
    region = shapely.box(west - MARGIN_DEG, south - MARGIN_DEG, east + MARGIN_DEG, north + MARGIN_DEG)
    if lonlat is None or not np.all(np.isfinite(shapely.bounds(lonlat))) or not lonlat.intersects(region):
        where = "" if lonlat is None else " ({:.3f}, {:.3f} – {:.3f}, {:.3f})".format(*shapely.bounds(lonlat))
        raise InputError("outside_township", f"in {crs.name} the file's features lie far from the "
                         f"township{where}", hint="check that the coordinate system is the surveyor's; "
                         "name it if the .prj is wrong", bounds=list(upload.bounds))


def _batch(conn: Connection, report: Report, layer: Layer, target: _Target, batch: Any, crs: CrsChoice,
           box: tuple[float, float, float, float], mode: str, pool: ThreadPoolExecutor) -> None:
    n = len(batch.geoms)
    bad = np.zeros(n, dtype=bool)
    if report.crs is None:  # a table without geometries: attributes of existing features only
        geoms = np.full(n, None, dtype=object)
        _attributes(conn, report, layer, target, batch, geoms, bad, mode, pool, existing_only=True)
        return
    geoms, gproblems = check_geometries(batch.geoms, layer.geometry_type, batch.unreadable)
    for p in gproblems:
        text = message(p.code, "en", default=p.message, **p.params)
        report.add(Problem(batch.start + p.index, p.code, text, "geometry", p.severity, dict(p.params)))
        if p.severity == "error":
            bad[p.index] = True
    geoms = to_lonlat(geoms, crs.crs)
    bounds = shapely.bounds(geoms)
    west, south, east, north = box
    outside = ~bad & ((bounds[:, 2] < west - MARGIN_DEG) | (bounds[:, 0] > east + MARGIN_DEG)
                      | (bounds[:, 3] < south - MARGIN_DEG) | (bounds[:, 1] > north + MARGIN_DEG))
    for i in np.flatnonzero(outside):
        report.add(problem(batch.start + int(i), "outside_township", "geometry", lon=float(bounds[i, 0]),
                           lat=float(bounds[i, 1])))
    bad |= outside
    _attributes(conn, report, layer, target, batch, geoms, bad, mode, pool)


def _percent(value: object) -> object:
    """``"68.7%"`` as 0.687; anything else as it is.

    >>> _percent("68.7%"), _percent(" 5 % "), _percent("abc%"), _percent(0.5)
    (0.687, 0.05, 'abc%', 0.5)
    """
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return round(float(value.strip()[:-1].strip()) / 100, 12)
        except ValueError:
            return value
    return value


def _attributes(conn: Connection, report: Report, layer: Layer, target: _Target, batch: Any,
                geoms: np.ndarray, bad: np.ndarray, mode: str, pool: ThreadPoolExecutor,
                existing_only: bool = False) -> None:
    """Coerce and check the batch's values, check identities, and COPY the good features."""
    n = len(geoms)
    mapped = {m.column: m.field for m in report.mapping}
    computed = {m.column for m in report.mapping if m.how == "computed"}
    data: dict[str, list[object]] = {}
    failed: set[tuple[int, str]] = set()
    for column, values in batch.columns.items():
        field_name = mapped.get(column)
        if column in computed:
            continue
        if field_name is None:
            data[column] = [v if type(v) is str else _json_value(v) for v in values.tolist()] \
                if values.dtype.kind != "M" else [_json_value(v) for v in values]
            continue
        f = layer.get_field(field_name)
        if f.unit == "%" and values.dtype == object:  # a spreadsheet export writes 68.7% for 0.687
            values = np.array([_percent(v) for v in values], dtype=object)
        out, errors = coerce.coerce_array(values, f.type)
        for i in errors:
            report.add(problem(batch.start + i, "value_invalid", f.name, value=quote(values[i]), type=f.type))
            bad[i] = True
            failed.add((i, f.name))
        if f.choices:
            choices = _choices(f)
            for i, value in enumerate(out):
                if value is not None:
                    coded = choices.get(str(value).casefold())
                    if coded is None:
                        report.add(problem(batch.start + i, "value_not_allowed", f.name, value=quote(value),
                                           choices=", ".join(f"{c.value} ({c.zh})" for c in f.choices)))
                        bad[i] = True
                        failed.add((i, f.name))
                    out[i] = coded
        if f.minimum is not None or f.maximum is not None:
            low = f.minimum if f.minimum is not None else -math.inf
            high = f.maximum if f.maximum is not None else math.inf
            for i, value in enumerate(out):
                if value is not None and not low <= value <= high:
                    report.add(problem(batch.start + i, "value_out_of_range", f.name, value=value,
                                       minimum=f.minimum if f.minimum is not None else "…",
                                       maximum=f.maximum if f.maximum is not None else "…"))
                    bad[i] = True
                    failed.add((i, f.name))
                    out[i] = None
        data[f.name] = out
    for f in layer.all_fields:
        if f.required:
            values = data.get(f.name)
            for i in range(n) if values is None else (i for i, v in enumerate(values) if v is None):
                if (i, f.name) not in failed:
                    report.add(problem(batch.start + i, "value_missing", f.name, field_label=f.label("en"),
                                       no_column=values is None))
                    bad[i] = True
    keys = list(data)
    columns = zip(*data.values(), strict=True)
    rows: list[dict[str, Any]] = [dict(zip(keys, vals, strict=True)) for vals in columns] if keys \
        else [{} for _ in range(n)]
    _identity(conn, report, layer, target, rows, bad, batch.start, mode)
    if existing_only:
        target.flush()  # the connection is free for the look-up once the COPY in flight is done
        wanted = [r.get("code") for i, r in enumerate(rows) if not bad[i] and r.get("code") is not None]
        known = set(conn.scalars(sa.text(f"SELECT code FROM {layer.table} WHERE code = ANY(:codes)"),
                                 {"codes": wanted}))
        for i, row in enumerate(rows):
            if not bad[i] and row.get("code") is not None and row["code"] not in known:
                report.add(problem(batch.start + i, "code_not_in_layer", "code", code=quote(row["code"])))
                bad[i] = True
    report.refused += int(bad.sum())
    keep = np.flatnonzero(~bad)
    shown = len(report.preview)
    # the batch is encoded and looked up for overlaps while the database copies the one before
    copying = len(keep) and not (target.direct and report.errors)  # a direct write with errors is void
    if copying:
        kept = [rows[i] for i in keep]
        records = encode_features(target.layer, kept, geoms[keep])
        if target.overlaps is not None:
            target.overlaps.add(geoms[keep], [r["code"] for r in kept])
    target.flush()
    if copying:
        target.pending = pool.submit(copy_records, conn, target.layer, records)
        room = PREVIEW_FEATURES - len(report.preview)
        if room > 0:
            for i in keep[:room]:
                props = {k: _json_value(v) for k, v in rows[i].items()}
                report.preview.append({"type": "Feature", "properties": props,
                                       "geometry": None if geoms[i] is None else json.loads(
                                           shapely.to_geojson(shapely.set_precision(geoms[i], 1e-7)))})
    _note_features(report, batch.start, bad, keep[:len(report.preview) - shown], rows, geoms)


def _identity(conn: Connection, report: Report, layer: Layer, target: _Target, rows: list[dict[str, Any]],
              bad: np.ndarray, start: int, mode: str) -> None:
    """Codes unique in the file (and new to the layer when inserting); villages that exist."""
    fresh = []
    for i, row in enumerate(rows):
        code = row.get("code")
        if code is None or bad[i]:
            continue
        first = target.codes.setdefault(code, start + i)
        if first != start + i:
            report.add(problem(start + i, "code_duplicate", "code", code=quote(code), first=first))
            bad[i] = True
            continue
        fresh.append(code)
        village = row.get("village_code")
        if village is not None and target.villages is not None and village not in target.villages:
            report.add(problem(start + i, "village_unknown", "village_code", village=quote(village)))
            bad[i] = True
    if mode == "insert" and fresh:
        existing = set((target.lookup or conn).scalars(
            sa.text(f"SELECT code FROM {layer.table} WHERE code = ANY(:codes)"), {"codes": fresh}))
        for code in existing:
            report.add(problem(target.codes[code], "code_exists", "code", code=quote(code)))
            bad[target.codes[code] - start] = True


def overlap_pairs_sql(table: str, before: int, township: str = "") -> str:
    """Overlaps of the rows written after id ``before`` among themselves (once) and with older rows.

    ``township``: :func:`layers.store.citus.same_township` (Citus joins a distributed table with
    itself only within a township). ``b.id + 0`` keeps the planner from AND-ing an id range scan
    (one per row: quadratic) onto the spatial index once the table has statistics: 76 s instead
    of 9 s for 100 000 parcels.
    """
    area = "ST_Area(ST_Intersection(a.geom, b.geom)::geography)"
    overlap = overlap_sql()
    return (f"SELECT a.code, b.code, {area}, b.id > {before} FROM {table} a JOIN {table} b "
            f"ON a.geom && b.geom AND a.id <> b.id{township} WHERE a.id > {before} AND (b.id + 0 <= {before} "
            f"OR a.id > b.id + 0) AND {overlap} LIMIT {MAX_LISTED}")


def overlap_existing_sql(table: str, before: int, township: str = "") -> str:
    """Overlaps of the rows written after id ``before`` with the older rows (as :func:`overlap_pairs_sql`)."""
    area = "ST_Area(ST_Intersection(a.geom, b.geom)::geography)"
    return (f"SELECT a.code, b.code, {area}, false FROM {table} a JOIN {table} b ON a.geom && b.geom"
            f"{township} WHERE a.id > {before} AND b.id + 0 <= {before} AND {overlap_sql()} "
            f"LIMIT {MAX_LISTED}")


def overlap_candidates_sql(table: str, township: str = "") -> str:
    """The overlaps among pairs of codes (``:a`` the later or greater, ``:b``), measured as ever."""
    area = "ST_Area(ST_Intersection(a.geom, b.geom)::geography)"
    return (f"SELECT a.code, b.code, {area}, true FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])) "
            f"AS p(a, b) JOIN {table} a ON a.code = p.a JOIN {table} b ON b.code = p.b{township} "
            f"WHERE {overlap_sql()} LIMIT {MAX_LISTED}")


def _database_checks(conn: Connection, report: Report, layer: Layer, target: _Target, mode: str) -> None:
    """Row rules and overlaps, which need the whole upload in the database."""
    s, t = target.layer.table, layer.table
    codes = target.codes
    refused: set[int] = set()

    def add(rows: Any, code: str, params: Callable[[Any], dict[str, Any]], fld: str | None) -> None:
        for r in rows:
            index = codes.get(r[0], -1)
            report.add(problem(index, code, fld, **params(r)))
            refused.add(index)

    if not target.direct:
        for name, expr in layer.checks:
            add(conn.execute(sa.text(f"SELECT code FROM {s} WHERE NOT ({expr}) LIMIT {MAX_LISTED}")),
                "rule_broken", lambda r, name=name: {"rule": name}, None)
    if mode == "upsert" and layer.by_township and not target.direct:
        # a feature keeps its township: the key is (code, township) and Citus moves no row between
        # shards, so a new village of another township would make a second feature of the code
        add(conn.execute(sa.text(
            f"SELECT s.code, t.village_code, s.village_code FROM {s} s JOIN {t} t ON t.code = s.code "
            f"WHERE t.township_code <> s.township_code LIMIT {MAX_LISTED}")),
            "township_changed", lambda r: {"village": quote(str(r[1] or "")), "new": quote(str(r[2] or ""))},
            "village_code")
    flow = layer.workflow
    if flow is not None and not target.direct:
        # the workflow's field changes only by its steps: a new feature (or any, when the upload
        # replaces the layer) starts at the start, the others keep theirs (the trigger would refuse)
        f = flow.field
        kept = f"coalesce((SELECT t.{f} FROM {t} t WHERE t.code = s.code), :start)" \
            if mode != "replace" else ":start"
        add(conn.execute(sa.text(f"SELECT s.code, s.{f}, {kept} FROM {s} s "
                                 f"WHERE s.{f} IS DISTINCT FROM {kept} LIMIT {MAX_LISTED}"),
                         {"start": flow.start}),
            "workflow_step_needed", lambda r: _workflow_params(layer, f, r[1], r[2]), f)
    if not layer.overlaps_allowed:
        overlap = overlap_sql()
        area = "ST_Area(ST_Intersection(a.geom, b.geom)::geography)"
        found = target.overlaps
        township = same_township(conn, t) if target.direct else ""
        if found is None or found.overflow:  # the database finds the file's overlaps itself
            if target.direct:
                rows = conn.execute(sa.text(overlap_pairs_sql(t, int(target.before), township))).all()
            else:
                rows = conn.execute(sa.text(
                    f"SELECT a.code, b.code, {area}, true FROM {s} a JOIN {s} b ON a.geom && b.geom "
                    f"AND a.code > b.code WHERE {overlap} LIMIT {MAX_LISTED}")).all()
        else:  # the pairs found while reading: the later (direct) or greater (staged) code first
            pairs = found.pairs if target.direct else [(max(p), min(p)) for p in found.pairs]
            rows = conn.execute(sa.text(overlap_candidates_sql(s, township)), {
                "a": [p[0] for p in pairs], "b": [p[1] for p in pairs]}).all() if pairs else []
            if target.direct and target.old_rows:
                rows += conn.execute(sa.text(overlap_existing_sql(t, int(target.before), township))).all()
                rows = rows[:MAX_LISTED]
        if not target.direct and mode != "replace":
            # features of the layer that the upload replaces (same code) are not its neighbours (an
            # anti-join, not a correlated NOT EXISTS: Citus cannot push that onto the shards)
            join, replaced = (f" LEFT JOIN {s} c ON c.code = b.code", " AND c.code IS NULL") \
                if mode == "upsert" else ("", "")
            rows += conn.execute(sa.text(
                f"SELECT a.code, b.code, {area}, false FROM {s} a JOIN {t} b ON a.geom && b.geom "
                f"AND a.code <> b.code{join} WHERE {overlap}{replaced} LIMIT {MAX_LISTED}")).all()
        add([r for r in rows if r[3]], "overlap",
            lambda r: {"other": codes.get(r[1]), "other_code": quote(r[1]), "area_m2": float(r[2])},
            "geometry")
        add([r for r in rows if not r[3]], "overlap_existing",
            lambda r: {"other_code": quote(r[1]), "area_m2": float(r[2])}, "geometry")
    report.refused += len(refused)


def _workflow_params(layer: Layer, name: str, value: object, expected: object) -> dict[str, str]:
    """A workflow field's value and the one expected, as codes and labels (zh, en)."""
    labels = {c.value: c for c in layer.get_field(name).choices}
    out: dict[str, str] = {}
    for key, code in (("value", value), ("expected", expected)):
        choice = labels.get(str(code))
        out[key] = quote(choice.en if choice else str(code))
        out[f"{key}_zh"] = quote(choice.zh if choice else str(code))
    return out


def _written_ids(conn: Connection, layer: Layer, target: _Target) -> list[int]:
    """Ids written, at most :data:`WRITTEN_IDS_LISTED`, for the audit trail.

    Above the old maximum (direct), or those of the staged codes: any of them, sorted here,
    since ordering a million-row join in the database first takes 3 s rather than 0.3 s.
    """
    if target.direct:
        sql = f"SELECT id FROM {layer.table} WHERE id > :before ORDER BY id LIMIT :n"
    else:
        sql = f"SELECT t.id FROM {target.layer.table} s JOIN {layer.table} t USING (code) LIMIT :n"
    return sorted(conn.scalars(sa.text(sql), {"before": int(target.before), "n": WRITTEN_IDS_LISTED}))


def _write(conn: Connection, layer: Layer, staging: Layer, mode: str) -> dict[str, int]:
    names = [f.name for f in layer.all_fields]
    # the township goes with the row (Citus routes by it); staged with it, as the COPY writes it
    town = [TOWNSHIP_CODE] if layer.by_township else []
    cols = ", ".join([*names, "extra", "geom", *town])
    select = f"SELECT {', '.join([*names, 'extra', 'geom', *town])} FROM {staging.table}"
    written = {"inserted": 0, "updated": 0, "deleted": 0}
    if mode == "replace":
        written["deleted"] = conn.execute(sa.text(f"DELETE FROM {layer.table}")).rowcount
    if mode == "upsert":
        # only features that differ are updated: a downloaded file sent back unchanged changes
        # nothing; a geometry within GEOMETRY_SAME_DEG of the stored one (coordinate rounding)
        # keeps the stored one; keys of ``extra`` the file does not carry are kept; a file without
        # geometries (XLSX) proposes the stored ones (a NULL would break NOT NULL before ON CONFLICT)
        # (a join, not a correlated subquery: Citus cannot push that onto the shards)
        select = (f"SELECT {', '.join(f's.{n}' for n in names)}, s.extra, coalesce(s.geom, l.geom)"
                  f"{''.join(f', s.{c}' for c in town)} FROM {staging.table} s LEFT JOIN {layer.table} l "
                  f"ON l.code = s.code{' AND l.township_code = s.township_code' if town else ''}")
        same = (f"(ST_NPoints(t.geom) = ST_NPoints(EXCLUDED.geom) AND "
                f"ST_HausdorffDistance(t.geom, EXCLUDED.geom) <= {GEOMETRY_SAME_DEG})")
        keep = f"EXCLUDED.geom IS NULL OR {same}"
        sets = ", ".join([*(f"{c} = EXCLUDED.{c}" for c in names[1:]), "extra = t.extra || EXCLUDED.extra",
                          f"geom = CASE WHEN {keep} THEN t.geom ELSE EXCLUDED.geom END"])
        differs = (f"({', '.join(f't.{c}' for c in names[1:])}, t.extra) IS DISTINCT FROM "
                   f"({', '.join(f'EXCLUDED.{c}' for c in names[1:])}, t.extra || EXCLUDED.extra) "
                   f"OR (EXCLUDED.geom IS NOT NULL AND NOT {same})")
        rows = conn.execute(sa.text(
            f"INSERT INTO {layer.table} AS t ({cols}) {select} ON CONFLICT ({', '.join(['code', *town])}) "
            # updated_at is the touch trigger's (BEFORE UPDATE): Citus ships no now() in DO UPDATE
            f"DO UPDATE SET {sets} WHERE {differs} RETURNING (xmax = 0)")).scalars().all()
        written["inserted"] = sum(1 for r in rows if r)
        written["updated"] = len(rows) - written["inserted"]
    else:
        written["inserted"] = conn.execute(sa.text(f"INSERT INTO {layer.table} ({cols}) {select}")).rowcount
    return written


# -- what a replace or upsert destroys, refused features left out, the preview's problems ----------

#: Existing features a check lists by code (all are counted).
AT_STAKE_LISTED = 200
#: Problems found in the database, on features that were staged (left out one by one).
_STAGED_PROBLEMS = ("rule_broken", "overlap", "overlap_existing")


def at_stake(conn: Connection, layer: Layer, staging: str, mode: str) -> dict[str, Any] | None:
    """What writing the staged features (table ``staging``) deletes or overwrites in the layer.

    A replace deletes every feature of the layer (``gone``: those whose code the file does
    not bring back); an upsert overwrites the features whose code the file has. The first
    :data:`AT_STAKE_LISTED` are listed (the gone ones first) with their size, so staff see
    what they destroy before they confirm.
    """
    if mode not in ("replace", "upsert"):
        return None
    size = layer.size
    size_sql = size.sql if size else "NULL"
    # a join, not ``code IN (SELECT …)``: past work_mem that subplan is no longer hashed and
    # scans the staging table once per feature of the layer
    join = ("LEFT JOIN" if mode == "replace" else "JOIN") + f" {staging} s ON s.code = t.code"
    n, total, kept = conn.execute(sa.text(
        f"SELECT count(*), sum({size_sql}), count(s.code) FROM {layer.table} t {join}")).one()
    rows = conn.execute(sa.text(
        f"SELECT t.id, t.code, {size_sql}, s.code IS NOT NULL FROM {layer.table} t {join} "
        f"ORDER BY s.code IS NOT NULL, t.code LIMIT :n"), {"n": AT_STAKE_LISTED}).all()
    return {"mode": mode, "deleted": n if mode == "replace" else 0,
            "overwritten": n if mode == "upsert" else 0,
            "gone": n - kept if mode == "replace" else 0,
            "size_total": None if total is None else round(float(total), 4),
            "size_unit": size.unit if size else None, "size_field": size.name if size else None,
            "features": [{"id": r[0], "code": r[1], "size": None if r[2] is None else round(float(r[2]), 4),
                          "in_file": bool(r[3])} for r in rows]}


def _after_checks(conn: Connection, report: Report, layer: Layer, target: _Target,
                  options: ImportOptions) -> None:
    """After the database checks of a staged import: name the features with problems.

    Also leaves the refused ones out when asked, and says what the write will destroy.
    """
    wanted = {p.index for p in report.problems
              if p.index is not None and p.index >= 0 and p.index not in report.feature_codes}
    if wanted:
        for code, index in target.codes.items():
            if index in wanted:
                report.feature_codes[index] = code
    if options.skip_refused:
        listed = [p for p in report.problems if p.code in _STAGED_PROBLEMS and p.severity == "error"]
        counted = sum(n for (c, s), n in report.problem_counts.items()
                      if c in _STAGED_PROBLEMS and s == "error")
        if counted != len(listed) or counted >= MAX_LISTED:
            report.add(Problem(None, "too_many_to_skip", f"{counted:,} features break a rule or overlap: too "
                               "many to leave out one by one; correct the file"))
        else:
            codes = sorted({report.feature_codes[p.index] for p in listed if p.index in report.feature_codes})
            if codes:
                conn.execute(sa.text(f"DELETE FROM {target.layer.table} WHERE code = ANY(:codes)"),
                             {"codes": codes})
    report.at_stake = at_stake(conn, layer, target.layer.table, options.mode)


def _note_features(report: Report, start: int, bad: np.ndarray, shown: np.ndarray, rows: list[dict[str, Any]],
                   geoms: np.ndarray) -> None:
    """Remember the index of each feature previewed, and the code and shape of refused ones."""
    report.preview_indexes.extend(int(start + i) for i in shown)
    for i in np.flatnonzero(bad):
        index = start + int(i)
        code = rows[i].get("code")
        if code is not None and len(report.feature_codes) < MAX_LISTED:
            report.feature_codes[index] = str(code)
        geom = geoms[i]
        if len(report.preview_refused) >= PREVIEW_FEATURES or geom is None or shapely.is_empty(geom):
            continue
        try:
            geometry = json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-7)))
        except Exception:  # a shape too broken to draw is listed, not drawn
            continue
        report.preview_refused.append({"type": "Feature", "geometry": geometry, "properties": {
            "landeco_index": index, "code": None if code is None else str(code)}})


def report_extras(report: Report) -> dict[str, Any]:
    """What uploads show beyond :meth:`Report.as_dict`.

    The skip option, what is at stake, and the codes of the features with problems.
    """
    return {"skip_refused": report.skip_refused, "at_stake": report.at_stake,
            "feature_codes": {str(k): v for k, v in sorted(report.feature_codes.items())}}
