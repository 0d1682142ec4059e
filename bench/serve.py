"""Serving benchmark: landeco against tipg and against the raw SQL (pgbench) on 100 000 parcels.

Usage: python -m bench.serve [--seconds 6] [--rounds 3] [--concurrency 4] [--parcels 100000]

Builds ``landeco_bench_<N>`` if it is missing (``bench.demo_load``), installs tipg in
``bench/.venv-tipg`` if it is missing, starts one uvicorn worker of each on loopback,
and loads each with ``hey`` (Debian package ``hey``) for the same requests. The raw-SQL
ceiling is the statement(s) landeco sends for that request, run by ``pgbench`` with the
same concurrency: the database's own time to build the same GeoJSON bytes.
Compression is off everywhere (``hey -disable-compression``): this measures serving.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import sqlalchemy as sa

from bench.demo_load import bench_url
from layers.cql2 import filter_sql
from layers.features import (
    ItemsQuery,
    items_sql,
    page_sql,
    parse_bbox,
)
from layers.registry import get_layer
from layers.store.database import engine_for
from layers.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
TIPG_VENV = ROOT / ".venv-tipg"
LAYER = "caragana_plots"

BBOX = "107.177,38.177,107.223,38.223"  # ~1 000 parcels in the 100 000 fabric
AREA_FILTER = "area_mu > 45"  # "parcels over 45 亩": ~1 350 of 100 000
TILE_ZOOM = 13  # a WebMercatorQuad tile at the fabric's centre holds ~700 parcels here (z12: ~2 700)


@dataclass
class Row:
    """One benchmark row: the same question to landeco, to tipg and to the database."""

    name: str
    landeco: str
    tipg: str
    sql: list[str]
    note: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_database(n: int) -> sa.URL:
    url = bench_url(n)
    admin = sa.create_engine(url.set(database="postgres"), poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        found = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database})
    admin.dispose()
    if not found:
        print(f"building {url.database} (bench.demo_load) …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "bench.demo_load", str(n)], check=True)
    upgrade(url)  # a database built by an older landeco gets the newer tables
    return url


def bench_token(url: sa.URL) -> str:
    """A surveyor's API token on the database at ``url`` (uploads and commits need one)."""
    from layers import accounts

    engine = engine_for(url.render_as_string(hide_password=False))
    if not any(u["name"] == "bench-surveyor" for u in accounts.list_users(engine=engine)):
        accounts.add_user(engine=engine, name="bench-surveyor", roles=["surveyor"])
    return accounts.create_token(engine=engine, name="bench-surveyor", label="benchmark", expires_days=1)[1]


