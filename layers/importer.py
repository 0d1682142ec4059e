"""Importing a surveyor's file into a layer: validate everything, then write all or nothing.

One pass reads the file in batches (:func:`gis.readers.batches`), checks and repairs
geometries, reprojects them to EPSG:4326, coerces attributes to the layer's fields and
COPYs the good features into a temporary staging table; the database then checks what
needs the whole upload (duplicate codes, existing codes, unknown villages, row rules,
overlaps where the layer forbids them). Only when no feature has an error are the rows
moved into the layer, in the same transaction as everything else: the caller commits it
or rolls it back, so a crash at any point leaves the layer as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import coerce
from gis.archive import Limits
from gis.crs import CrsChoice, check_coordinates, resolve_crs, to_lonlat
from gis.errors import InputError
from gis.geometry import check_geometries
from gis.readers import Upload, batches, column_names, open_upload
from layers.load import copy_features
from layers.model import Field, Layer
from layers.registry import get_layer
from layers.upload_errors import UploadRefusedError

__all__ = ["BANNER_BOX", "MODES", "ImportOptions", "Problem", "Report", "map_columns", "run_import"]

MODES = ("insert", "upsert", "replace")
#: 鄂托克前旗 in lon/lat: the region features must fall in while no villages are loaded.
BANNER_BOX = (106.45, 37.6, 108.6, 38.9)
#: How far (degrees, about 5 km) a feature may lie outside the villages' extent.
MARGIN_DEG = 0.05
#: Problems listed in a report; all are counted.
MAX_LISTED = 1000
PREVIEW_FEATURES = 500
#: Overlaps smaller than this (m²) are reprojection slivers, not overlaps.
OVERLAP_TOLERANCE_M2 = 1.0


@dataclass
class ImportOptions:
    """What the user chose: the layer, the identity mode, and overrides of what is detected."""

    layer: str
    mode: str = "insert"
    crs: str | None = None
    encoding: str | None = None
    dataset: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UploadRefusedError(InputError("invalid_option", f"mode must be one of {', '.join(MODES)}",
                                                option="mode"))
        for name in ("crs", "encoding", "dataset"):
            if not getattr(self, name):
                setattr(self, name, None)


@dataclass
class Problem:
    """One thing wrong with one feature (``index`` is 0-based) or with the file (``index`` None)."""

    index: int | None
    code: str
    message: str
    field: str | None = None
    severity: str = "error"


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

    @property
    def errors(self) -> int:
        """Problems that block the commit."""
        return sum(n for (code, sev), n in self.problem_counts.items() if sev == "error")

    @property
    def ok(self) -> bool:
        """Whether the upload can be committed."""
        return self.errors == 0 and self.features > 0

    def add(self, problem: Problem) -> None:
        """Count a problem; keep the first :data:`MAX_LISTED` for the report."""
        self.problem_counts[(problem.code, problem.severity)] += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)

    def as_dict(self, preview: bool = True) -> dict[str, Any]:
        """The report as JSON-ready data."""
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
        return out


def map_columns(layer: Layer, columns: list[str]) -> list[ColumnMap]:
    """Which field each column fills: by name, alias or truncated alias; the rest go to ``extra``.

    A second column for a field already filled stays in ``extra`` (``duplicate``).
    """
    lookup = layer.file_columns()
    taken: set[str] = set()
    out = []
    for col in columns:
        f = lookup.get(col.strip().upper())
        if f is None:
            out.append(ColumnMap(col, None, "extra"))
        elif f.name in taken:
            out.append(ColumnMap(col, None, "duplicate"))
        else:
            taken.add(f.name)
            key = col.strip().upper()
            how = "name" if key == f.name.upper() else (
                "alias" if key in {a.upper() for a in f.aliases} else "truncated")
            out.append(ColumnMap(col, f.name, how))
    return out


_COERCE: dict[str, Callable[[object], object]] = {
    "text": coerce.to_text, "integer": coerce.to_integer, "real": coerce.to_real,
    "date": coerce.to_date, "monthday": coerce.to_monthday,
}


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
    if layer.id != "villages":
        box = conn.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                   "FROM (SELECT ST_Extent(geom) AS e FROM villages) s")).one()
        if box[0] is not None:
            return tuple(float(v) for v in box)  # type: ignore[return-value]
    return BANNER_BOX


def _staging(conn: Connection, layer: Layer) -> Layer:
    """A temporary table shaped like the layer's, dropped at the end of the transaction."""
    name = f"upload_{layer.id}"
    cols = ", ".join([f.name for f in layer.all_fields] + ["extra", "geom"])
    conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    conn.execute(sa.text(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {cols} FROM {layer.table} "
                         "WITH NO DATA"))
    return dataclasses.replace(layer, id=name)


