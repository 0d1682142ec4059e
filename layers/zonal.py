"""Zonal statistics of a layer's features over a registered raster, stored as time series.

The ``zonal`` job streams the features of a polygon layer (optionally filtered by CQL2) that
meet the raster's footprint, in batches, through :func:`gis.zonal.zonal_batches`, and stores
one row per (raster, layer, feature, zone), replacing an earlier run's row. With the raster's
kind and acquisition date in each row, a feature's statistics over every raster are its time
series (:func:`feature_series`). :func:`caragana_cover_by_year` and :func:`bans_against_rings`
summarize the two questions the township asks of its imagery.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from gis.zonal import DEFAULT_STATS, FEATURE_ZONE, STATS, ring_zone_name
from layers.errors import BadRequestError
from layers.jobs import JobContext, job_kind
from layers.model import Layer
from layers.registry import LAYERS
from layers.store.schema import ZONAL_STAT_COLUMNS, zonal_stats_table

__all__ = ["EXAMPLES", "MAX_RING_M", "ZonalLayerError", "ZonalParameterError", "ZonalStatError",
           "bans_against_rings", "caragana_cover_by_year", "check_zonal", "feature_series", "run_examples",
           "run_zonal"]

#: Widest ring (metres) outside a feature.
MAX_RING_M = 5000.0
#: Features per batch: what one exactextract call and one INSERT hold.
BATCH = 2000
#: Longest text kept from a ``where``.
MAX_WHERE_CHARS = 10_000
assert set(ZONAL_STAT_COLUMNS) == set(STATS)


class ZonalLayerError(BadRequestError):
    """The layer is unknown or has no areas to summarize (lines)."""

    code = "unknown_zonal_layer"
    title = "No polygon layer of that name"

    def __init__(self, layer: object) -> None:
        polygons = ", ".join(k for k, v in LAYERS.items() if "POLYGON" in v.geometry_type)
        super().__init__(f"no polygon layer {str(layer)[:60]!r}; zonal statistics are computed for: "
                         f"{polygons}")

    def extra(self) -> dict[str, object]:
        """The parameter at fault."""
        return {"parameter": "layer"}


class ZonalStatError(BadRequestError):
    """A statistic landeco does not compute."""

    code = "unknown_zonal_stat"
    title = "Unknown statistic"

    def __init__(self, names: list[str]) -> None:
        asked = ", ".join(repr(n[:40]) for n in names)
        super().__init__(f"unknown statistics {asked}; known: {', '.join(STATS)}")
        self.names = names

    def extra(self) -> dict[str, object]:
        """The parameter, and what it may hold."""
        return {"parameter": "stats", "allowed": list(STATS)}


class ZonalParameterError(BadRequestError):
    """A threshold, ring width, filter or raster id that cannot be used."""

    code = "invalid_zonal_parameter"
    title = "Invalid zonal statistics parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter

    def extra(self) -> dict[str, object]:
        """The parameter at fault."""
        return {"parameter": self.parameter}


# --- the request -------------------------------------------------------------------------------

def _layer(name: object) -> Layer:
    layer = LAYERS.get(name) if isinstance(name, str) else None
    if layer is None or "POLYGON" not in layer.geometry_type:
        raise ZonalLayerError(name)
    return layer


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ZonalParameterError(name, f"{str(value)[:40]!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ZonalParameterError(name, "must be a finite number (not NaN or infinite)")
    return number


def check_zonal(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a ``zonal`` job, checked: raster_id, layer, stats, where, threshold, ring_m.

    ``stats`` defaults to every statistic but ``share_above``, which is added when a
    ``threshold`` is given; ``where`` is CQL2 (text or JSON) on the layer's queryables.
    """
    unknown = set(params) - {"raster_id", "layer", "stats", "where", "threshold", "ring_m", "lang"}
    if unknown:
        raise ZonalParameterError(sorted(unknown)[0], "zonal statistics take no such parameter")
    raster_id = params.get("raster_id")
    if isinstance(raster_id, bool) or not isinstance(raster_id, int) or not 0 < raster_id < 2**63:
        raise ZonalParameterError("raster_id", "must be a raster's id")
    layer = _layer(params.get("layer"))
    threshold = params.get("threshold")
    threshold = None if threshold is None else _finite(threshold, "threshold")
    stats = params.get("stats")
    if stats is None:
        stats = [*DEFAULT_STATS, *(["share_above"] if threshold is not None else [])]
    if not isinstance(stats, list) or not stats or not all(isinstance(s, str) for s in stats):
        raise ZonalParameterError("stats", f"a list of names among {', '.join(STATS)}")
    wrong = [s for s in stats if s not in STATS]
    if wrong:
        raise ZonalStatError(wrong)
    stats = list(dict.fromkeys(stats))
    if "share_above" in stats and threshold is None:
        raise ZonalParameterError("threshold", "share_above needs a threshold")
    ring_m = params.get("ring_m")
    if ring_m is not None:
        ring_m = _finite(ring_m, "ring_m")
        if not 1 <= ring_m <= MAX_RING_M:
            raise ZonalParameterError("ring_m", f"a ring is 1 to {MAX_RING_M:g} metres wide")
    where = params.get("where")
    if where is not None:
        if not isinstance(where, (str, dict)):
            raise ZonalParameterError("where", "a CQL2 filter, as text or JSON")
        if isinstance(where, str) and len(where) > MAX_WHERE_CHARS:
            raise ZonalParameterError("where", f"at most {MAX_WHERE_CHARS:,} characters")
        from layers.cql2 import filter_sql
        filter_sql(layer, where)  # InvalidFilterError (400) now, not in the worker
        if isinstance(where, str) and not where.strip():
            where = None
    lang = params.get("lang", "zh")
    if lang not in ("zh", "en"):
        raise ZonalParameterError("lang", "zh or en")
    return {"raster_id": raster_id, "layer": layer.id, "stats": stats, "where": where,
            "threshold": threshold, "ring_m": ring_m, "lang": lang}