def _ensure_tipg() -> Path:
    uvicorn = TIPG_VENV / "bin" / "uvicorn"
    if not uvicorn.exists():
        print("installing tipg into bench/.venv-tipg …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run([str(TIPG_VENV / "bin" / "pip"), "install", "-q", "tipg", "uvicorn"], check=True)
    return uvicorn


def _tipg_version() -> str:
    out = subprocess.run([str(TIPG_VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('tipg'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def _start(cmd: list[str], env: dict[str, str], port: int, probe: str, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT.parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"{cmd} did not answer; see {log}")


def _inline(conn: psycopg.Connection, sql: str, params: dict) -> str:
    """The statement with its parameters as literals, for pgbench."""
    return psycopg.ClientCursor(conn).mogrify(sql, params).replace("\n", " ")


def _items_statements(conn: psycopg.Connection, q: ItemsQuery) -> list[str]:
    """What landeco sends for ``q``: one statement building the page and its counts."""
    return [_inline(conn, *page_sql(q))]


def _tile_row(base: str, conn: psycopg.Connection) -> Row | None:
    """The tile row, when the tiles area serves tiles (its route and ``layers.tiles.tile_sql``)."""
    import math
    lon, lat = 107.15, 38.18
    n = 2 ** TILE_ZOOM
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    path = f"/collections/{LAYER}/tiles/WebMercatorQuad/{TILE_ZOOM}/{x}/{y}"
    try:
        if httpx.get(base + path, timeout=30).status_code != 200:
            return None
    except httpx.HTTPError:
        return None
    statements: list[str] = []
    try:
        from layers import tiles  # the tiles area's module (issue 3, point 4)

        # as landeco sends it: the tile statement with its settings, in one transaction
        settings = list(tiles.tile_settings())
        statements = ["BEGIN", *settings, tiles.tile_sql(get_layer(LAYER), TILE_ZOOM, x, y), "COMMIT"]
    except Exception as exc:  # the hook is the tiles area's; say why the SQL row is missing
        print(f"tile SQL not benchmarked: layers.tiles.tile_sql unavailable ({exc})", file=sys.stderr)
    env = conn.execute("SELECT count(*) FROM caragana_plots WHERE geom && "
                       "ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)", (TILE_ZOOM, x, y)).fetchone()[0]
    return Row(f"tile z{TILE_ZOOM} ({env} parcels)", path,
               f"/collections/public.{LAYER}/tiles/WebMercatorQuad/{TILE_ZOOM}/{x}/{y}", statements)


def _rows(url: sa.URL) -> tuple[list[Row], psycopg.Connection]:
    conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)
    layer = get_layer(LAYER)
    rows = []
    q = ItemsQuery(layer=layer, limit=1000)
    rows.append(Row("items limit=1000", f"/collections/{LAYER}/items?limit=1000",
                    f"/collections/public.{LAYER}/items?limit=1000", _items_statements(conn, q)))
    q = ItemsQuery(layer=layer, limit=10000, bbox=parse_bbox(BBOX))
    n_bbox = len(conn.execute(*items_sql(q)).fetchall())  # ~1 000: one page, no count needed
    rows.append(Row(f"bbox ({n_bbox} features)", f"/collections/{LAYER}/items?limit=10000&bbox={BBOX}",
                    f"/collections/public.{LAYER}/items?limit=10000&bbox={BBOX}", _items_statements(conn, q)))
    fsql, fparams = filter_sql(layer, AREA_FILTER)
    q = ItemsQuery(layer=layer, limit=1000, filter_sql=fsql, filter_params=fparams)
    cql = quote(AREA_FILTER)
    rows.append(Row(f"CQL2 {AREA_FILTER} limit=1000", f"/collections/{LAYER}/items?limit=1000&filter={cql}",
                    f"/collections/public.{LAYER}/items?limit=1000&filter-lang=cql2-text&filter={cql}",
                    _items_statements(conn, q)))
    return rows, conn


def _returned(url: str) -> str:
    """How many features (or bytes, for a tile) the answer holds: both sides answer the same question."""
    res = httpx.get(url, timeout=60)
    if res.headers.get("content-type", "").endswith("json"):
        return str(res.json().get("numberReturned", "?"))
    return f"{len(res.content)} B"


def _hey(url: str, seconds: int, concurrency: int) -> dict:
    for _ in range(5):  # warm up caches and pools
        httpx.get(url, timeout=60)
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-disable-compression",
                          "-t", "60", "-o", "csv", url], capture_output=True, text=True, check=True).stdout
    lines = [line.split(",") for line in out.splitlines()[1:] if line.strip()]
    # response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
    ok = sorted(float(c[0]) * 1000 for c in lines if c[6] == "200")
    errors = len(lines) - len(ok)
    if errors or not ok:
        statuses = sorted({c[6] for c in lines})
        print(f"{url}: {errors} non-200 answers ({statuses})", file=sys.stderr)
    elapsed = max((float(c[7]) + float(c[0]) for c in lines), default=seconds)
    return {"rps": len(ok) / elapsed, "p50": _pct(ok, 50), "p99": _pct(ok, 99), "errors": errors,
            "requests": len(lines)}


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(len(values) * p / 100) - 1))]


def _pgbench(url: sa.URL, statements: list[str], seconds: int, concurrency: int, name: str) -> dict:
    pgbench = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))),
                                               None)
    if pgbench is None:
        raise RuntimeError("pgbench not found: apt-get install postgresql-client")
    DATA.mkdir(parents=True, exist_ok=True)
    script = DATA / f"serve_{name}.sql"
    script.write_text("".join(s + ";\n" for s in statements), encoding="utf-8")
    prefix = DATA / f"pgbench_{name}"
    for old in DATA.glob(f"pgbench_{name}*"):
        old.unlink()
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    cmd = [str(pgbench), "-n", "-h", url.host, "-p", str(url.port), "-U", url.username,
           "-c", str(concurrency), "-j", str(min(concurrency, 2)), "-T", str(seconds), "-f", str(script),
           "-l", f"--log-prefix={prefix}", url.database]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=DATA)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    lat = sorted(int(line.split()[2]) / 1000 for f in DATA.glob(f"pgbench_{name}*") for line in
                 f.read_text().splitlines() if line.strip())
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    return {"rps": tps, "p50": _pct(lat, 50), "p99": _pct(lat, 99), "errors": 0, "requests": len(lat)}


