"""Planners' queries through the API against the raw SQL of the same answer, on 1 000 000 parcels.

Usage: python -m bench.query [--parcels 1000000] [--runs 30]

Builds ``landeco_bench_<N>`` if absent (bench.demo_load), starts a real uvicorn over it,
and for a size query, a village query and a polygon query times ``POST /query`` over HTTP
(httpx, keep-alive, gzip accepted as a browser does) and the very statement the API runs,
with its values inlined, under pgbench (one client, per-transaction log; the first
transaction of each pgbench connection warms that backend's caches and is not counted, as
the API's pooled connections are warm too) in the same run.
Runs alternate in rounds of five (API plain, API gzip, pgbench) so that load from other
processes on the machine falls on all alike. Prints p50/p95 of each and the ratio of the
p95s (target: API within 2× of raw SQL).
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import sqlalchemy as sa

from bench.demo_load import bench_url
from bench.demo_load import run as build_bench
from layers.query import QuerySpec, compile_query, json_sql
from layers.settings import Settings
from layers.store.database import database_url, engine_for

QUERIES: dict[str, dict] = {
    "size 4–5 亩": {"layers": ["caragana_plots"], "area": {"min": 4, "max": 5, "unit": "mu"}},
    "village 特布德嘎查": {"layers": ["caragana_plots"], "place": {"villages": ["特布德嘎查"]}},
    "polygon 2.6 × 2.2 km": {"layers": ["caragana_plots"], "place": {"geometry": {
        "type": "Polygon",
        "coordinates": [[[107.20, 38.20], [107.23, 38.20], [107.23, 38.22], [107.20, 38.22],
                         [107.20, 38.20]]]}}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exists(n: int) -> bool:
    server = engine_for(database_url(Settings()).render_as_string(hide_password=False))
    with server.connect() as conn:
        return conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                           {"d": f"landeco_bench_{n}"}) is not None


def _pct(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]


def _serve(url: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "LANDECO_DATABASE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("uvicorn did not start")


def _api_ms(client: httpx.Client, base: str, body: dict, runs: int, encoding: str) -> list[float]:
    """Milliseconds until the whole answer is received (not parsed: pgbench does not parse either)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.post(f"{base}/query", json=body, headers={"Accept-Encoding": encoding})
        r.raise_for_status()
        r.read()
        times.append((time.perf_counter() - t) * 1000)
    return times


def _raw_sql(engine: sa.Engine, body: dict) -> str:
    """The statement(s) the API runs for ``body``, values inlined (psycopg's own quoting)."""
    with engine.connect() as conn:
        compiled = compile_query(conn, QuerySpec(**body))
        cur = psycopg.ClientCursor(conn.connection.driver_connection)
        return "\n".join(cur.mogrify(json_sql(c), c.params).replace("\n", " ") + ";" for c in compiled)


def _pgbench_ms(url: sa.engine.URL, sql: str, runs: int) -> list[float]:
    pgbench = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))[-1]
    env = {**os.environ, "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432),
           "PGUSER": url.username or "", "PGPASSWORD": url.password or "", "PGDATABASE": url.database or ""}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "q.sql"
        script.write_text(sql)
        # one more than asked: the first transaction of a fresh connection warms its caches
        subprocess.run([pgbench, "-n", "-c", "1", "-t", str(runs + 1), "-f", str(script), "-l",
                        "--log-prefix", f"{tmp}/log"], env=env, cwd=tmp, check=True,
                       capture_output=True, text=True)
        (log,) = Path(tmp).glob("log.*")
        lines = log.read_text().split()
        # columns: client, transaction, latency (µs), script, epoch, µs
        return [int(x) / 1000 for x in lines[2::6]][1:]


def main(argv: list[str]) -> None:
    """Run every query both ways and print one table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    if not _exists(args.parcels):
        print(f"building landeco_bench_{args.parcels} …", flush=True)
        build_bench(args.parcels)
    url = bench_url(args.parcels)
    url_s = url.render_as_string(hide_password=False)
    engine = engine_for(url_s)
    load_before = os.getloadavg()[0]
    proc, base = _serve(url_s)
    rows = []
    try:
        with httpx.Client(timeout=120) as client:
            for name, body in QUERIES.items():
                total = client.post(f"{base}/query", json=body).json()["summary"]["total"]
                raw = _raw_sql(engine, body)
                _api_ms(client, base, body, 2, "identity")  # warm up both
                _pgbench_ms(url, raw, 2)
                api, gz, sql = [], [], []
                # interleaved in rounds of 5, so that other load on the machine hits all three alike
                for _ in range(max(1, args.runs // 5)):
                    api += _api_ms(client, base, body, 5, "identity")
                    gz += _api_ms(client, base, body, 5, "gzip")
                    sql += _pgbench_ms(url, raw, 5)
                rows.append((name, total, _pct(api), _pct(gz), _pct(sql)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{args.parcels:,} caragana parcels · {args.runs} runs each · {when} · "
          f"{platform.machine()}, {os.cpu_count()} cores, load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after · p95 ratio target ≤ 2×\n")
    print("| query | matches | 亩 (clipped) | SQL p50 | SQL p95 | API p50 | API p95 | ratio p50 / p95 "
          "| API gzip p50 | API gzip p95 | gzip ratio p50 / p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, total, (a50, a95), (g50, g95), (s50, s95) in rows:
        print(f"| {name} | {total['count']:,} | {total['area_mu']:,.1f} | {s50:.1f} | {s95:.1f} | {a50:.1f} "
              f"| {a95:.1f} | {a50 / s50:.2f}× / {a95 / s95:.2f}× | {g50:.1f} | {g95:.1f} "
              f"| {g50 / s50:.2f}× / {g95 / s95:.2f}× |")
    print("\nTimes in ms. API: POST /query over HTTP to uvicorn, whole answer received; "
          "SQL: the same statement in pgbench.")


if __name__ == "__main__":
    main(sys.argv[1:])
