"""Fault drills: the database stopped under load, and the server killed in the middle of a commit.

Usage: python -m bench.faults [--outage 5] [--parcels 20000]

Everything happens on a throwaway PostGIS cluster the script makes in a temporary folder
(:class:`layers.store.cluster.Cluster`, loopback only, removed at the end) holding the plain demo
township, served by one uvicorn worker of landeco on loopback (per-client rate limits off:
the drill's clients share one address).

(a) Database outage: clients keep asking for items, a tile, ``POST /query`` and a map page
while the cluster is stopped (``pg_ctl stop -m fast``) for ``--outage`` seconds and started
again. Reported per route: the statuses seen during the outage (expected: 503 with
``Retry-After``; never a 500 or a hung request) and the recovery time from the cluster
accepting connections again to the first 200, without restarting landeco (target: 5 s).

(b) Crash during a commit: ``--parcels`` generated caragana plots are uploaded and checked,
the commit is started, and the server is killed (SIGKILL) while it writes. After a restart
the upload must show ``interrupted``, the layer must hold what it held before, and a second
commit must add every parcel exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.serve import DATA, _free_port, _start, bench_token
from layers.demo import load_demo
from layers.store.cluster import Cluster
from layers.store.database import create_database, engine_for
from layers.store.migrate import upgrade

LAYER = "caragana_plots"
REQUEST_TIMEOUT_S = 15.0
RECOVERY_TARGET_S = 5.0


@dataclass
class RouteLog:
    """What one route answered, phase by phase."""

    path: str
    method: str = "GET"
    body: dict | None = None
    seen: dict[str, Counter] = field(default_factory=lambda: {"before": Counter(), "outage": Counter(),
                                                               "after": Counter()})
    retry_after: int = 0  # 503 answers during the outage carrying Retry-After
    slowest_outage_s: float = 0.0
    first_ok_after: float | None = None  # monotonic time of the first 200 after the database came back


class Drill:
    """The phase clock shared by the client threads."""

    def __init__(self) -> None:
        self.phase = "before"
        self.up_at: float | None = None
        self.stop = threading.Event()


def _client(base: str, route: RouteLog, drill: Drill) -> None:
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:
        while not drill.stop.is_set():
            phase, start = drill.phase, time.monotonic()
            try:
                res = client.request(route.method, route.path, json=route.body)
                status: int | str = res.status_code
                if status == 503 and "retry-after" in res.headers and phase == "outage":
                    route.retry_after += 1
            except httpx.TimeoutException:
                status = "hung (timeout)"
            except httpx.TransportError as exc:
                status = type(exc).__name__
            end = time.monotonic()
            if phase == "outage":
                route.slowest_outage_s = max(route.slowest_outage_s, end - start)
            ok = isinstance(status, int) and 200 <= status < 300
            if drill.up_at is not None and start >= drill.up_at and ok and route.first_ok_after is None:
                route.first_ok_after = end  # the first success asked for after the database came back
            route.seen[phase][status] += 1  # counted in the phase the request started in
            time.sleep(0.05)


def _serve(url: sa.URL, home: Path, port: int, log: Path) -> subprocess.Popen:
    # the drill's clients share one address: per-client rate limits would answer them 429
    env = {**os.environ, "LANDECO_DATABASE_URL": url.render_as_string(hide_password=False),
           "LANDECO_HOME": str(home), "LANDECO_RATE_LIMIT_PER_MINUTE": "0",
           "LANDECO_TILE_RATE_LIMIT_PER_MINUTE": "0"}
    return _start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", "--no-access-log"],
                  env, port, "/health", log)


def outage(cluster: Cluster, base: str, village: str, tile: str,
           seconds: float) -> tuple[list[RouteLog], float]:
    """(a): stop the database under clients, start it again, watch each route come back."""
    routes = [RouteLog(f"/collections/{LAYER}/items?limit=50"),
              RouteLog(tile),
              RouteLog("/query", "POST", {"layers": [LAYER], "place": {"villages": [village]}, "limit": 50}),
              RouteLog(f"/maps/{LAYER}"),
              RouteLog("/health")]
    drill = Drill()
    threads = [threading.Thread(target=_client, args=(base, r, drill), daemon=True) for r in routes]
    for t in threads:
        t.start()
    time.sleep(3)
    drill.phase = "outage"
    cluster.stop()  # pg_ctl stop -m fast -w
    time.sleep(seconds)
    cluster.start()  # returns once the server accepts connections
    drill.up_at = time.monotonic()
    drill.phase = "after"
    deadline = drill.up_at + 30
    while time.monotonic() < deadline and any(r.first_ok_after is None for r in routes):
        time.sleep(0.05)
    time.sleep(1)
    drill.stop.set()
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT_S + 5)
    return routes, drill.up_at


def _tile_path(lon: float, lat: float, z: int) -> str:
    """The WebMercatorQuad tile of the layer holding (lon, lat): one with parcels in it."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"


