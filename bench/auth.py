"""What a bearer token costs: items and a vector tile, anonymous against with a token, same run.

Usage: python -m bench.auth [--seconds 5] [--rounds 3] [--concurrency 8]

Starts one uvicorn worker of landeco on loopback over the configured database (the demo
township: ``landeco demo``), with rate limits and the access log off. A throwaway account
``bench-auth`` gets a token. Then ``hey`` loads each request anonymously and with
``Authorization: Bearer …``, alternating, ``--rounds`` times (the machine is shared: the
alternation spreads its noise over both sides); the medians are compared. A token costs one
indexed SELECT on a pooled connection (and a write at most once a minute). Target: at most
5 % fewer requests per second with the token. The account is removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.serve import _free_port, _pct, _start
from layers import accounts
from layers.settings import Settings
from layers.store.database import database_url, engine_for

LAYER = "caragana_plots"
USER = "bench-auth"
TARGET = 0.05
DATA = Path(__file__).resolve().parent / "data"


def _tile(engine: sa.Engine, z: int = 12) -> tuple[int, int, int]:
    """The WebMercatorQuad tile at zoom ``z`` holding the layer's first plot (never an empty tile)."""
    with engine.connect() as conn:
        lon, lat = conn.execute(sa.text(f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) "
                                        f"AS c FROM {LAYER} ORDER BY id LIMIT 1) s")).one()
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    settings = Settings()
    url = database_url(settings).render_as_string(hide_password=False)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users WHERE name = :n"), {"n": USER})
    accounts.add_user(engine=engine, name=USER, roles=["viewer"], password=accounts.generate_password())
    _, token = accounts.create_token(engine=engine, name=USER, label="bench.auth")
    z, x, y = _tile(engine)
    routes = {"items": f"/collections/{LAYER}/items?limit=10",
              "tile": f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"}

    port = _free_port()
    env = {**os.environ, "LANDECO_DATABASE_URL": url, "LANDECO_RATE_LIMIT_PER_MINUTE": "0",
           "LANDECO_TILE_RATE_LIMIT_PER_MINUTE": "0", "LANDECO_ACCESS_LOG": "false"}
    DATA.mkdir(exist_ok=True)
    server = _start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port",
                     str(port), "--log-level", "warning"], env, port, "/health", DATA / "auth_server.log")
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        for _ in range(args.rounds):
            for name, path in routes.items():
                for mode in ("anonymous", "token"):
                    out = _hey_with(f"http://127.0.0.1:{port}{path}", args.seconds, args.concurrency,
                                    token if mode == "token" else None)
                    results.setdefault((name, mode), []).append(out)
    finally:
        server.terminate()
        server.wait(timeout=30)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM users WHERE name = :n"), {"n": USER})

    print(f"{'route':<7} {'mode':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    worst = -1.0
    for name in routes:
        rps = {}
        for mode in ("anonymous", "token"):
            cells = results[(name, mode)]
            rps[mode] = statistics.median(c["rps"] for c in cells)
            p50 = statistics.median(c["p50"] or 0 for c in cells)
            p99 = statistics.median(c["p99"] or 0 for c in cells)
            errors = sum(c["errors"] for c in cells)
            print(f"{name:<7} {mode:<10} {rps[mode]:>8.1f} {p50:>8.1f} {p99:>8.1f} {errors:>7}")
        cost = 1 - rps["token"] / rps["anonymous"]
        worst = max(worst, cost)
        print(f"{name:<7} cost of the token: {cost * 100:+.1f} % of requests per second")
    verdict = "within" if worst <= TARGET else "OVER"
    print(f"worst cost {worst * 100:+.1f} %: {verdict} the {TARGET * 100:.0f} % target")


def _hey_with(url: str, seconds: int, concurrency: int, token: str | None) -> dict:
    """``hey`` on ``url`` (with the token's header when given): requests per second, p50, p99, errors."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(5):  # warm up caches and pools
        httpx.get(url, headers=headers, timeout=60)
    extra = ["-H", f"Authorization: Bearer {token}"] if token else []
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-disable-compression",
                          "-t", "60", *extra, "-o", "csv", url],
                         capture_output=True, text=True, check=True).stdout
    lines = [line.split(",") for line in out.splitlines()[1:] if line.strip()]
    ok = sorted(float(c[0]) * 1000 for c in lines if c[6] == "200")
    elapsed = max((float(c[7]) + float(c[0]) for c in lines), default=seconds)
    return {"rps": len(ok) / elapsed, "p50": _pct(ok, 50), "p99": _pct(ok, 99),
            "errors": len(lines) - len(ok)}


if __name__ == "__main__":
    main()
