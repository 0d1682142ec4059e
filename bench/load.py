"""Load test: many concurrent clients on a mix of landeco's routes; errors and p99 per kind.

Usage: python -m bench.load [--clients 50] [--seconds 60] [--parcels 100000]

Starts one uvicorn worker of landeco on loopback over ``landeco_bench_<N>`` (built by
``bench.demo_load`` when missing, as ``bench.serve`` does), with the access log on (as
``landeco serve`` runs it; the lines go to ``bench/data/load_server.log``). Then
``--clients`` asyncio clients (httpx, one process, gzip accepted as a browser would) loop for
``--seconds`` over a weighted mix: items pages, bbox queries, vector tiles at z10–z14,
``POST /query`` by area range and by village, and ``POST /uploads`` of a small GeoJSON
(checked, never committed: the benchmark database does not change). Every request has a
30 s timeout and no request starts after the deadline. Targets: 0 errors, p99 under 1 s.
The per-client rate limits are off: the clients stand for many users but share one address.
The clients share the machine with the server, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.serve import DATA, _ensure_database, _free_port, _pct, _start, bench_token
from layers.settings import Settings
from layers.store.database import engine_for

LAYER = "caragana_plots"
#: Kind of request -> share of the mix.
MIX = {"items": 25, "bbox": 20, "tile": 25, "query_area": 10, "query_village": 10, "upload": 10}
ZOOMS = (10, 11, 12, 13, 14)
TIMEOUT_S = 30.0
P99_TARGET_MS = 1000.0


@dataclass
class Plan:
    """What the clients may ask: the layer's extent and the villages' codes."""

    extent: tuple[float, float, float, float]
    villages: list[str]
    upload: bytes = b""


@dataclass
class Tally:
    """Latencies and statuses of one kind of request."""

    ok_ms: list[float] = field(default_factory=list)
    all_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if not (isinstance(s, int) and 200 <= s < 300))


def _plan(url: sa.URL) -> Plan:
    engine = engine_for(url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        box = conn.execute(sa.text(f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                   f"(SELECT ST_Extent(geom) AS e FROM {LAYER}) s")).one()
        villages = list(conn.scalars(sa.text("SELECT code FROM villages ORDER BY code")))
    west, south, east, north = map(float, box)
    # three small plots just outside the layer: the check reads, reprojects and validates them
    x0, y0 = east + 0.01, north + 0.01
    features = [{"type": "Feature",
                 "properties": {"code": f"LOAD-{i}", "planted_year": 2021, "method": "enclosure"},
                 "geometry": {"type": "Polygon", "coordinates": [[
                     [x0 + i * 0.002, y0], [x0 + i * 0.002 + 0.001, y0], [x0 + i * 0.002 + 0.001, y0 + 0.001],
                     [x0 + i * 0.002, y0 + 0.001], [x0 + i * 0.002, y0]]]}} for i in range(3)]
    upload = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    return Plan((west, south, east, north), villages, upload)


def _tile(plan: Plan, rnd: random.Random) -> str:
    west, south, east, north = plan.extent
    lon, lat, z = rnd.uniform(west, east), rnd.uniform(south, north), rnd.choice(ZOOMS)
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"


def _bbox(plan: Plan, rnd: random.Random) -> str:
    west, south, east, north = plan.extent
    size = 0.02  # ~2 km: a few hundred parcels of the 100 000 fabric
    lon, lat = rnd.uniform(west, east - size), rnd.uniform(south, north - size)
    return f"/collections/{LAYER}/items?limit=1000&bbox={lon:.4f},{lat:.4f},{lon + size:.4f},{lat + size:.4f}"


async def _one(client: httpx.AsyncClient, kind: str, plan: Plan, rnd: random.Random) -> httpx.Response:
    if kind == "items":
        return await client.get(f"/collections/{LAYER}/items?limit=100&offset={rnd.randrange(0, 5000, 100)}")
    if kind == "bbox":
        return await client.get(_bbox(plan, rnd))
    if kind == "tile":
        return await client.get(_tile(plan, rnd))
    if kind == "query_area":
        low = rnd.choice((5, 10, 20, 30))
        return await client.post("/query", json={"layers": [LAYER], "area": {"min": low, "max": low + 5,
                                                                             "unit": "mu"}, "limit": 100})
    if kind == "query_village":
        return await client.post("/query", json={"layers": [LAYER], "place": {"villages": [
            rnd.choice(plan.villages)]}, "limit": 100})
    if kind == "upload":
        return await client.post("/uploads", files={"file": ("plots.geojson", plan.upload)},
                                 data={"layer": LAYER})
    raise ValueError(kind)


async def _client(base: str, plan: Plan, deadline: float, seed: int, tallies: dict[str, Tally],
                  client: httpx.AsyncClient) -> None:
    rnd = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    while time.monotonic() < deadline:
        kind = rnd.choices(kinds, weights)[0]
        start = time.perf_counter()
        try:
            res = await _one(client, kind, plan, rnd)
            await res.aread()
            status: int | str = res.status_code
        except httpx.TimeoutException:
            status = "timeout"
        except httpx.TransportError as exc:
            status = type(exc).__name__
        ms = (time.perf_counter() - start) * 1000
        tally = tallies[kind]
        tally.statuses[status] += 1
        tally.all_ms.append(ms)
        if isinstance(status, int) and 200 <= status < 300:
            tally.ok_ms.append(ms)


async def _run(base: str, plan: Plan, clients: int, seconds: float,
               headers: dict[str, str]) -> tuple[dict[str, Tally], float]:
    tallies: dict[str, Tally] = defaultdict(Tally)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S, limits=limits, headers=headers) as client:
        start = time.monotonic()
        deadline = start + seconds
        await asyncio.gather(*(_client(base, plan, deadline, i, tallies, client) for i in range(clients)))
        elapsed = time.monotonic() - start
    return tallies, elapsed


def _row(name: str, t: Tally, elapsed: float) -> str:
    n = sum(t.statuses.values())
    p50, p99 = _pct(sorted(t.all_ms), 50), _pct(sorted(t.all_ms), 99)
    bad = {str(s): c for s, c in sorted(t.statuses.items(), key=str) if not (isinstance(s, int) and s < 300)}
    listed = ", ".join(f"{s}×{c}" for s, c in bad.items()) or "—"
    return (f"| {name} | {n} | {n / elapsed:.1f} | {p50 or 0:.0f} | {p99 or 0:.0f} | {t.errors} | {listed} |")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live children so far (Linux ``/proc``)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # the server, or a worker it forked
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _database_cpu_seconds() -> float | None:
    """CPU seconds of the private cluster's processes (postmaster and children), when it is local."""
    settings = Settings()
    pidfile = Path(settings.home) / "pg" / "postmaster.pid"
    if settings.database_url or not pidfile.exists():
        return None
    postmaster = pidfile.read_text().split()[0]
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == postmaster or stat.parent.name == postmaster:
                total += _cpu_seconds(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def main(argv: list[str] | None = None) -> None:
    """Start landeco, load it, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients")
    ap.add_argument("--seconds", type=float, default=60, help="length of the run")
    ap.add_argument("--parcels", type=int, default=100_000, help="size of the benchmark layer")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = ap.parse_args(argv)
    url = _ensure_database(args.parcels)
    plan = _plan(url)
    DATA.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="landeco-load-") as home:
        # the clients are many users on one address: per-client rate limits would answer them 429
        env = {**os.environ, "LANDECO_DATABASE_URL": url.render_as_string(hide_password=False),
               "LANDECO_HOME": home, "LANDECO_RATE_LIMIT_PER_MINUTE": "0",
               "LANDECO_TILE_RATE_LIMIT_PER_MINUTE": "0"}
        cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--no-access-log", "--workers", str(args.workers)]
        server = _start(cmd, env, port, "/health", DATA / "load_server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            for path in ("/collections/caragana_plots/items?limit=100", _tile(plan, random.Random(0))):
                httpx.get(base + path, timeout=60)  # warm the pool and the caches
            print(f"{args.clients} clients for {args.seconds:.0f} s …", file=sys.stderr)
            db_cpu_start = _database_cpu_seconds()
            tallies, elapsed = asyncio.run(_run(base, plan, args.clients, args.seconds,
                                                    {"Authorization": f"Bearer {bench_token(url)}"}))
            pool = [line for line in httpx.get(base + "/metrics", timeout=30).text.splitlines()
                    if line.startswith("landeco_db_pool_")]
            server_cpu = _cpu_seconds(server.pid)
            db_cpu_end = _database_cpu_seconds()
        finally:
            server.terminate()
            server.wait(timeout=30)
    total = Tally()
    for t in tallies.values():
        total.all_ms += t.all_ms
        total.ok_ms += t.ok_ms
        total.statuses.update(t.statuses)
    print(f"\nLoad test, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {os.cpu_count()} cores (shared), "
          f"{args.parcels} parcels, {args.clients} concurrent clients for {elapsed:.0f} s, "
          f"{args.workers} uvicorn worker(s), access log on, gzip accepted\n")
    print("| kind | requests | req/s | p50 ms | p99 ms | errors | error statuses |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for kind in MIX:
        if kind in tallies:
            print(_row(kind, tallies[kind], elapsed))
    print(_row("**total**", total, elapsed))
    p99 = _pct(sorted(total.all_ms), 99) or 0
    print(f"\ntargets: 0 errors — {'met' if total.errors == 0 else f'NOT met ({total.errors})'}; "
          f"p99 under {P99_TARGET_MS:.0f} ms — {'met' if p99 < P99_TARGET_MS else f'NOT met ({p99:.0f} ms)'}")
    print("pool after the run: " + "; ".join(pool))
    client_cpu = resource.getrusage(resource.RUSAGE_SELF)
    db_cpu = "?" if db_cpu_start is None or db_cpu_end is None else f"{db_cpu_end - db_cpu_start:.0f} s"
    print(f"CPU: landeco (uvicorn) {server_cpu:.0f} s, PostgreSQL {db_cpu}, clients "
          f"{client_cpu.ru_utime + client_cpu.ru_stime:.0f} s, for {elapsed:.0f} s of load on "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end")
    (DATA / "load.json").write_text(json.dumps({k: {"statuses": {str(s): c for s, c in t.statuses.items()},
                                                    "p50": _pct(sorted(t.all_ms), 50),
                                                    "p99": _pct(sorted(t.all_ms), 99)}
                                                for k, t in tallies.items()}, indent=2))


if __name__ == "__main__":
    main()
