"""The tables of the registry's layers, with the rules the database itself enforces.

The database refuses what is wrong, whoever writes: geometry valid, 2D, SRID 4326 and
of the layer's type (the column's type modifier); coded values in their domain;
numbers in their range; codes unique. Sizes (area of polygons, length of lines) are
generated columns the database computes on the ellipsoid, as the layer's measures
declare, so no client can store a wrong one.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, TSTZRANGE

from layers.model import AREA_M2_SQL, LENGTH_M_SQL, M2_PER_MU, TOWNSHIP_CODE, TOWNSHIP_SQL, Field, Layer
from layers.registry import LAYERS

__all__ = ["AREA_M2_SQL", "AUDIT_MAX_FEATURE_IDS", "LENGTH_M_SQL", "M2_PER_MU", "UPLOAD_STATES",
           "audit_table", "build_table", "metadata", "table_for", "uploads_table"]

_TYPES: dict[str, sa.types.TypeEngine] = {
    "text": sa.Text(),
    "integer": sa.Integer(),
    "real": sa.Double(),
    "date": sa.Date(),
    "monthday": sa.String(5),
}
_MONTHDAY = "^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _field_checks(f: Field) -> list[sa.CheckConstraint]:
    """The CHECK constraints a field's declaration implies."""
    checks = []
    if f.choices:
        values = ", ".join(f"'{v}'" for v in f.values)
        checks.append(sa.CheckConstraint(f"{f.name} IN ({values})", name=f"{f.name}_domain"))
    if f.minimum is not None:
        checks.append(sa.CheckConstraint(f"{f.name} >= {f.minimum}", name=f"{f.name}_min"))
    if f.maximum is not None:
        checks.append(sa.CheckConstraint(f"{f.name} <= {f.maximum}", name=f"{f.name}_max"))
    if f.type == "monthday":
        checks.append(sa.CheckConstraint(f"{f.name} ~ '{_MONTHDAY}'", name=f"{f.name}_monthday"))
    if f.type == "text" and f.required and not f.choices:
        checks.append(sa.CheckConstraint(f"btrim({f.name}) <> ''", name=f"{f.name}_not_blank"))
    return checks


def _columns(layer: Layer) -> list[sa.Column]:
    """Every column of a layer's table, in the order staff read them."""
    # a sequence, not an identity: Citus refuses identity columns on a table with a foreign key
    # to a reference table (citusdata/citus#7036); the key includes the township (docs/scale.md)
    seq = sa.Sequence(f"{layer.table}_id_seq")
    cols = [sa.Column("id", sa.BigInteger, seq, server_default=seq.next_value(), nullable=False,
                      primary_key=not layer.by_township)]
    for f in layer.all_fields:
        col_type = _TYPES[f.type]
        if f.name == "village_code":
            cols.append(sa.Column(f.name, sa.Text,
                                  sa.ForeignKey("villages.code", onupdate="CASCADE"),
                                  index=True))
        elif f.name == "code":
            cols.append(sa.Column(f.name, sa.Text, nullable=False, unique=not layer.by_township))
        else:
            cols.append(sa.Column(f.name, col_type, nullable=not f.required))
    cols += [
        sa.Column("extra", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("geom", Geometry(layer.geometry_type, srid=4326, dimension=2,
                                   spatial_index=True), nullable=False),
    ]
    cols += [sa.Column(m.name, sa.Double, sa.Computed(m.generated, persisted=True), index=m.indexed)
             for m in layer.stored_measures]
    if layer.by_township:  # a plain column the writers fill: Citus cannot distribute by a generated one
        cols.append(sa.Column(TOWNSHIP_CODE, sa.Text, nullable=False))
    return cols


def _keys(layer: Layer) -> list[sa.Constraint]:
    """Keys with the township (Citus distributes by it): id and code lead, for look-ups by them."""
    if not layer.by_township:
        return []
    return [sa.PrimaryKeyConstraint("id", TOWNSHIP_CODE),
            sa.UniqueConstraint("code", TOWNSHIP_CODE),
            sa.CheckConstraint(f"{TOWNSHIP_CODE} = {TOWNSHIP_SQL}", name="township_of_village")]


def build_table(layer: Layer, meta: sa.MetaData | None = None) -> sa.Table:
    """The table of ``layer`` in ``meta`` (default: the registry's metadata).

    A layer declared outside the registry (a test's) gets a table in a metadata of its own
    that also knows the villages, for its foreign key.
    """
    if meta is None:
        meta = metadata
    elif "villages" not in meta.tables and layer.has_village:
        _table(LAYERS["villages"], meta)
    return _table(layer, meta)


def _table(layer: Layer, meta: sa.MetaData = metadata) -> sa.Table:
    checks = [c for f in layer.all_fields for c in _field_checks(f)]
    checks += [
        sa.CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name="geom_not_empty"),
    ]
    checks += [sa.CheckConstraint(sql, name=name) for name, sql in layer.checks]
    return sa.Table(layer.table, meta, *_columns(layer), *checks, *_keys(layer))