def _grid_geojson(target: Path, n: int, origin: tuple[float, float]) -> Path:
    """``n`` adjacent ~18 m plots in lon/lat rows with unique codes (``FLT-…``)."""
    side = int(n**0.5) + 1
    step = 0.0002
    x0, y0 = origin
    features = []
    for i in range(n):
        x, y = x0 + (i % side) * step, y0 + (i // side) * step
        features.append({"type": "Feature",
                         "properties": {"code": f"FLT-{i:06d}", "planted_year": 2020, "method": "enclosure"},
                         "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + step, y],
                                                                          [x + step, y + step], [x, y + step],
                                                                          [x, y]]]}})
    target.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return target


def _counts(engine: sa.Engine) -> tuple[int, int, int]:
    """Rows in the layer, generated rows, and generated rows beyond their distinct codes."""
    with engine.connect() as conn:
        total = conn.scalar(sa.text(f"SELECT count(*) FROM {LAYER}"))
        mine, dup = conn.execute(sa.text(f"SELECT count(*), count(*) - count(DISTINCT code) FROM {LAYER} "
                                         "WHERE code LIKE 'FLT-%'")).one()
    return total, mine, dup


def crash(url: sa.URL, home: Path, port: int, n: int, work: Path) -> dict:
    """(b): kill the server while it commits a large upload; restart; commit again."""
    engine = engine_for(url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        east, north = conn.execute(sa.text(f"SELECT ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
                                           f"FROM {LAYER}) s")).one()
    source = _grid_geojson(work / "grid.geojson", n, (float(east) + 0.01, float(north) + 0.01))
    base = f"http://127.0.0.1:{port}"
    result: dict = {"parcels": n}
    auth = {"Authorization": f"Bearer {bench_token(url)}"}  # uploads and commits need a surveyor
    server = _serve(url, home, port, DATA / "faults_server.log")
    try:
        with source.open("rb") as fh:
            res = httpx.post(f"{base}/uploads", files={"file": ("grid.geojson", fh)}, data={"layer": LAYER},
                             timeout=600, headers=auth)
        if res.status_code != 201 or not res.json()["report"].get("can_commit"):
            raise RuntimeError(f"the generated upload was refused: {res.status_code} {res.text[:500]}")
        upload_id = res.json()["id"]
        result["before"] = _counts(engine)
        committing = threading.Thread(target=lambda: _quiet_post(f"{base}/uploads/{upload_id}/commit", auth),
                                      daemon=True)
        committing.start()
        state = {}
        for _ in range(6000):
            state = httpx.get(f"{base}/uploads/{upload_id}", timeout=30, headers=auth).json()
            # at 80 % the rows are COPYed into the layer, uncommitted; the checks and commit follow
            if state["state"] == "committing" and 80 <= state["percentage"] < 100:
                break
            time.sleep(0.02)
        result["killed_at"] = f"{state['state']} {state.get('stage')} {state['percentage']} %"
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        committing.join(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    for _ in range(200):  # PostgreSQL rolls back the killed connection's transaction
        with engine.connect() as conn:
            busy = conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE "
                                       "datname = current_database() AND pid <> pg_backend_pid() "
                                       "AND state <> 'idle'"))
        if not busy:
            break
        time.sleep(0.1)
    result["after_kill"] = _counts(engine)
    server = _serve(url, home, port, DATA / "faults_server2.log")
    try:
        result["state_after_restart"] = httpx.get(f"{base}/uploads/{upload_id}", timeout=30,
                                                  headers=auth).json()["state"]
        res = httpx.post(f"{base}/uploads/{upload_id}/commit", timeout=600, headers=auth)
        result["second_commit"] = f"{res.status_code} {res.json().get('state', res.json().get('code'))}"
        result["after_commit"] = _counts(engine)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return result


