"""What history costs: a 100 000-feature upsert with the history triggers and without, same run.

Usage: python -m bench.history [--repeat=R] [N]   (default: 3 repeats of 100000)

In its own database (``landeco_bench_history``, migrated to the newest revision), the layer
``caragana_plots`` holds N parcels; a staging table holds the same N codes with changed
attributes and geometries moved by about 1 m. Each round times, in one transaction each,
the statement landeco's importer runs for an upsert (``INSERT … SELECT … ON CONFLICT (code, township_code)
DO UPDATE``, layers/importer.py ``_write``):

- "upsert, all updated": every row exists, so every old version goes to the history;
- "upsert, all new": into an emptied layer, so only the inserts are noted.

once with the history triggers enabled and once disabled (``ALTER TABLE … DISABLE TRIGGER``
on the four ``*_history_*`` triggers only; ``updated_at`` and the rules stay), alternating,
with ``VACUUM ANALYZE`` and an emptied history before each timing. The table shows medians and
the ratio with/without; the target is at most 1.25. Last, the all-updated upsert is written
as an upload's commit (with its audit entry) and undone (:func:`layers.history.undo_upload`).
"""

from __future__ import annotations

import statistics
import sys
import time

import sqlalchemy as sa

from layers.settings import Settings
from layers.store.database import create_database, database_url, engine_for
from layers.store.migrate import upgrade

TABLE = "caragana_plots"
TRIGGERS = [f"{TABLE}_history_{op}" for op in ("insert", "update", "delete", "truncate")]
COLS = ["code", "planted_year", "method", "seedlings", "survival_rate", "contractor", "note", "extra", "geom"]


def _fill(conn: sa.Connection, n: int) -> None:
    """N 30 m squares in a grid near the township (EPSG:4326), and their changed copies staged."""
    grid = ("SELECT i, 107.3 + (i % 1000) * 0.0004 AS x, 38.0 + (i / 1000) * 0.0004 AS y "
            f"FROM generate_series(0, {n - 1}) i")
    square = "ST_Multi(ST_MakeEnvelope(x, y, x + 0.0003, y + 0.0003, 4326))"
    conn.execute(sa.text(f"INSERT INTO {TABLE} (code, planted_year, method, seedlings, survival_rate, "
                         f"contractor, geom) SELECT 'B-' || lpad(i::text, 7, '0'), 2018 + i % 5, "
                         f"'restoration', 1000 + i, 0.8, '绿源', {square} FROM ({grid}) g"))
    conn.execute(sa.text("DROP TABLE IF EXISTS bench_stage"))
    conn.execute(sa.text(f"CREATE UNLOGGED TABLE bench_stage AS SELECT code, planted_year, method, "
                         f"seedlings + 1 AS seedlings, 0.85::float8 AS survival_rate, contractor, "
                         "'复查' AS note, extra, "
                         "ST_Multi(ST_Translate(ST_GeometryN(geom, 1), 0.00001, 0)) AS geom "
                         f"FROM {TABLE}"))


def _triggers(conn: sa.Connection, on: bool) -> None:
    for t in TRIGGERS:
        conn.execute(sa.text(f"ALTER TABLE {TABLE} {'ENABLE' if on else 'DISABLE'} TRIGGER {t}"))


def _upsert_sql() -> str:
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLS[1:])
    return (f"INSERT INTO {TABLE} ({', '.join(COLS)}) SELECT {', '.join(COLS)} FROM bench_stage "
            f"ON CONFLICT (code, township_code) DO UPDATE SET {sets}, updated_at = now()")


def _prepare(engine: sa.Engine, empty: bool, n: int) -> None:
    with engine.begin() as conn:
        _triggers(conn, False)
        conn.execute(sa.text(f"TRUNCATE {TABLE}_history"))
        if empty:
            conn.execute(sa.text(f"TRUNCATE {TABLE}"))
        elif conn.scalar(sa.text(f"SELECT count(*) FROM {TABLE}")) != n:
            conn.execute(sa.text(f"TRUNCATE {TABLE}"))
            conn.execute(sa.text(f"INSERT INTO {TABLE} ({', '.join(COLS)}) SELECT {', '.join(COLS)} "
                                 "FROM bench_stage"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM ANALYZE {TABLE}"))
        conn.execute(sa.text(f"VACUUM ANALYZE {TABLE}_history"))


def _timed(engine: sa.Engine, history: bool) -> tuple[float, int]:
    with engine.begin() as conn:
        _triggers(conn, history)
    with engine.connect() as conn:
        start = time.perf_counter()
        rows = conn.execute(sa.text(_upsert_sql())).rowcount
        conn.commit()
        took = time.perf_counter() - start
    with engine.connect() as conn:
        kept = conn.scalar(sa.text(f"SELECT count(*) FROM {TABLE}_history"))
    assert rows > 0 and (kept > 0) == history, (rows, kept, history)
    return took, kept


def _undo(engine: sa.Engine, n: int) -> float:
    """Seconds to undo the all-updated upsert (written as an upload's commit, with its audit entry)."""
    from layers.history import undo_upload

    _prepare(engine, False, n)
    upload_id = f"bench{time.time_ns()}"
    with engine.begin() as conn:
        _triggers(conn, True)
    with engine.begin() as conn:
        conn.execute(sa.text(_upsert_sql()))
        conn.execute(sa.text("INSERT INTO audit (action, layer, upload_id) VALUES ('upload.commit', :l, :u)"),
                     {"l": TABLE, "u": upload_id})
    start = time.perf_counter()
    done = undo_upload(engine, upload_id, None)
    took = time.perf_counter() - start
    assert done["restored"] == n, done
    return took


def main(argv: list[str]) -> None:
    """Print the table."""
    repeat = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--repeat=")), 3)
    n = next((int(a) for a in argv if a.isdigit()), 100_000)
    url = database_url(Settings()).set(database="landeco_bench_history")
    create_database(url, exists_ok=True)
    upgrade(url)
    engine = engine_for(url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        _triggers(conn, False)
        conn.execute(sa.text(f"TRUNCATE {TABLE}, {TABLE}_history"))
        _fill(conn, n)
    results: dict[tuple[str, bool], list[float]] = {}
    kept: dict[tuple[str, bool], int] = {}
    for _ in range(repeat):
        for case, empty in (("upsert, all updated", False), ("upsert, all new", True)):
            for history in (True, False) if _ % 2 == 0 else (False, True):
                _prepare(engine, empty, n)
                took, rows = _timed(engine, history)
                results.setdefault((case, history), []).append(took)
                kept[(case, history)] = rows
    undo_s = _undo(engine, n)
    with engine.begin() as conn:
        _triggers(conn, True)  # left as landeco has it
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {n:,} features, median of {repeat} "
          "alternating rounds, one transaction each")
    print()
    print("| case | with history s | without s | with/without | history rows written "
          "| rounds (with; without) |")
    print("|---|---:|---:|---:|---:|---|")
    for case in ("upsert, all updated", "upsert, all new"):
        on, off = results[(case, True)], results[(case, False)]
        ratio = statistics.median(on) / statistics.median(off)
        rounds = " ".join(f"{x:.2f}" for x in on) + "; " + " ".join(f"{x:.2f}" for x in off)
        print(f"| {case} | {statistics.median(on):.2f} | {statistics.median(off):.2f} | {ratio:.2f} | "
              f"{kept[(case, True)]:,} | {rounds} |")
    print()
    print(f"Undoing the all-updated upsert (`landeco undo`, one transaction, every feature restored): "
          f"{undo_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