# --- the work ----------------------------------------------------------------------------------

def _features_sql(layer: Layer, where: str | dict | None) -> tuple[str, str, dict[str, Any]]:
    """The features over the footprint (the batch statement and its count), nearest first.

    Ordered by the geohash of their centroids, so that features read one after the other
    lie near each other and share the raster blocks in GDAL's cache.
    """
    clauses = ["ST_Intersects(t.geom, ST_GeomFromWKB(%(footprint)s, 4326))"]
    params: dict[str, Any] = {}
    if where is not None:
        from layers.cql2 import filter_sql
        sql, params = filter_sql(layer, where)
        clauses.append(f"({sql})")
    cond = " AND ".join(clauses)
    rows = (f"SELECT t.id, ST_AsBinary(t.geom) AS wkb FROM {layer.table} t WHERE {cond} "
            "ORDER BY ST_GeoHash(ST_Centroid(t.geom), 12), t.id")
    return rows, f"SELECT count(*) FROM {layer.table} t WHERE {cond}", params


def run_zonal(engine: sa.Engine, *, raster_id: int, layer: str, stats: list[str] | None = None,
              where: str | dict | None = None, threshold: float | None = None, ring_m: float | None = None,
              job_id: int | None = None, on_progress: Callable[[int, int], None] | None = None,
              batch: int = BATCH) -> dict[str, Any]:
    """Compute and store the statistics of ``layer``'s features over raster ``raster_id``; a summary.

    Each batch is stored in its own transaction (rows of the same raster, layer, feature and
    zone replaced), so a run stopped halfway leaves whole rows. ``on_progress(done, total)``.
    """
    import geopandas as gpd
    import shapely

    from gis.zonal import zonal_batches
    from layers.rasters import get_raster

    params = check_zonal({"raster_id": raster_id, "layer": layer, "stats": stats, "where": where,
                          "threshold": threshold, "ring_m": ring_m})
    the_layer = LAYERS[params["layer"]]
    with engine.connect() as conn:
        raster = get_raster(conn, raster_id)
    rows_sql, count_sql, fparams = _features_sql(the_layer, params["where"])
    fparams["footprint"] = shapely.to_wkb(raster.footprint)
    with engine.connect() as conn:
        total = int(conn.exec_driver_sql(count_sql, fparams).scalar_one())
    stored = 0
    done = 0
    means: list[float] = []
    # the features stream through a server-side cursor; each batch is stored by a second connection
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, max_row_buffer=batch).exec_driver_sql(
            rows_sql, fparams)
        for part in result.partitions(batch):
            ids = [r[0] for r in part]
            frame = gpd.GeoDataFrame(index=ids, geometry=shapely.from_wkb([bytes(r[1]) for r in part]),
                                     crs=4326)
            for rows in zonal_batches(frame, raster.uri, stats=params["stats"], threshold=params["threshold"],
                                      ring_m=params["ring_m"], batch=batch):
                stored += _store(engine, rows, raster=raster, layer=the_layer.id, stats=params["stats"],
                                 threshold=params["threshold"], job_id=job_id)
                means += [r["mean"] for r in rows if r.get("mean") is not None and r["zone"] == FEATURE_ZONE]
            done += len(ids)
            if on_progress is not None:
                on_progress(done, total)
    zones = [FEATURE_ZONE] + ([ring_zone_name(params["ring_m"])] if params["ring_m"] else [])
    return {"raster_id": raster.id, "kind": raster.kind, "acquired": raster.acquired.isoformat(),
            "layer": the_layer.id, "features": done, "rows": stored, "zones": zones, "stats": params["stats"],
            "features_with_values": len(means),
            "mean_of_means": (sum(means) / len(means)) if means else None}


