"""The layers distributed with Citus by township (docs/scale.md): the plan as code.

``distribute(conn)`` (``landeco db distribute``) turns a migrated landeco database whose server
loads Citus into one whose layers are spread over the Citus nodes by ``township_code``:

- reference tables (a copy on every node): the villages (every layer's foreign key points to
  them), their history, the accounts, the layers' versions and overview cells (small, written
  for every layer by the coordinator: :mod:`layers.audit` does what those triggers do on one
  server);
- distributed by ``township_code`` and co-located: every layer with a village, its history and
  ``change_patch_steps`` (a patch's steps beside it);
- everything else (uploads, jobs, audit, the tile cache, rasters, procrastinate's queue) stays a
  local table of the coordinator.

The order is the one a trial found (finding 4 of docs/scale.md): a reference table with
foreign keys to it pulls the referencing tables into Citus's metadata, so the villages go
first, in the same transaction as the layers; the triggers the migrations made run on the
shards (``citus.enable_unsafe_triggers``: each writes only its own layer's rows, by name).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers.errors import LandecoError
from layers.registry import LAYERS
from layers.store.schema import HISTORY_SUFFIX

__all__ = ["CitusMissingError", "any_distributed", "bump_version", "distribute", "distributed_tables",
           "is_distributed", "plan", "same_township"]

#: Small tables read everywhere, or written by the layers' triggers from any node.
REFERENCE = ("villages_history", "villages", "users", "api_tokens", "sessions", "login_attempts",
             "layer_versions", "layer_cells", "layer_cell_codes")


class CitusMissingError(LandecoError):
    """The database has no ``citus`` extension: there is nothing to distribute with."""

    code = "citus_missing"
    status = 409
    title = "Citus is not installed in this database"


def plan() -> dict[str, list[str]]:
    """What becomes what: ``reference`` tables and ``distributed`` ones (by ``township_code``)."""
    layers = [layer.table for layer in LAYERS.values() if layer.by_township]
    distributed = [*layers, *(t + HISTORY_SUFFIX for t in layers)]
    if "change_patches" in layers:
        distributed.append("change_patch_steps")
    return {"reference": list(REFERENCE), "distributed": distributed}


def is_distributed(conn: Connection, table: str) -> bool:
    """Whether Citus distributes ``table`` (False on a server without Citus)."""
    if not conn.scalar(sa.text("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL")):
        return False
    return bool(conn.scalar(sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass(:t) "
        "AND partkey IS NOT NULL)"), {"t": table}))


def any_distributed(conn: Connection) -> bool:
    """Whether Citus distributes any table of the database (False on a server without Citus)."""
    if not conn.scalar(sa.text("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL")):
        return False
    return bool(conn.scalar(sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE partkey IS NOT NULL)")))


def bump_version(conn: Connection, table: str) -> None:
    """Bump ``table``'s version, as its trigger does on one server (on a Citus shard it does not)."""
    conn.execute(sa.text(
        "INSERT INTO layer_versions AS v (layer, version, changed_at) VALUES (:l, 1, now()) "
        "ON CONFLICT (layer) DO UPDATE SET version = v.version + 1, changed_at = excluded.changed_at"),
        {"l": table})


def same_township(conn: Connection, table: str, a: str = "a", b: str = "b") -> str:
    """`` AND a.township_code = b.township_code`` when ``table`` is distributed by Citus, else ''.

    Citus joins two distributed tables only on their distribution column (it cannot repartition
    a spatial predicate); features that overlap lie in one village and so in one township, except
    across a township's border, which one server still finds (docs/scale.md).
    """
    return f" AND {a}.township_code = {b}.township_code" if is_distributed(conn, table) else ""


def distributed_tables(conn: Connection) -> dict[str, str]:
    """Tables Citus knows, with their kind (``distributed``, ``reference``, ``local``)."""
    rows = conn.execute(sa.text("SELECT table_name::text, citus_table_type FROM citus_tables"))
    return {name: kind for name, kind in rows}