def _median(cells: list[dict]) -> dict:
    """The round with the median rate (its own latencies, so the three figures belong together)."""
    ranked = sorted(cells, key=lambda m: m["rps"])
    return ranked[len(ranked) // 2]


def _fmt(m: dict | None) -> tuple[str, str, str]:
    if not m:
        return "—", "—", "—"
    err = f" ({m['errors']} errors)" if m.get("errors") else ""

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}"
    return f"{m['rps']:.1f}{err}", ms(m["p50"]), ms(m["p99"])


def main(argv: list[str] | None = None) -> None:
    """Run every row against the three and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=6, help="length of one measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per cell, interleaved; median shown")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--parcels", type=int, default=100_000)
    args = ap.parse_args(argv)
    if shutil.which("hey") is None:
        sys.exit("hey is missing: apt-get install hey")
    url = _ensure_database(args.parcels)
    tipg_uvicorn = _ensure_tipg()
    DATA.mkdir(parents=True, exist_ok=True)
    db_text = url.render_as_string(hide_password=False)
    lport, tport = _free_port(), _free_port()
    landeco = _start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                      "--port", str(lport), "--log-level", "warning", "--no-access-log"],
                     {**os.environ, "LANDECO_DATABASE_URL": db_text}, lport, "/collections",
                     DATA / "serve_landeco.log")
    tipg = _start([str(tipg_uvicorn), "tipg.main:app", "--host", "127.0.0.1", "--port", str(tport),
                   "--log-level", "warning", "--no-access-log"],
                  {**os.environ, "DATABASE_URL": url.set(drivername="postgresql").render_as_string(
                      hide_password=False)}, tport, "/collections", DATA / "serve_tipg.log")
    results = []
    try:
        rows, conn = _rows(url)
        tile = _tile_row(f"http://127.0.0.1:{lport}", conn)
        if tile:
            rows.append(tile)
        else:
            print("no tile row: the tile route does not answer yet", file=sys.stderr)
        for i, row in enumerate(rows):
            print(f"{row.name} …", file=sys.stderr)
            lurl, turl = f"http://127.0.0.1:{lport}{row.landeco}", f"http://127.0.0.1:{tport}{row.tipg}"
            row.note = f"{_returned(lurl)} / {_returned(turl)}"
            # rounds interleave the three, so a neighbour's load on the machine hits all alike
            lms, tms, sms = [], [], []
            for _ in range(args.rounds):
                lms.append(_hey(lurl, args.seconds, args.concurrency))
                tms.append(_hey(turl, args.seconds, args.concurrency))
                if row.sql:
                    sms.append(_pgbench(url, row.sql, args.seconds, args.concurrency, f"row{i}"))
            results.append((row, _median(lms), _median(tms), _median(sms) if sms else None))
    finally:
        for proc in (landeco, tipg):
            proc.terminate()
            proc.wait(timeout=10)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\nServing benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {os.cpu_count()} cores ({cpu}), "
          f"{args.parcels} parcels, {args.concurrency} concurrent clients, "
          f"median of {args.rounds} interleaved rounds of {args.seconds} s, "
          f"one uvicorn worker each, tipg {_tipg_version()}, no compression\n")
    print("| request | returned (landeco / tipg) | landeco req/s | p50 ms | p99 ms | tipg req/s | p50 ms "
          "| p99 ms | raw SQL req/s | p50 ms | p99 ms | landeco/tipg | landeco/SQL |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    out = []
    for row, lm, tm, sm in results:
        vs_tipg = f"{lm['rps'] / tm['rps']:.2f}×" if tm and tm["rps"] and not tm["errors"] else "—"
        vs_sql = f"{lm['rps'] / sm['rps']:.0%}" if sm and sm["rps"] else "—"
        cells = [row.name, row.note, *_fmt(lm), *_fmt(tm), *_fmt(sm), vs_tipg, vs_sql]
        print("| " + " | ".join(cells) + " |")
        out.append({"row": row.name, "returned": row.note, "landeco": lm, "tipg": tm, "sql": sm})
    (DATA / "serve.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
