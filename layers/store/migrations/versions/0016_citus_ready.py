"""Ready for Citus: triggers name their layer, ids from sequences, the township on every row and key.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 09:10:00

What a trial on Citus 13.0.5 found the schema must change before the layers can be distributed
by township (docs/scale.md); on one PostgreSQL server nothing a user sees changes:

1. The history and version triggers take the layer's name from their argument (``TG_ARGV[0]``),
   not ``TG_TABLE_NAME``, which on a Citus shard is the shard's (``caragana_plots_102010``).
   ``landeco_history_follow`` and ``landeco_layer_version_trigger`` pass it, so a layer
   declared later gets it too; every table's triggers are made again.
2. ``id`` (and the history's ``history_id``, ``change_patch_steps.id``) are ``bigint DEFAULT
   nextval(…)`` from a sequence owned by the column, set past the largest id, rather than
   identity columns (Citus refuses an identity column on a table with a foreign key to a
   reference table, citusdata/citus#7036).
3. ``township_code``: a plain column (Citus cannot distribute by a generated one), checked
   ``= coalesce(left(village_code, 9), '')``, which the writers fill (Citus routes an INSERT by
   the value in the statement). A feature without a village is in township '' (allowed today).
   History rows carry it too, inserts' rows included; ``change_patch_steps`` carries its patch's.
   On one server a BEFORE trigger guarded by ``WHEN (NEW.township_code IS NULL)`` fills it for SQL
   typed by hand (landeco's writers send it; the WHEN costs them no function call).
4. Keys include it: ``PRIMARY KEY (id, township_code)``, ``UNIQUE (code, township_code)`` (id
   and code lead, so look-ups by them keep their index); the steps' foreign key follows.
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0016'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: The layer tables with a village (distributed by township); ``villages`` is the frame.
BY_TOWNSHIP = ("watersheds", "grazing_bans", "eco_projects", "subsidence_zones", "land_leases",
               "caragana_plots", "change_patches", "fence_lines")
ALL_LAYERS = ("villages", *BY_TOWNSHIP)
TOWNSHIP = "coalesce(left(village_code, 9), '')"
EVENTS = ("insert", "update", "delete", "truncate")

HISTORY_RECORD = """
CREATE OR REPLACE FUNCTION landeco_history_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- the layer's name is the trigger's argument: on a Citus shard the table's name is the shard's
    hist text := format('%I.%I', TG_TABLE_SCHEMA, TG_ARGV[0] || '_history');
    -- on a Citus shard, whose columns have no sequence defaults, the history's id is given
    idcol text := '';
    idval text := '';
    who text := nullif(current_setting('landeco.who', true), '');
    upload text := nullif(current_setting('landeco.upload_id', true), '');
    edit text := nullif(current_setting('landeco.edit_id', true), '');
    -- the writer's transaction and time (layers/history.py attribute): on Citus this trigger runs
    -- in a shard's transaction, whose own are not those of the audit entry the change is tied to
    xact bigint := coalesce(nullif(current_setting('landeco.xact', true), '')::bigint, txid_current());
    at timestamptz := coalesce(nullif(current_setting('landeco.at', true), '')::timestamptz, now());
    cols text;
    src text := 'old_rows';
BEGIN
    IF TG_RELID <> to_regclass(format('%I.%I', TG_TABLE_SCHEMA, TG_ARGV[0])) THEN
        -- a Citus shard: its history goes into the history's co-located shard, a plain table on
        -- the same node (Citus cannot plan a statement that reads a trigger's transition table)
        idcol := 'history_id, ';
        idval := format('nextval(%L), ', pg_get_serial_sequence(hist, 'history_id'));
        hist := landeco_colocated_shard(TG_RELID, hist);
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- an insert's row says who and when, and the township it lives in (where Citus puts it)
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = TG_RELID AND attname = 'township_code'
                   AND NOT attisdropped) THEN
            EXECUTE format('INSERT INTO %s (%sfeature_id, operation, changed_by, upload_id, edit_id, '
                           'xact, changed_at, township_code) SELECT %sid, ''insert'', $1, $2, $3, '
                           '$4, $5, township_code FROM new_rows', hist, idcol, idval)
                USING who, upload, edit, xact, at;
        ELSE
            EXECUTE format('INSERT INTO %s (%sfeature_id, operation, changed_by, upload_id, edit_id, '
                           'xact, changed_at) SELECT %sid, ''insert'', $1, $2, $3, $4, $5 FROM new_rows',
                           hist, idcol, idval)
                USING who, upload, edit, xact, at;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        src := TG_RELID::regclass::text;
    END IF;
    cols := landeco_history_columns(TG_RELID);
    -- the version ended now; it began when it was written (updated_at, kept by the database)
    EXECUTE format('INSERT INTO %s (%sfeature_id, operation, valid, changed_by, upload_id, edit_id, '
                   'xact, changed_at, %s) SELECT %sid, %L, tstzrange(least(updated_at, $5), $5), '
                   '$1, $2, $3, $4, $5, %s FROM %s', hist, idcol, cols, idval,
                   CASE TG_OP WHEN 'UPDATE' THEN 'update' ELSE 'delete' END, cols, src)
        USING who, upload, edit, xact, at;
    RETURN NULL;