_TABLES = {layer_id: _table(layer) for layer_id, layer in LAYERS.items()}


def table_for(layer: Layer | str) -> sa.Table:
    """The SQLAlchemy table of a layer (by declaration or id).

    A layer registered later (a test's) gets its table built from its declaration on first use.
    """
    layer_id = layer if isinstance(layer, str) else layer.id
    if layer_id not in _TABLES:
        declared = LAYERS[layer_id] if isinstance(layer, str) else layer
        meta = sa.MetaData(naming_convention=metadata.naming_convention)
        _TABLES[layer_id] = build_table(declared, meta)
    return _TABLES[layer_id]


#: What an upload can be; ``interrupted`` is not stored: it is a ``committing`` row whose
#: committer no longer holds its lock (see :mod:`layers.uploads`).
UPLOAD_STATES = ("checking", "checked", "committing", "committed", "failed")

#: Uploads between check and commit; their files are in ``<storage>/uploads/<id>/``.
uploads_table = sa.Table(
    "uploads", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("layer", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("options", JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("stage", sa.Text),
    sa.Column("percentage", sa.Double, nullable=False, server_default=sa.text("0")),
    sa.Column("report", JSONB),
    sa.Column("error", JSONB),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    #: the commit attempt (a uuid): names its work folder and guards its state writes
    sa.Column("attempt", sa.String(32)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("committed_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("state IN ('checking', 'checked', 'committing', 'committed', 'failed')",
                       name="state_domain"),
    sa.CheckConstraint("size_bytes >= 0", name="size_bytes_min"),
    sa.Index("ix_uploads_created_at", "created_at"),
)


#: How many feature ids an audit entry lists (its counts are always complete).
AUDIT_MAX_FEATURE_IDS = 10_000

#: The audit trail (:mod:`layers.audit`): append-only, its triggers (migration 0005) refuse
#: UPDATE, DELETE and TRUNCATE.
audit_table = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.Text),  # the signed-in person's name; NULL for anonymous
    sa.Column("address", INET),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("route", sa.Text),
    sa.Column("layer", sa.Text),
    sa.Column("upload_id", sa.Text),
    sa.Column("counts", JSONB),
    sa.Column("feature_ids", ARRAY(sa.BigInteger)),
    sa.Column("detail", JSONB),
    #: the transaction that wrote the entry (with ``at``, it ties the layers' history to it)
    sa.Column("xact", sa.BigInteger, server_default=sa.text("txid_current()")),
    sa.CheckConstraint("action ~ '^[a-z_]+\\.[a-z_]+$'", name="action_format"),
    sa.CheckConstraint(f"cardinality(feature_ids) <= {AUDIT_MAX_FEATURE_IDS}", name="feature_ids_bounded"),
    sa.Index("ix_audit_at", "at"),
    sa.Index("ix_audit_actor_at", "actor", "at"),
    sa.Index("ix_audit_layer_at", "layer", "at"),
    sa.Index("ix_audit_action_at", "action", "at"),
)


# -- who may do what (layers/accounts.py) ---------------------------------------------------

#: The roles an account can hold; ``admin`` implies every other.
ROLES = ("viewer", "surveyor", "planner", "admin")
__all__ += ["ROLES", "api_tokens_table", "login_attempts_table", "sessions_table", "users_table"]

#: People (and scripts' owners): roles, an argon2 password hash (never shown), disabled.
users_table = sa.Table(
    "users", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text),
    sa.Column("roles", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    sa.Column("password_hash", sa.Text),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("roles <@ ARRAY['viewer', 'surveyor', 'planner', 'admin']::text[]",
                       name="roles_domain"),
    sa.CheckConstraint("name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'", name="name_format"),
)

#: Bearer tokens for scripts: only the sha256 of the token is kept.
api_tokens_table = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("user_name", sa.Text, sa.ForeignKey("users.name", onupdate="CASCADE", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("label", sa.Text, nullable=False, server_default=sa.text("''")),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

#: Signed-in browsers: the id is the sha256 of the cookie's secret.
sessions_table = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.Text, sa.ForeignKey("users.name", onupdate="CASCADE", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("csrf_secret", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

#: Failed sign-ins by ``user:NAME`` and ``addr:IP``: the growing delay.
login_attempts_table = sa.Table(
    "login_attempts", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
)

#: What a person follows of a job (:mod:`layers.jobs`); its queue state (to do, doing, done,
#: failed, cancelled, attempts, the worker's heartbeat) is procrastinate's ``procrastinate_jobs``.
jobs_table = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),  # the procrastinate job's id
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("progress", sa.Double, nullable=False, server_default=sa.text("0")),
    sa.Column("message", sa.Text),
    sa.Column("result", JSONB),
    sa.Column("error", JSONB),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
    sa.Index("ix_jobs_created_at", "created_at"),
)

#: How many times each layer table was written (a statement-level trigger, migration 0008):
#: what caches of the layer (tiles, map URLs) are keyed by.
layer_versions_table = sa.Table(
    "layer_versions", metadata,
    sa.Column("layer", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

#: Vector tiles built, under the versions of their layers (:mod:`layers.tile_cache`); unlogged.
tile_cache_table = sa.Table(
    "tile_cache", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("build_ms", sa.Double, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    prefixes=["UNLOGGED"],
)

#: Overview cells of the polygon layers (:mod:`layers.overviews`): what low-zoom tiles are
#: drawn from, kept exact by triggers on the layer tables (migration 0009).
layer_cells_table = sa.Table(
    "layer_cells", metadata,
    sa.Column("layer", sa.Text, primary_key=True),
    sa.Column("ix", sa.Integer, primary_key=True),
    sa.Column("iy", sa.Integer, primary_key=True),
    sa.Column("agg_from", sa.SmallInteger, primary_key=True),
    sa.Column("parcels", sa.Integer, nullable=False),
    sa.Column("area_m2", sa.Double, nullable=False),
    sa.Column("lat_sum", sa.Double, nullable=False),
    sa.Column("numbers", JSONB, nullable=False),
)
layer_cell_codes_table = sa.Table(
    "layer_cell_codes", metadata,
    sa.Column("layer", sa.Text, primary_key=True),
    sa.Column("field", sa.Text, primary_key=True),
    sa.Column("ix", sa.Integer, primary_key=True),
    sa.Column("iy", sa.Integer, primary_key=True),
    sa.Column("agg_from", sa.SmallInteger, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)


# -- history of the layers (layers/history.py) ----------------------------------------------

__all__ += ["HISTORY_OPERATIONS", "HISTORY_SUFFIX", "build_history_table", "history_table_for"]

#: ``<layer table>_history`` holds every layer table's past.
HISTORY_SUFFIX = "_history"
#: What a history row records: ``insert`` has no previous version (its columns are NULL).
HISTORY_OPERATIONS = ("insert", "update", "delete")


def build_history_table(layer: Layer, meta: sa.MetaData = metadata) -> sa.Table:
    """``<table>_history``: the layer's columns without their rules, and who changed what, when.

    One row per change of one feature, written by the database's triggers (migration 0006):
    the version the change ended (its columns and ``valid``, the time range it was current)
    for updates and deletes; inserts only say who and when. ``changed_by`` is the person
    landeco acted for (``landeco.who`` in the transaction) or NULL, ``db_user`` the database
    role, ``xact`` the transaction, which ties a change to its audit entry.
    """
    name = layer.table + HISTORY_SUFFIX
    seq = sa.Sequence(f"{name}_history_id_seq")
    cols = [
        sa.Column("history_id", sa.BigInteger, seq, server_default=seq.next_value(), nullable=False,
                  primary_key=True),
        sa.Column("feature_id", sa.BigInteger, nullable=False),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("valid", TSTZRANGE),
        sa.Column("changed_by", sa.Text),
        sa.Column("db_user", sa.Text, nullable=False, server_default=sa.text("session_user")),
        sa.Column("upload_id", sa.Text),
        sa.Column("edit_id", sa.Text),
        sa.Column("xact", sa.BigInteger, nullable=False, server_default=sa.text("txid_current()")),
    ]
    for f in layer.all_fields:
        cols.append(sa.Column(f.name, sa.Text if f.name in ("code", "village_code") else _TYPES[f.type]))
    cols += [
        sa.Column("extra", JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("geom", Geometry(layer.geometry_type, srid=4326, dimension=2, spatial_index=False)),
    ]
    cols += [sa.Column(m.name, sa.Double) for m in layer.stored_measures]
    if layer.by_township:  # also on inserts' rows: the history lives beside its feature on Citus
        cols.append(sa.Column(TOWNSHIP_CODE, sa.Text, nullable=False, primary_key=True))
    ops = ", ".join(f"'{o}'" for o in HISTORY_OPERATIONS)
    return sa.Table(
        name, meta, *cols,
        sa.CheckConstraint(f"operation IN ({ops})", name="operation_domain"),
        sa.Index(f"ix_{name}_feature_id", "feature_id", "history_id"),
        sa.Index(f"ix_{name}_changed_at", "changed_at"),
    )


_HISTORY = {layer_id: build_history_table(layer) for layer_id, layer in LAYERS.items()}


def history_table_for(layer: Layer | str) -> sa.Table:
    """The history table of a registry layer."""
    return _HISTORY[layer if isinstance(layer, str) else layer.id]


# -- rasters (layers/rasters.py) ------------------------------------------------------------
__all__ += ["RASTER_KINDS", "rasters_table"]

#: What a raster measures (zh labels in layers.rasters.KINDS).
RASTER_KINDS = ("ndvi", "fvc", "dem", "other")

#: Rasters stored as COGs at ``uri`` (a path or URI rasterio opens); their footprint in lon/lat.
rasters_table = sa.Table(
    "rasters", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("acquired", sa.Date, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("band_meaning", sa.Text),
    sa.Column("name", sa.Text),  # the uploaded file's name
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("crs", sa.Text, nullable=False),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("band_count", sa.Integer),
    sa.Column("dtype", sa.Text),
    sa.Column("nodata", sa.Double),
    sa.Column("res_x", sa.Double),
    sa.Column("res_y", sa.Double),
    sa.Column("footprint", Geometry("MULTIPOLYGON", srid=4326, dimension=2, spatial_index=True),
              nullable=False),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("sha256", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("created_by", sa.Text),
    sa.CheckConstraint("kind IN ('ndvi', 'fvc', 'dem', 'other')", name="kind_domain"),
    sa.CheckConstraint("width > 0 AND height > 0 AND band_count > 0", name="size_positive"),
    sa.Index("ix_rasters_kind_acquired", "kind", "acquired"),
)


# -- zonal statistics (layers/zonal.py) ------------------------------------------------------
__all__ += ["ZONAL_STAT_COLUMNS", "zonal_stats_table"]

#: The statistics stored per feature, zone and raster (see gis.zonal.STATS).
ZONAL_STAT_COLUMNS = ("mean", "median", "min", "max", "stdev", "area_m2", "area_mu", "share_above")

#: Zonal statistics of a layer's features over a raster, one row per feature and zone
#: ('feature', 'ring_500' …); with the raster's kind and date, every feature has a time series.
zonal_stats_table = sa.Table(
    "zonal_stats", metadata,
    sa.Column("raster_id", sa.BigInteger, sa.ForeignKey("rasters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("layer", sa.Text, nullable=False),
    sa.Column("feature_id", sa.BigInteger, nullable=False),
    sa.Column("zone", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("acquired", sa.Date, nullable=False),
    sa.Column("pixels", sa.Double, nullable=False),
    *(sa.Column(name, sa.Double) for name in ZONAL_STAT_COLUMNS),
    sa.Column("threshold", sa.Double),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("job_id", sa.BigInteger),
    sa.PrimaryKeyConstraint("raster_id", "layer", "feature_id", "zone"),
    sa.CheckConstraint("zone = 'feature' OR zone ~ '^ring_[0-9.]+$'", name="zone_name"),
    sa.Index("ix_zonal_stats_layer", "layer", "feature_id", "acquired"),
)


# -- change patches' workflow (layers/change_patches.py) --------------------------------------

__all__ += ["change_patch_steps_table"]

#: Every step of a change patch's status, written by the database's trigger (migration 0014)
#: whoever changes the status: from, to, who, when and the note. Append-only: rows go only with
#: their patch (a deleted patch's versions stay in ``change_patches_history``).
change_patch_steps_table = sa.Table(
    "change_patch_steps", metadata,
    sa.Column("id", sa.BigInteger, sa.Sequence("change_patch_steps_id_seq"),
              server_default=sa.Sequence("change_patch_steps_id_seq").next_value(), nullable=False),
    sa.Column("patch_id", sa.BigInteger, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("from_status", sa.Text),  # NULL: the patch was found
    sa.Column("to_status", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("by", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("db_user", sa.Text, nullable=False, server_default=sa.text("session_user")),
    # the patch's township: the steps live beside their patch on Citus (migration 0016)
    sa.Column(TOWNSHIP_CODE, sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("id", TOWNSHIP_CODE),
    sa.ForeignKeyConstraint(["patch_id", TOWNSHIP_CODE],
                            ["change_patches.id", "change_patches.township_code"], ondelete="CASCADE"),
    sa.Index("ix_change_patch_steps_patch_id", "patch_id", "id"),
    sa.Index("ix_change_patch_steps_at", "at"),
)


#: Livestock counted per village and year, entered by staff (:mod:`layers.livestock`): what the
#: pasture's carrying capacity is compared with (以草定畜). Not spatial: the village is its place.
LIVESTOCK_ANIMALS = ("sheep", "goats", "cattle", "horses", "camels")
livestock_table = sa.Table(
    "livestock_counts", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("village_code", sa.Text, nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    *(sa.Column(a, sa.Integer, nullable=False, server_default=sa.text("0")) for a in LIVESTOCK_ANIMALS),
    # given directly when only the total in sheep units is known
    sa.Column("sheep_units", sa.Double),
    sa.Column("note", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_by", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("year >= 1990 AND year <= 2100", name="year_range"),
    sa.CheckConstraint(" AND ".join(f"{a} >= 0" for a in LIVESTOCK_ANIMALS), name="counts_not_negative"),
    sa.CheckConstraint("sheep_units IS NULL OR sheep_units >= 0", name="sheep_units_not_negative"),
    sa.CheckConstraint("btrim(village_code) <> ''", name="village_code_not_blank"),
    sa.UniqueConstraint("village_code", "year"),
)