class _Progress:
    def __init__(self, callback: Callable[[str, float], None] | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, fraction: float) -> None:
        if self.callback is not None:
            self.callback(stage, min(max(fraction, 0.0), 1.0))


def run_import(conn: Connection, path: Path, workdir: Path, options: ImportOptions, *, write: bool,
               limits: Limits | None = None, region: tuple[float, float, float, float] | None = None,
               progress: Callable[[str, float], None] | None = None, batch_size: int = 20_000,
               file_name: str | None = None) -> Report:
    """Validate ``path`` for ``options.layer`` and, when ``write`` and it has no errors, write it.

    Runs inside ``conn``'s transaction and neither commits nor rolls back: the caller does,
    after looking at ``report.ok``. Raises :class:`UploadRefusedError` when the whole file
    is refused.
    """
    layer = get_layer(options.layer)
    report = Report(layer=layer.id, mode=options.mode, file=file_name or path.name)
    step = _Progress(progress)
    try:
        upload = open_upload(path, workdir, dataset=options.dataset, encoding=options.encoding,
                             limits=limits or Limits())
        _describe(report, upload)
        crs = _crs(upload, options)
        report.crs = crs.as_dict()
        box = region or _region(conn, layer)
        check_coordinates(upload.bounds, crs, box)
        _check_extent(upload, crs, box)
    except InputError as exc:
        raise UploadRefusedError(exc) from exc
    report.mapping = map_columns(layer, column_names(upload))
    if upload.has_zm:
        report.add(Problem(None, "zm_dropped", "the file has Z (height) or M (measure) values; they "
                           "were dropped, as layers are 2D", severity="warning"))
    staging = _staging(conn, layer)
    try:
        for batch in batches(upload, batch_size):
            _batch(conn, report, layer, staging, batch, crs, box)
            step("reading", (batch.start + len(batch.geoms)) / upload.count)
    except InputError as exc:
        raise UploadRefusedError(exc) from exc
    step("checking", 0.0)
    conn.execute(sa.text(f"CREATE INDEX ON {staging.table} USING gist (geom)"))
    conn.execute(sa.text(f"ANALYZE {staging.table}"))
    _database_checks(conn, report, layer, staging, options.mode)
    step("checking", 1.0)
    if write and report.ok:
        step("writing", 0.0)
        report.written = _write(conn, layer, staging, options.mode)
        report.committed = True
        step("writing", 1.0)
    return report


def _describe(report: Report, upload: Upload) -> None:
    report.dataset = upload.candidate.name
    report.datasets = [c.name for c in upload.candidates]
    report.format = upload.candidate.driver
    report.geometry_type = upload.geometry_type
    report.features = upload.count
    if upload.encoding is not None:
        report.encoding = {"encoding": upload.encoding.encoding, "source": upload.encoding.source}


def _crs(upload: Upload, options: ImportOptions) -> CrsChoice:
    if upload.candidate.driver in ("GeoJSON", "KML") and not options.crs:
        # RFC 7946 and KML are lon/lat on WGS 84 by definition
        return resolve_crs(None, "4326") if not upload.crs_wkt else resolve_crs(upload.crs_wkt)
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


