"""Tile benchmark: landeco's vector tiles against tipg's and against the raw SQL (pgbench).

Usage: python -m bench.tiles [--seconds 5] [--rounds 3] [--concurrency 4] [--parcels 100000]

On ``landeco_bench_<N>`` (built by ``bench.demo_load`` when missing), with tipg from
``bench/.venv-tipg`` (installed when missing; the same venv as ``bench.serve``), one
uvicorn worker each on loopback, loaded by ``hey`` with compression off. Rows:

- the zoom-13 tile near the fabric's centre that holds closest to 1 000 parcels;
- the zoom-10 tile of the township's centre (~40 000 parcels): landeco generalises
  parcels of a few pixels into cells (``layers.tiles``), tipg sends every parcel.

tipg is asked for the same properties landeco's tile carries (``properties=``) and for
every parcel of the tile (``limit=``, with ``TIPG_MAX_FEATURES_PER_TILE`` raised: by
default tipg stops at 10 000 features). The raw
SQL is ``layers.tiles.tile_sql`` (with ``tile_settings()``, in one transaction, as landeco
sends it) run by ``pgbench``: the database's own time for the tile.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from bench.serve import (  # the serving benchmark's runners: the same tools, the same way
    DATA,
    _ensure_database,
    _ensure_tipg,
    _fmt,
    _free_port,
    _hey,
    _median,
    _pgbench,
    _start,
    _tipg_version,
)
from layers.registry import get_layer
from layers.tiles import tile_columns, tile_settings, tile_sql

LAYER = "caragana_plots"
CENTRE = (107.15, 38.18)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile holding a point."""
    n = 2 ** z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _count(conn: psycopg.Connection, z: int, x: int, y: int) -> int:
    return conn.execute(f"SELECT count(*) FROM {LAYER} WHERE geom && "
                        "ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)", (z, x, y)).fetchone()[0]


def _tiles(conn: psycopg.Connection) -> list[tuple[str, tuple[int, int, int], int]]:
    z, x0, y0 = tile_of(*CENTRE, 13)
    near = [(z, x0 + dx, y0 + dy) for dx in range(-2, 3) for dy in range(-2, 3)]
    counts = {t: _count(conn, *t) for t in near}
    best = min(counts, key=lambda t: abs(counts[t] - 1000))
    overview = tile_of(*CENTRE, 10)
    return [(f"tile z{best[0]} ({counts[best]} parcels)", best, counts[best]),
            (f"tile z10 ({(n := _count(conn, *overview))} parcels)", overview, n)]


def main(argv: list[str] | None = None) -> None:
    """Run each tile against the three and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5, help="length of one measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per cell, interleaved; median shown")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--parcels", type=int, default=100_000)
    args = ap.parse_args(argv)
    url = _ensure_database(args.parcels)
    tipg_uvicorn = _ensure_tipg()
    DATA.mkdir(parents=True, exist_ok=True)
    db_text = url.render_as_string(hide_password=False)
    conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)
    lport, tport = _free_port(), _free_port()
    landeco = _start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                      "--port", str(lport), "--log-level", "warning", "--no-access-log"],
                     {**os.environ, "LANDECO_DATABASE_URL": db_text}, lport, "/collections",
                     DATA / "tiles_landeco.log")
    tipg = _start([str(tipg_uvicorn), "tipg.main:app", "--host", "127.0.0.1", "--port", str(tport),
                   "--log-level", "warning", "--no-access-log"],
                  {**os.environ, "DATABASE_URL": url.set(drivername="postgresql").render_as_string(
                      hide_password=False), "TIPG_MAX_FEATURES_PER_TILE": str(args.parcels)},
                  tport, "/collections", DATA / "tiles_tipg.log")
    props = ",".join(n for n in tile_columns(get_layer(LAYER)) if n != "area_mu")  # tipg: columns only
    results = []
    try:
        for i, (name, (z, x, y), count) in enumerate(_tiles(conn)):
            print(f"{name} …", file=sys.stderr)
            lurl = f"http://127.0.0.1:{lport}/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"
            turl = (f"http://127.0.0.1:{tport}/collections/public.{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                    f"?properties={props},area_mu&limit={max(count, 1)}")  # tipg stops at 10 000
            sizes = [len(httpx.get(u, timeout=120).content) for u in (lurl, turl)]
            # what landeco sends: the tile statement with its settings, in one transaction
            sql = ["BEGIN", *tile_settings(), tile_sql(get_layer(LAYER), z, x, y), "COMMIT"]
            lms, tms, sms = [], [], []
            for _ in range(args.rounds):
                lms.append(_hey(lurl, args.seconds, args.concurrency))
                tms.append(_hey(turl, args.seconds, args.concurrency))
                sms.append(_pgbench(url, sql, args.seconds, args.concurrency, f"tile{i}"))
            results.append((name, f"{z}/{x}/{y}", sizes, _median(lms), _median(tms), _median(sms)))
    finally:
        for proc in (landeco, tipg):
            proc.terminate()
            proc.wait(timeout=10)
        conn.close()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\nTile benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {os.cpu_count()} cores ({cpu}), "
          f"{args.parcels} parcels, {args.concurrency} concurrent clients, median of {args.rounds} "
          f"interleaved rounds of {args.seconds} s, one uvicorn worker each, tipg {_tipg_version()}, "
          f"no compression, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print("| tile | z/x/y | bytes (landeco / tipg) | landeco req/s | p50 ms | p99 ms | tipg req/s | p50 ms "
          "| p99 ms | raw SQL req/s | p50 ms | p99 ms | landeco/tipg | landeco/SQL |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    out = []
    for name, address, sizes, lm, tm, sm in results:
        vs_tipg = f"{lm['rps'] / tm['rps']:.2f}×" if tm and tm["rps"] and not tm["errors"] else "—"
        vs_sql = f"{lm['rps'] / sm['rps']:.0%}" if sm and sm["rps"] else "—"
        cells = [name, address, f"{sizes[0]:,} / {sizes[1]:,}", *_fmt(lm), *_fmt(tm), *_fmt(sm),
                 vs_tipg, vs_sql]
        print("| " + " | ".join(cells) + " |")
        out.append({"tile": name, "address": address, "bytes": sizes, "landeco": lm, "tipg": tm, "sql": sm})
    (DATA / "tiles.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
