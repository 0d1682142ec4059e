"""Generate and load benchmark-sized demo layers; time an area query with and without its index.

Usage: python -m bench.demo_load [N ...]   (default: 100000)
Keeps the database ``landeco_bench_<N>`` for the other benchmarks.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

import sqlalchemy as sa

from layers.demo import generate
from layers.registry import LAYERS
from layers.settings import Settings
from layers.store.database import create_database, database_url, drop_database, engine_for
from layers.store.load import copy_features
from layers.store.migrate import upgrade


def bench_url(n: int):
    """The URL of the benchmark database for ``n`` parcels."""
    return database_url(Settings()).set(database=f"landeco_bench_{n}")


def _query_ms(engine, sql: str, seqscan: bool, repeat: int = 7) -> float:
    times = []
    with engine.connect() as conn:
        conn.execute(sa.text(f"SET enable_seqscan = {'on' if seqscan else 'off'}"))
        conn.execute(sa.text(f"SET enable_indexscan = {'off' if seqscan else 'on'}"))
        conn.execute(sa.text(f"SET enable_bitmapscan = {'off' if seqscan else 'on'}"))
        for _ in range(repeat):
            t = time.perf_counter()
            conn.execute(sa.text(sql)).all()
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run(n: int) -> dict[str, float]:
    """Generate, load and query an ``n``-parcel township; return the measurements."""
    url = bench_url(n)
    drop_database(url)
    create_database(url)
    upgrade(url)
    t0 = time.perf_counter()
    town = generate(parcels=n)
    t1 = time.perf_counter()
    engine = engine_for(url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        for layer_id, layer in LAYERS.items():
            copy_features(conn, layer, town.rows[layer_id], town.geoms[layer_id])
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    t2 = time.perf_counter()
    rows = len(town.rows["caragana_plots"])
    sql = "SELECT id, area_mu FROM caragana_plots WHERE area_mu BETWEEN 50 AND 60"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"parcels": rows, "generate_s": t1 - t0, "load_s": t2 - t1,
            "rows_per_s": rows / (t2 - t1), "peak_mb": peak_mb,
            "index_ms": _query_ms(engine, sql, seqscan=False),
            "seqscan_ms": _query_ms(engine, sql, seqscan=True)}


def main(argv: list[str]) -> None:
    """Run for each N given and print one table."""
    sizes = [int(a) for a in argv] or [100_000]
    print("| parcels | generate (s) | load (s) | rows/s | peak RSS (MB) "
          "| 50–60 亩 via index (ms) | seq scan (ms) | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = run(n)
        print(f"| {r['parcels']:,} | {r['generate_s']:.1f} | {r['load_s']:.1f} "
              f"| {r['rows_per_s']:,.0f} | {r['peak_mb']:,.0f} | {r['index_ms']:.1f} "
              f"| {r['seqscan_ms']:.1f} | {r['seqscan_ms'] / r['index_ms']:.0f}× |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