def _batch(conn: Connection, report: Report, layer: Layer, staging: Layer, batch: Any, crs: CrsChoice,
           box: tuple[float, float, float, float]) -> None:
    n = len(batch.geoms)
    bad = np.zeros(n, dtype=bool)
    geoms, gproblems = check_geometries(batch.geoms, layer.geometry_type, batch.unreadable)
    for p in gproblems:
        report.add(Problem(batch.start + p.index, p.code, p.message, "geometry", p.severity))
        if p.severity == "error":
            bad[p.index] = True
    geoms = to_lonlat(geoms, crs.crs)
    bounds = shapely.bounds(geoms)
    west, south, east, north = box
    outside = ~bad & ((bounds[:, 2] < west - MARGIN_DEG) | (bounds[:, 0] > east + MARGIN_DEG)
                      | (bounds[:, 3] < south - MARGIN_DEG) | (bounds[:, 1] > north + MARGIN_DEG))
    for i in np.flatnonzero(outside):
        report.add(Problem(batch.start + int(i), "outside_township", "the feature lies outside the township "
                           f"(near {bounds[i, 0]:.4f}, {bounds[i, 1]:.4f})", "geometry"))
    bad |= outside
    rows: list[dict[str, Any]] = [{"_feature": batch.start + i} for i in range(n)]
    mapped = {m.column: m.field for m in report.mapping}
    filled: set[str] = set()
    failed: set[tuple[int, str]] = set()
    for column, values in batch.columns.items():
        target = mapped.get(column)
        if target is None:
            for i, v in enumerate(values):
                rows[i][column] = _json_value(v)
            continue
        f = layer.get_field(target)
        filled.add(f.name)
        convert = _COERCE[f.type]
        choices = _choices(f) if f.choices else None
        for i, v in enumerate(values):
            try:
                value = convert(v)
            except ValueError as exc:
                report.add(Problem(batch.start + i, "value_invalid", str(exc), f.name))
                bad[i] = True
                failed.add((i, f.name))
                continue
            if value is not None and choices is not None:
                coded = choices.get(str(value).casefold())
                if coded is None:
                    report.add(Problem(batch.start + i, "value_not_allowed", f"{value!r} is not one of "
                                       + ", ".join(f"{c.value} ({c.zh})" for c in f.choices), f.name))
                    bad[i] = True
                    failed.add((i, f.name))
                    continue
                value = coded
            if isinstance(value, int | float) and (
                    (f.minimum is not None and value < f.minimum)
                    or (f.maximum is not None and value > f.maximum)):
                report.add(Problem(batch.start + i, "value_out_of_range", f"{value} is outside "
                                   f"{f.minimum if f.minimum is not None else '…'}–"
                                   f"{f.maximum if f.maximum is not None else '…'}", f.name))
                bad[i] = True
                failed.add((i, f.name))
                continue
            rows[i][f.name] = value
    for f in layer.all_fields:
        if f.required:
            for i in range(n):
                if rows[i].get(f.name) is None and (i, f.name) not in failed:
                    why = "" if f.name in filled else "; no column of the file maps to it"
                    report.add(Problem(batch.start + i, "value_missing",
                                       f"{f.label('en')} ({f.zh}) is required{why}", f.name))
                    bad[i] = True
    report.refused += int(bad.sum())
    keep = np.flatnonzero(~bad)
    if len(keep):
        copy_features(conn, staging, [rows[i] for i in keep], geoms[keep])
        room = PREVIEW_FEATURES - len(report.preview)
        if room > 0:
            for i in keep[:room]:
                props = {k: _json_value(v) for k, v in rows[i].items()}
                report.preview.append({"type": "Feature", "properties": props,
                                       "geometry": json.loads(shapely.to_geojson(
                                           shapely.set_precision(geoms[i], 1e-7)))})


def _feature(alias: str) -> str:
    return f"({alias}.extra->>'_feature')::int"