def distribute(conn: Connection, shard_count: int | None = None) -> dict[str, list[str]]:
    """Distribute the layers by township in ``conn``'s transaction (the caller commits).

    Refuses (:class:`CitusMissingError`) when the database lacks the extension. Safe to repeat:
    tables Citus already knows are left as they are. Returns what it made of each table.
    """
    if not conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")):
        raise CitusMissingError("the database has no citus extension: add 'citus' to "
                                "shared_preload_libraries, restart, CREATE EXTENSION citus, then distribute")
    # the coordinator in Citus's metadata; without workers it holds the shards (single node)
    if not conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM pg_dist_node WHERE groupid = 0)")):
        port = conn.scalar(sa.text("SELECT current_setting('port')::int"))
        conn.execute(sa.text("SELECT citus_set_coordinator_host('localhost', :p)"), {"p": port})
    database = conn.scalar(sa.text("SELECT current_database()"))
    if not conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM pg_dist_node WHERE groupid <> 0)")):
        conn.execute(sa.text("SELECT citus_set_node_property(nodename, nodeport, 'shouldhaveshards', true) "
                             "FROM pg_dist_node WHERE groupid = 0"))
        # the shards are all the coordinator's: without local execution, a statement reaching them
        # all (ANALYZE after an import's COPY) may follow one that reached one in the transaction
        conn.execute(sa.text(f'ALTER DATABASE "{database}" SET citus.enable_local_execution = off'))
    # the migrations' triggers run on the shards (each writes only its own layer's rows, by name);
    # for this database, so that a later migration may make them too
    conn.execute(sa.text("SET LOCAL citus.enable_unsafe_triggers = on"))
    conn.execute(sa.text(f'ALTER DATABASE "{database}" SET citus.enable_unsafe_triggers = on'))
    # who writes, and the transaction's id and time (layers/history.py attribute) reach the shards
    conn.execute(sa.text(f'ALTER DATABASE "{database}" SET citus.propagate_set_commands = \'local\''))
    # a change patch's guard (a row trigger) reads the patches: a distributed statement from a
    # shard, which Citus allows when told
    conn.execute(sa.text(f'ALTER DATABASE "{database}" SET citus.allow_nested_distributed_execution = on'))
    # the layers have foreign keys to a reference table (the villages), read in the same transaction
    # as an import's ANALYZE and multi-shard writes: one connection per node
    conn.execute(sa.text(f'ALTER DATABASE "{database}" SET citus.multi_shard_modify_mode = \'sequential\''))
    conn.execute(sa.text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
    if shard_count is not None:
        conn.execute(sa.text(f"SET LOCAL citus.shard_count = {int(shard_count)}"))
    # on Citus a trigger must not move a row between shards (the writers send the township), and
    # the cells' triggers cannot read their transition tables in a statement Citus plans: the
    # cells are refreshed by the imports and landeco's other audited writes (layers/audit.py)
    for layer in LAYERS.values():
        if layer.by_township:
            for trigger in (*(f"{layer.table}_township_{e}" for e in ("insert", "update")),
                            *(f"cells_{e}" for e in ("insert", "update", "delete", "truncate"))):
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {trigger} ON {layer.table}"))
    known = distributed_tables(conn)
    what = plan()
    done: dict[str, list[str]] = {"reference": [], "distributed": []}
    # the rows a table holds are copied into its shards: no trigger records that as a change
    conn.execute(sa.text("SET LOCAL citus.propagate_set_commands = 'local'"))
    conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
    for table in what["reference"]:
        if table not in known and _exists(conn, table):
            conn.execute(sa.text("SELECT create_reference_table(:t)"), {"t": table})
            done["reference"].append(table)
    # a foreign key between two tables to distribute (a patch's steps) is made again afterwards:
    # Citus refuses one from a table it does not know yet to a distributed one
    fks = conn.execute(sa.text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid::regclass::text = ANY(:t) AND confrelid::regclass::text = ANY(:t)"),
        {"t": [t for t in what["distributed"] if t not in known]}).all()
    for table, name, _ in fks:
        conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    first = None
    for table in what["distributed"]:
        if table in known:
            first = first or table
            continue
        colocate = first or "default"
        conn.execute(sa.text("SELECT create_distributed_table(:t, 'township_code', colocate_with => :c)"),
                     {"t": table, "c": colocate})
        first = first or table
        done["distributed"].append(table)
    conn.execute(sa.text("SET LOCAL session_replication_role = origin"))
    for table, name, definition in fks:
        conn.execute(sa.text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    return done


def _exists(conn: Connection, table: str) -> bool:
    return conn.scalar(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})