def _quiet_post(url: str, headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server is killed under it, as intended
        httpx.post(url, timeout=600, headers=headers)


def _status_list(counter: Counter) -> str:
    return ", ".join(f"{s}×{n}" for s, n in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "—"


def main(argv: list[str] | None = None) -> None:
    """Make the throwaway cluster, run both drills, print the tables, remove the cluster."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, default=5, help="seconds the database stays stopped")
    ap.add_argument("--parcels", type=int, default=20_000, help="size of the upload killed mid-commit")
    args = ap.parse_args(argv)
    DATA.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="landeco-faults-"))
    cluster = Cluster(root)  # chowned to postgres when we are root; removed below
    try:
        print("throwaway cluster and the demo township …", file=sys.stderr)
        info = cluster.start()
        url = sa.engine.make_url(info.url("landeco_faults"))
        create_database(url)
        upgrade(url)
        load_demo(url)
        with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
            village = conn.scalar(sa.text("SELECT code FROM villages ORDER BY code LIMIT 1"))
            lon, lat = conn.execute(sa.text(f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) c "
                                            f"FROM {LAYER} ORDER BY id LIMIT 1) s")).one()
        tile = _tile_path(float(lon), float(lat), 13)
        home = Path(tempfile.mkdtemp(prefix="landeco-faults-home-"))
        port = _free_port()
        server = _serve(url, home, port, DATA / "faults_outage_server.log")
        try:
            print(f"(a) stopping the database for {args.outage:.0f} s under clients …", file=sys.stderr)
            routes, up_at = outage(cluster, f"http://127.0.0.1:{port}", village, tile, args.outage)
        finally:
            server.terminate()
            server.wait(timeout=30)
        engine_for(url.render_as_string(hide_password=False)).dispose()  # its connections died with the stop
        print(f"(b) killing the server while it commits {args.parcels} parcels …", file=sys.stderr)
        crashed = crash(url, home, port, args.parcels, root)
        shutil.rmtree(home, ignore_errors=True)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nFault drills, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {os.cpu_count()} cores (shared), "
          f"throwaway cluster with the demo township, one uvicorn worker, landeco not restarted in (a)\n")
    print(f"(a) database stopped for {args.outage:.0f} s (pg_ctl stop -m fast) and started again; "
          "'during' counts requests started from the stop command until the database accepts "
          "connections again (a few were answered before it went down); recovery is from then to "
          "the end of the first success asked for afterwards\n")
    print("| route | during the outage | 503 with Retry-After | slowest answer in the outage | "
          "recovery after the database is up | after |")
    print("|---|---|---:|---:|---:|---|")
    for r in routes:
        name = f"{r.method} {r.path.split('?')[0]}"
        rec = (f"{r.first_ok_after - up_at:.2f} s" if r.first_ok_after is not None
               else "no 2xx within 30 s")
        print(f"| {name} | {_status_list(r.seen['outage'])} | {r.retry_after} | {r.slowest_outage_s:.2f} s | "
              f"{rec} | {_status_list(r.seen['after'])} |")
    bad = [r for r in routes if any(s == 500 or not isinstance(s, int) for s in r.seen["outage"])]
    bad_names = ", ".join(f"{r.method} {r.path.split('?')[0]}" for r in bad)
    retry = all(r.retry_after == r.seen["outage"][503] for r in routes)
    recovered = all(r.first_ok_after and r.first_ok_after - up_at <= RECOVERY_TARGET_S for r in routes)
    print(f"\ntargets: no 500 and no hung request — {'met' if not bad else 'NOT met: ' + bad_names}; "
          f"every 503 with Retry-After — {'met' if retry else 'NOT met'}; "
          f"recovery within {RECOVERY_TARGET_S:.0f} s — {'met' if recovered else 'NOT met'}")
    before, after_kill, after_commit = crashed["before"], crashed["after_kill"], crashed["after_commit"]
    n = crashed["parcels"]
    print(f"\n(b) server killed (SIGKILL) while committing {n} parcels\n")
    print("| moment | rows in the layer | generated rows | duplicated codes |")
    print("|---|---:|---:|---:|")
    print(f"| before the commit | {before[0]} | {before[1]} | {before[2]} |")
    print(f"| after the kill (at {crashed['killed_at']}) | {after_kill[0]} | {after_kill[1]} "
          f"| {after_kill[2]} |")
    print(f"| after restart ({crashed['state_after_restart']}) and a second commit "
          f"({crashed['second_commit']}) | {after_commit[0]} | {after_commit[1]} | {after_commit[2]} |")
    lost = after_kill != before or after_commit[0] != before[0] + n or after_commit[1] != n
    print(f"\nnothing lost or duplicated — {'NOT met' if lost or after_commit[2] else 'met'}; "
          f"shown as interrupted — {'met' if crashed['state_after_restart'] == 'interrupted' else 'NOT met'}")


if __name__ == "__main__":
    main()