END $$
"""

#: The shard of ``tbl`` co-located with ``shard`` (a Citus shard, named ``<table>_<shard id>``);
#: dynamic SQL, so the function exists on servers without Citus (and is never called there).
COLOCATED_SHARD = """
CREATE FUNCTION landeco_colocated_shard(shard regclass, tbl text) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    name text;
BEGIN
    EXECUTE 'SELECT shard_name(s.logicalrelid, s.shardid) FROM pg_dist_shard s '
            'WHERE s.logicalrelid = $1::regclass AND s.shardid = ANY(get_colocated_shard_array($2))'
        INTO name USING tbl, substring(shard::text FROM '_([0-9]+)"?$')::bigint;
    IF name IS NULL THEN
        RAISE EXCEPTION 'no shard of % beside %', tbl, shard;
    END IF;
    RETURN name;
END $$
"""

HISTORY_FOLLOW = """
CREATE OR REPLACE FUNCTION landeco_history_follow(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['insert', 'AFTER INSERT', 'REFERENCING NEW TABLE AS new_rows'],
        ['update', 'AFTER UPDATE', 'REFERENCING OLD TABLE AS old_rows'],
        ['delete', 'AFTER DELETE', 'REFERENCING OLD TABLE AS old_rows'],
        ['truncate', 'BEFORE TRUNCATE', '']]
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl
                       AND tgname = name || '_history_' || spec[1]) THEN
            EXECUTE format('CREATE TRIGGER %I %s ON %s %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION landeco_history_record(%L)',
                           name || '_history_' || spec[1], spec[2], tbl, spec[3], name);
        END IF;
    END LOOP;
    PERFORM landeco_township_follow(tbl);
END $$
"""

#: On one server, SQL typed by hand (psql, a test, a village's code changed in cascade) gets its
#: township filled; landeco's writers send it (Citus routes by it) and never call this: the WHEN
#: is evaluated per row without a function call. ``landeco db distribute`` drops these triggers.
TOWNSHIP_FILL = """
CREATE FUNCTION landeco_township_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.township_code := coalesce(left(NEW.village_code, 9), '');
    RETURN NEW;
END $$
"""

TOWNSHIP_FOLLOW = """
CREATE FUNCTION landeco_township_follow(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'township_code'
                   AND NOT attisdropped)
       OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = name || '_township_insert') THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %s FOR EACH ROW WHEN (NEW.township_code IS NULL) '
                   'EXECUTE FUNCTION landeco_township_fill()', name || '_township_insert', tbl);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OF village_code ON %s FOR EACH ROW '
                   'WHEN (NEW.village_code IS DISTINCT FROM OLD.village_code '
                   'AND NEW.township_code IS NOT DISTINCT FROM OLD.township_code) '
                   'EXECUTE FUNCTION landeco_township_fill()', name || '_township_update', tbl);
END $$
"""

BUMP_VERSION = """
CREATE OR REPLACE FUNCTION landeco_bump_layer_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := now();  -- a value, not now(): Citus ships no STABLE function in DO UPDATE
BEGIN
    -- the layer is the trigger's argument (a Citus shard's trigger has the shard's name); on a
    -- shard, nothing: landeco's audited writes bump it (layers/audit.py _distributed_write)
    IF TG_RELID <> to_regclass(format('%I.%I', TG_TABLE_SCHEMA, TG_ARGV[0])) THEN
        RETURN NULL;
    END IF;
    INSERT INTO layer_versions AS v (layer, version, changed_at) VALUES (TG_ARGV[0], 1, at)
    ON CONFLICT (layer) DO UPDATE SET version = v.version + 1, changed_at = at;
    RETURN NULL;
END $$
"""

VERSION_TRIGGER = """
CREATE OR REPLACE FUNCTION landeco_layer_version_trigger(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION landeco_bump_layer_version(%L)',
                   'bump_layer_version', tbl, name);
    INSERT INTO layer_versions (layer) VALUES (name) ON CONFLICT DO NOTHING;