def _database_checks(conn: Connection, report: Report, layer: Layer, staging: Layer, mode: str) -> None:
    s, t = staging.table, layer.table
    refused: set[int] = set()

    def add(rows: Any, code: str, message: Callable[[Any], str], fld: str | None) -> None:
        for r in rows:
            report.add(Problem(int(r[0]), code, message(r), fld))
            refused.add(int(r[0]))

    add(conn.execute(sa.text(
        f"SELECT {_feature('a')}, a.code, {_feature('b')} FROM {s} a JOIN {s} b ON a.code = b.code "
        f"AND {_feature('a')} > {_feature('b')} ORDER BY 1 LIMIT {MAX_LISTED}")),
        "code_duplicate", lambda r: f"code {r[1]!r} is also used by feature {r[2]} of the file", "code")
    if mode == "insert":
        add(conn.execute(sa.text(f"SELECT {_feature('s')}, s.code FROM {s} s JOIN {t} USING (code) "
                                 f"ORDER BY 1 LIMIT {MAX_LISTED}")),
            "code_exists", lambda r: f"code {r[1]!r} is already in the layer (use mode upsert to replace it)",
            "code")
    if layer.has_village:
        add(conn.execute(sa.text(f"SELECT {_feature('s')}, s.village_code FROM {s} s WHERE s.village_code "
                                 "IS NOT NULL AND NOT EXISTS (SELECT 1 FROM villages v WHERE v.code = "
                                 f"s.village_code) ORDER BY 1 LIMIT {MAX_LISTED}")),
            "village_unknown", lambda r: f"no village has code {r[1]!r}", "village_code")
    for name, expr in layer.checks:
        add(conn.execute(sa.text(f"SELECT {_feature('s')} FROM {s} s WHERE NOT ({expr}) ORDER BY 1 "
                                 f"LIMIT {MAX_LISTED}")),
            "rule_broken", lambda r, name=name: f"the values break the rule {name!r}", None)
    if not layer.overlaps_allowed:
        overlap = ("ST_Relate(a.geom, b.geom, '2********') AND "
                   f"ST_Area(ST_Intersection(a.geom, b.geom)::geography) > {OVERLAP_TOLERANCE_M2}")
        add(conn.execute(sa.text(
            f"SELECT {_feature('a')}, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography) FROM {s} a "
            f"JOIN {s} b ON a.geom && b.geom AND {_feature('a')} > {_feature('b')} WHERE {overlap} "
            f"ORDER BY 1 LIMIT {MAX_LISTED}")),
            "overlap", lambda r: f"overlaps feature {r[1]!r} of the file by {r[2]:,.0f} m²", "geometry")
        if mode != "replace":
            add(conn.execute(sa.text(
                f"SELECT {_feature('a')}, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography) "
                f"FROM {s} a JOIN {t} b ON a.geom && b.geom AND a.code <> b.code WHERE {overlap} "
                f"ORDER BY 1 LIMIT {MAX_LISTED}")),
                "overlap_existing", lambda r: f"overlaps {r[1]!r}, already in the layer, by {r[2]:,.0f} m²",
                "geometry")
    report.refused += len(refused)


def _write(conn: Connection, layer: Layer, staging: Layer, mode: str) -> dict[str, int]:
    names = [f.name for f in layer.all_fields]
    cols = ", ".join([*names, "extra", "geom"])
    select = (f"SELECT {', '.join(names)}, extra - '_feature', geom FROM {staging.table} "
              "ORDER BY (extra->>'_feature')::int")
    written = {"inserted": 0, "updated": 0, "deleted": 0}
    if mode == "replace":
        written["deleted"] = conn.execute(sa.text(f"DELETE FROM {layer.table}")).rowcount
    if mode == "upsert":
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in [*names[1:], "extra", "geom"])
        rows = conn.execute(sa.text(
            f"INSERT INTO {layer.table} ({cols}) {select} ON CONFLICT (code) DO UPDATE SET {sets}, "
            "updated_at = now() RETURNING (xmax = 0)")).scalars().all()
        written["inserted"] = sum(1 for r in rows if r)
        written["updated"] = len(rows) - written["inserted"]
    else:
        written["inserted"] = conn.execute(sa.text(f"INSERT INTO {layer.table} ({cols}) {select}")).rowcount
    return written