def _store(engine: sa.Engine, rows: list[dict[str, Any]], *, raster: Any, layer: str, stats: list[str],
           threshold: float | None, job_id: int | None) -> int:
    """Upsert one batch of rows; statistics not asked for this time are cleared (a run replaces)."""
    if not rows:
        return 0
    values = [{"raster_id": raster.id, "layer": layer, "feature_id": int(r["feature_id"]), "zone": r["zone"],
               "kind": raster.kind, "acquired": raster.acquired, "pixels": r["pixels"],
               **{c: r.get(c) for c in ZONAL_STAT_COLUMNS},
               "threshold": threshold if "share_above" in stats else None, "job_id": job_id}
              for r in rows]
    stmt = insert(zonal_stats_table)
    replaced = {c: stmt.excluded[c] for c in ("kind", "acquired", "pixels", *ZONAL_STAT_COLUMNS, "threshold",
                                              "job_id")}
    replaced["computed_at"] = sa.func.now()
    stmt = stmt.on_conflict_do_update(index_elements=["raster_id", "layer", "feature_id", "zone"],
                                      set_=replaced)
    with engine.begin() as conn:
        conn.execute(stmt, values)
    return len(values)


@job_kind("zonal", zh="分区统计", en="Zonal statistics", check=check_zonal)
def zonal_job(ctx: JobContext, *, raster_id: int, layer: str, stats: list[str], where: str | dict | None,
              threshold: float | None, ring_m: float | None, lang: str = "zh") -> dict[str, Any]:
    """The ``zonal`` job: :func:`run_zonal` with the job's progress (and cancellation)."""
    word = "正在统计" if lang == "zh" else "summarizing"
    ctx.progress(0.0, word, force=True)

    def progress(done: int, total: int) -> None:
        ctx.progress(done / total if total else 1.0, f"{word} {done:,}/{total:,}")

    return run_zonal(ctx.engine, raster_id=raster_id, layer=layer, stats=stats, where=where,
                     threshold=threshold, ring_m=ring_m, job_id=ctx.id, on_progress=progress)


#: The township's two questions: (layer, ring in metres or None) run over each NDVI and cover raster.
EXAMPLES = (("caragana_plots", None), ("grazing_bans", 500.0))