END $$
"""

# what 0006 and 0008 made (downgrade)
OLD_HISTORY_RECORD = """
CREATE OR REPLACE FUNCTION landeco_history_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hist text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME || '_history');
    who text := nullif(current_setting('landeco.who', true), '');
    upload text := nullif(current_setting('landeco.upload_id', true), '');
    edit text := nullif(current_setting('landeco.edit_id', true), '');
    cols text;
    src text := 'old_rows';
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO %s (feature_id, operation, changed_by, upload_id, edit_id) '
                       'SELECT id, ''insert'', $1, $2, $3 FROM new_rows', hist)
            USING who, upload, edit;
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        src := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    cols := landeco_history_columns(TG_RELID);
    -- the version ended now; it began when it was written (updated_at, kept by the database)
    EXECUTE format('INSERT INTO %s (feature_id, operation, valid, changed_by, upload_id, edit_id, %s) '
                   'SELECT id, %L, tstzrange(least(updated_at, now()), now()), $1, $2, $3, %s FROM %s',
                   hist, cols, CASE TG_OP WHEN 'UPDATE' THEN 'update' ELSE 'delete' END, cols, src)
        USING who, upload, edit;
    RETURN NULL;
END $$
"""
OLD_HISTORY_FOLLOW = (HISTORY_FOLLOW.replace("landeco_history_record(%L)", "landeco_history_record()")
                      .replace("spec[3], name);", "spec[3]);")
                      .replace("    PERFORM landeco_township_follow(tbl);\n", ""))
OLD_BUMP_VERSION = """
CREATE OR REPLACE FUNCTION landeco_bump_layer_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO layer_versions AS v (layer, version, changed_at) VALUES (TG_TABLE_NAME, 1, now())
    ON CONFLICT (layer) DO UPDATE SET version = v.version + 1, changed_at = now();
    RETURN NULL;
END $$
"""
OLD_VERSION_TRIGGER = """
CREATE OR REPLACE FUNCTION landeco_layer_version_trigger(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION landeco_bump_layer_version()',
                   'bump_layer_version', tbl);
    INSERT INTO layer_versions (layer) VALUES (tbl::text) ON CONFLICT DO NOTHING;
END $$
"""


def _retrigger() -> None:
    """Every layer's history and version triggers made again by the (new or old) functions."""
    for table in ALL_LAYERS:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_history_{event} ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS bump_layer_version ON {table}")
        op.execute(f"SELECT landeco_layer_version_trigger('{table}'::regclass)")
    op.execute("SELECT landeco_history_follow_all()")


def _to_sequence(table: str, column: str) -> None:
    seq = f"{table}_{column}_seq"
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP IDENTITY")
    op.execute(f"CREATE SEQUENCE {seq} AS bigint OWNED BY {table}.{column}")
    op.execute(f"SELECT setval('{seq}', coalesce(max({column}), 0) + 1, false) FROM {table}")
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT nextval('{seq}'::regclass)")


def _to_identity(table: str, column: str) -> None:
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
    op.execute(f"DROP SEQUENCE {table}_{column}_seq")
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} ADD GENERATED BY DEFAULT AS IDENTITY")
    op.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), coalesce(max({column}), 0) + 1, "
               f"false) FROM {table}")


def upgrade() -> None:
    # 1. triggers name their layer
    for statement in (TOWNSHIP_FILL, TOWNSHIP_FOLLOW, COLOCATED_SHARD, HISTORY_RECORD, HISTORY_FOLLOW, BUMP_VERSION,
                      VERSION_TRIGGER):
        op.execute(statement)
    _retrigger()
    # 2. sequences, not identities
    for table in ALL_LAYERS:
        _to_sequence(table, "id")
        _to_sequence(f"{table}_history", "history_id")
    _to_sequence("change_patch_steps", "id")
    # 3. the township, filled without the triggers (filling it is no change of a feature)
    op.execute("ALTER TABLE change_patch_steps DROP CONSTRAINT fk_change_patch_steps_patch_id")
    for table in BY_TOWNSHIP:
        op.execute(f"ALTER TABLE {table} ADD COLUMN township_code text")
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        op.execute(f"UPDATE {table} SET township_code = {TOWNSHIP}")
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN township_code SET NOT NULL")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_township_of_village "
                   f"CHECK (township_code = {TOWNSHIP})")
        op.execute(f"ALTER TABLE {table}_history ADD COLUMN township_code text")
        # an insert's row has no columns: its feature's township (as it is, or was last recorded)
        op.execute(f"UPDATE {table}_history h SET township_code = coalesce("
                   f"left(h.village_code, 9), (SELECT t.township_code FROM {table} t WHERE t.id = h.feature_id), "
                   f"(SELECT left(o.village_code, 9) FROM {table}_history o WHERE o.feature_id = h.feature_id "
                   f"AND o.operation <> 'insert' ORDER BY o.history_id DESC LIMIT 1), '')")
        op.execute(f"ALTER TABLE {table}_history ALTER COLUMN township_code SET NOT NULL")
        op.execute(f"ALTER TABLE {table}_history DROP CONSTRAINT pk_{table}_history")
        op.execute(f"ALTER TABLE {table}_history ADD CONSTRAINT pk_{table}_history "
                   "PRIMARY KEY (history_id, township_code)")
        # 4. keys with the township (id and code first: look-ups by them keep their index)
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id, township_code)")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT uq_{table}_code")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT uq_{table}_code UNIQUE (code, township_code)")
    op.execute("ALTER TABLE change_patch_steps ADD COLUMN township_code text")
    op.execute("ALTER TABLE change_patch_steps DISABLE TRIGGER USER")
    op.execute("UPDATE change_patch_steps s SET township_code = coalesce((SELECT p.township_code FROM "
               "change_patches p WHERE p.id = s.patch_id), '')")
    op.execute("ALTER TABLE change_patch_steps ENABLE TRIGGER USER")
    op.execute("ALTER TABLE change_patch_steps ALTER COLUMN township_code SET NOT NULL")
    op.execute("ALTER TABLE change_patch_steps DROP CONSTRAINT pk_change_patch_steps")
    op.execute("ALTER TABLE change_patch_steps ADD CONSTRAINT pk_change_patch_steps PRIMARY KEY (id, township_code)")
    op.execute("ALTER TABLE change_patch_steps ADD CONSTRAINT fk_change_patch_steps_patch_id FOREIGN KEY "
               "(patch_id, township_code) REFERENCES change_patches (id, township_code) ON DELETE CASCADE")
    op.execute(STEP.format(cols=", township_code", vals=", NEW.township_code"))
    op.execute("SELECT landeco_history_follow_all()")  # the township triggers


#: change_patch_step of 0014, with or without the township
STEP = """
CREATE OR REPLACE FUNCTION change_patch_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO change_patch_steps (patch_id, code, from_status, to_status, note, by{cols})
        VALUES (NEW.id, NEW.code, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status,
                NEW.status_note, NEW.status_by{vals});
    END IF;
    RETURN NULL;
END $$"""


def downgrade() -> None:
    op.execute("DROP FUNCTION landeco_township_fill() CASCADE")  # and the tables' triggers
    op.execute(STEP.format(cols="", vals=""))
    op.execute("ALTER TABLE change_patch_steps DROP CONSTRAINT fk_change_patch_steps_patch_id")
    op.execute("ALTER TABLE change_patch_steps DROP CONSTRAINT pk_change_patch_steps")
    op.execute("ALTER TABLE change_patch_steps ADD CONSTRAINT pk_change_patch_steps PRIMARY KEY (id)")
    op.execute("ALTER TABLE change_patch_steps DROP COLUMN township_code")
    for table in BY_TOWNSHIP:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT uq_{table}_code")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT uq_{table}_code UNIQUE (code)")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id)")
        op.execute(f"ALTER TABLE {table}_history DROP CONSTRAINT pk_{table}_history")
        op.execute(f"ALTER TABLE {table}_history ADD CONSTRAINT pk_{table}_history PRIMARY KEY (history_id)")
        op.execute(f"ALTER TABLE {table}_history DROP COLUMN township_code")
        op.execute(f"ALTER TABLE {table} DROP COLUMN township_code")
    op.execute("ALTER TABLE change_patch_steps ADD CONSTRAINT fk_change_patch_steps_patch_id FOREIGN KEY "
               "(patch_id) REFERENCES change_patches (id) ON DELETE CASCADE")
    _to_identity("change_patch_steps", "id")
    for table in ALL_LAYERS:
        _to_identity(table, "id")
        _to_identity(f"{table}_history", "history_id")
    for statement in (OLD_HISTORY_RECORD, OLD_HISTORY_FOLLOW, OLD_BUMP_VERSION, OLD_VERSION_TRIGGER):
        op.execute(statement)
    _retrigger()
    op.execute("DROP FUNCTION landeco_township_follow(regclass)")
    op.execute("DROP FUNCTION landeco_colocated_shard(regclass, text)")