def run_examples(engine: sa.Engine, *, kinds: tuple[str, ...] = ("ndvi", "fvc"),
                 on_progress: Callable[[str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """:data:`EXAMPLES` over every raster of ``kinds`` (what ``landeco demo`` runs); the summaries.

    Afterwards :func:`caragana_cover_by_year` and :func:`bans_against_rings` answer, and every
    caragana plot and grazing ban has its series (and its popup chart).
    """
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM rasters WHERE kind = ANY(:k) ORDER BY kind, acquired, id"),
                           {"k": list(kinds)}).scalars().all()
    done = []
    for i, raster_id in enumerate(ids):
        for layer, ring_m in EXAMPLES:
            done.append(run_zonal(engine, raster_id=raster_id, layer=layer, ring_m=ring_m))
        if on_progress is not None:
            on_progress("zonal_stats", i + 1, len(ids))
    return done


# --- reading -----------------------------------------------------------------------------------

def _plain(row: sa.Row) -> dict[str, Any]:
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, date):
            out[key] = value.isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            out[key] = None
    return out


def feature_series(conn: sa.Connection, layer: str, feature_id: int) -> list[dict[str, Any]]:
    """Every stored statistic of one feature: one entry per raster (kind, date) and zone, oldest first."""
    names = ("raster_id", "kind", "acquired", "zone", "pixels", *ZONAL_STAT_COLUMNS, "threshold")
    cols = ", ".join(f"z.{c}" for c in names)
    rows = conn.execute(sa.text(
        f"SELECT {cols}, z.computed_at::text AS computed_at, z.job_id FROM zonal_stats z "
        "WHERE z.layer = :layer AND z.feature_id = :fid ORDER BY z.kind, z.zone, z.acquired, z.raster_id"),
        {"layer": layer, "fid": feature_id}).all()
    return [_plain(r) for r in rows]


def caragana_cover_by_year(conn: sa.Connection, *, raster_id: int | None = None,
                           kind: str | None = None) -> list[dict[str, Any]]:
    """Cover of the caragana plots by planting year, per raster (is older caragana greener?).

    One row per (raster, planted_year): the plots with a value, their mean weighted by the
    valid area (m²), the lowest and highest plot mean and the valid area in 亩. From the
    stored ``feature`` zone rows of ``caragana_plots`` (run the ``zonal`` job first). Plots
    planted after the image was taken are left out: on it they are bare ground, not caragana.
    """
    rows = conn.execute(sa.text(
        "SELECT z.raster_id, z.kind, z.acquired, p.planted_year, count(*) AS plots, "
        "sum(z.mean * z.area_m2) / nullif(sum(z.area_m2), 0) AS mean, min(z.mean) AS lowest, "
        "max(z.mean) AS highest, sum(z.area_mu) AS area_mu "
        "FROM zonal_stats z JOIN caragana_plots p ON p.id = z.feature_id "
        "WHERE z.layer = 'caragana_plots' AND z.zone = 'feature' AND z.mean IS NOT NULL "
        "AND p.planted_year <= extract(year FROM z.acquired) "
        "AND (CAST(:rid AS bigint) IS NULL OR z.raster_id = :rid) "
        "AND (CAST(:kind AS text) IS NULL OR z.kind = :kind) "
        "GROUP BY z.raster_id, z.kind, z.acquired, p.planted_year "
        "ORDER BY z.kind, z.acquired, z.raster_id, p.planted_year"), {"rid": raster_id, "kind": kind}).all()
    return [_plain(r) for r in rows]


def bans_against_rings(conn: sa.Connection, *, raster_id: int | None = None, ring: str = "ring_500",
                       kind: str | None = None) -> list[dict[str, Any]]:
    """Each grazing ban's mean inside against the ring outside it, per raster (does the ban work?).

    One row per (raster, ban) with both zones stored: ``inside``, ``outside`` (the ring's mean)
    and ``difference`` (inside − outside; positive where the banned land is greener), with the
    ban's name and regime and whether it was in force on the raster's date.
    """
    rows = conn.execute(sa.text(
        "SELECT f.raster_id, f.kind, f.acquired, b.id AS feature_id, b.name, b.regime, "
        "f.mean AS inside, r.mean AS outside, f.mean - r.mean AS difference, "
        "f.area_mu AS inside_mu, r.area_mu AS outside_mu, "
        "(b.valid_from IS NULL OR b.valid_from <= f.acquired) "
        "AND (b.valid_to IS NULL OR b.valid_to >= f.acquired) AS in_force "
        "FROM zonal_stats f JOIN zonal_stats r ON r.raster_id = f.raster_id AND r.layer = f.layer "
        "AND r.feature_id = f.feature_id AND r.zone = :ring "
        "JOIN grazing_bans b ON b.id = f.feature_id "
        "WHERE f.layer = 'grazing_bans' AND f.zone = 'feature' "
        "AND (CAST(:rid AS bigint) IS NULL OR f.raster_id = :rid) "
        "AND (CAST(:kind AS text) IS NULL OR f.kind = :kind) "
        "ORDER BY f.kind, f.acquired, f.raster_id, b.id"),
        {"rid": raster_id, "ring": ring, "kind": kind}).all()
    return [_plain(r) for r in rows]
