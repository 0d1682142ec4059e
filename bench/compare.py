"""Before/after benchmark: two checkouts of landeco served side by side on the same database.

Usage: python -m bench.compare --before REV_OR_PATH [--after PATH] [--seconds 6] [--rounds 3]
                               [--concurrency 4] [--parcels 100000] [--no-access-log]

For the rule "a change on a hot path is benchmarked before and after": ``--before`` is a
checkout folder or a git revision (exported with ``git archive`` into ``bench/data/``),
``--after`` a checkout folder (default: this one). Both are served by this venv's Python
(the same libraries, so only the code differs) with ``PYTHONPATH`` and the working folder
set to the checkout; each server's ``api`` package is checked to come from its checkout
(a revision that needs libraries this venv lacks will not start).
Both use the same benchmark database ``landeco_bench_<N>`` (built by ``bench.demo_load``
if missing) through one uvicorn worker each, and ``hey`` loads them with the same requests,
before and after alternating within each round (and swapping which goes first) so that a
neighbour's load on the machine hits both alike. The median round is shown, and "paired",
the median of each round's after/before ratio (each after against the before run beside it).

Settings are production's except the rate limits, which are off (a benchmark client is
one address): the access log is on as ``landeco serve`` runs it (uvicorn's own line for a
checkout without landeco's JSON access log, landeco's JSON line and uvicorn's off for one
with it), written to ``bench/data/compare_*.log``. ``--no-access-log`` turns both off.
Compression is off (``hey -disable-compression``): this measures serving.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.serve import AREA_FILTER, BBOX, DATA, LAYER, TILE_ZOOM, _ensure_database, _free_port, _median, _pct

ROOT = Path(__file__).resolve().parent.parent
#: An area range for ``POST /query``: 45–50 亩 holds about a thousand parcels of 100 000
QUERY_BODY = {"layers": [LAYER], "area": {"min": 45, "max": 50, "unit": "mu"}}


@dataclass
class Request:
    """One request both servers answer: a path, and a JSON body for a POST."""

    name: str
    path: str
    body: dict | None = None


@dataclass
class Server:
    """One checkout served by uvicorn."""

    label: str
    checkout: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    has_json_log: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _tile_path() -> str:
    """The z13 WebMercatorQuad tile at the fabric's centre (as in bench.serve)."""
    import math
    lon, lat = 107.15, 38.18
    n = 2 ** TILE_ZOOM
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/collections/{LAYER}/tiles/WebMercatorQuad/{TILE_ZOOM}/{x}/{y}"


def requests() -> list[Request]:
    """The benchmark's requests: the serving ones of bench.serve and ``POST /query``."""
    return [
        # a small answer: the fixed cost of a request (middlewares, routing, one statement) shows most
        Request("items limit=1", f"/collections/{LAYER}/items?limit=1"),
        Request("items limit=1000", f"/collections/{LAYER}/items?limit=1000"),
        Request("bbox (~1000 parcels)", f"/collections/{LAYER}/items?limit=10000&bbox={BBOX}"),
        Request(f"CQL2 {AREA_FILTER} limit=1000",
                f"/collections/{LAYER}/items?limit=1000&filter={quote(AREA_FILTER)}"),
        Request(f"tile z{TILE_ZOOM}", _tile_path()),
        Request("POST /query area 45–50 亩", "/query", QUERY_BODY),
    ]


def _checkout(spec: str) -> Path:
    """A folder as given, or a git revision of this repository exported into bench/data/."""
    path = Path(spec)
    if path.is_dir():
        return path.resolve()
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{spec}^{{commit}}"],
                         capture_output=True, text=True)
    if sha.returncode != 0:
        sys.exit(f"--before {spec}: neither a folder nor a git revision")
    target = DATA / f"compare-{sha.stdout.strip()[:12]}"
    if not (target / "api").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha.stdout.strip()],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target.resolve()


def _env(server: Server, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDECO_")}
    env.update({
        "PYTHONPATH": str(server.checkout),
        "LANDECO_DATABASE_URL": db_url,
        # each checkout's own private home, never the other's (the URL above is used, not the cluster)
        "LANDECO_HOME": str(server.checkout / ".landeco"),
        # a benchmark is one client address: the per-client rate limits would measure themselves
        "LANDECO_RATE_LIMIT_PER_MINUTE": "0",
        "LANDECO_TILE_RATE_LIMIT_PER_MINUTE": "0",
        "LANDECO_ALLOWED_HOSTS": "127.0.0.1",
    })
    return env


def _imported_from(server: Server, env: dict[str, str]) -> Path:
    """Where the server's Python finds ``api`` and ``layers``: it must be the checkout."""
    code = "import api, layers; print(api.__file__); print(layers.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=server.checkout,
                         capture_output=True, text=True, check=True)
    paths = [Path(p).resolve() for p in out.stdout.split()]
    for p in paths:
        if server.checkout not in p.parents:
            sys.exit(f"{server.label}: {p} imported, not from {server.checkout}")
    return paths[0].parent


def _start(server: Server, db_url: str, access_log: bool) -> None:
    env = _env(server, db_url)
    _imported_from(server, env)
    server.has_json_log = (server.checkout / "api" / "observability.py").exists()
    env["LANDECO_ACCESS_LOG"] = "true" if access_log else "false"
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--log-level", "info"]
    if server.has_json_log or not access_log:
        cmd.append("--no-access-log")  # as `landeco serve` runs it: landeco writes its own line
    server.notes.append("landeco JSON access log" if server.has_json_log and access_log else
                        "uvicorn access log" if access_log else "no access log")
    server.port = _free_port()
    cmd += ["--port", str(server.port)]
    log = DATA / f"compare_{server.label}.log"
    with log.open("w") as out:
        server.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=server.checkout)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited; see {log}")
        try:
            if httpx.get(server.base + "/collections", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{server.label} did not answer; see {log}")


def _ask(server: Server, req: Request) -> httpx.Response:
    if req.body is None:
        return httpx.get(server.base + req.path, timeout=120)
    return httpx.post(server.base + req.path, json=req.body, timeout=120)


def _returned(res: httpx.Response) -> str:
    """Features and bytes of one answer, to show both sides answer the same question."""
    if res.status_code != 200:
        return f"HTTP {res.status_code}"
    size = f"{len(res.content) / 1024:.0f} KB"
    if "json" in res.headers.get("content-type", ""):
        doc = res.json()
        n = doc.get("numberReturned", len(doc.get("features", [])))
        return f"{n} / {size}"
    return size


def _hey(server: Server, req: Request, seconds: int, concurrency: int, body_file: Path | None) -> dict:
    for _ in range(3):  # warm up caches and pools
        _ask(server, req)
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-disable-compression", "-t", "60",
           "-o", "csv"]
    if req.body is not None:
        cmd += ["-m", "POST", "-D", str(body_file), "-T", "application/json"]
    out = subprocess.run([*cmd, server.base + req.path], capture_output=True, text=True, check=True).stdout
    lines = [line.split(",") for line in out.splitlines()[1:] if line.strip()]
    # response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
    ok = sorted(float(c[0]) * 1000 for c in lines if c[6] == "200")
    errors = len(lines) - len(ok)
    if errors or not ok:
        print(f"{server.label} {req.name}: {errors} non-200 answers ({sorted({c[6] for c in lines})})",
              file=sys.stderr)
    elapsed = max((float(c[7]) + float(c[0]) for c in lines), default=seconds)
    return {"rps": len(ok) / elapsed, "p50": _pct(ok, 50), "p99": _pct(ok, 99), "errors": errors,
            "requests": len(lines)}


def _probe(server: Server, path: str) -> int:
    try:
        return httpx.get(server.base + path, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def _cells(m: dict) -> list[str]:
    err = f" ({m['errors']} errors)" if m["errors"] else ""
    return [f"{m['rps']:.1f}{err}", f"{m['p50']:.1f}" if m["p50"] is not None else "—",
            f"{m['p99']:.1f}" if m["p99"] is not None else "—"]


def main(argv: list[str] | None = None) -> None:
    """Serve both checkouts, load each request in alternating rounds, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="checkout folder or git revision")
    ap.add_argument("--after", default=str(ROOT), help="checkout folder (default: this one)")
    ap.add_argument("--seconds", type=int, default=6, help="length of one measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per cell, alternating; median shown")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--no-access-log", action="store_true", help="both servers without an access log")
    args = ap.parse_args(argv)
    if shutil.which("hey") is None:
        sys.exit("hey is missing: apt-get install hey")
    DATA.mkdir(parents=True, exist_ok=True)
    db_url = _ensure_database(args.parcels).render_as_string(hide_password=False)
    before = Server("before", _checkout(args.before))
    after = Server("after", Path(args.after).resolve())
    servers = (before, after)
    load_start = os.getloadavg()
    results = []
    try:
        for s in servers:
            _start(s, db_url, not args.no_access_log)
            s.notes.append(f"/metrics {_probe(s, '/metrics')}")
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=DATA, delete=False) as f:
            json.dump(QUERY_BODY, f)
            body_file = Path(f.name)
        for req in requests():
            print(f"{req.name} …", file=sys.stderr, flush=True)
            returned = [_returned(_ask(s, req)) for s in servers]
            cells: dict[str, list[dict]] = {"before": [], "after": []}
            for r in range(args.rounds):
                order = servers if r % 2 == 0 else servers[::-1]  # who goes first alternates too
                for s in order:
                    cells[s.label].append(_hey(s, req, args.seconds, args.concurrency, body_file))
            results.append((req, returned, cells))
        body_file.unlink()
    finally:
        for s in servers:
            if s.proc is not None:
                s.proc.terminate()
                s.proc.wait(timeout=15)
    load_end = os.getloadavg()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\nBefore/after, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {os.cpu_count()} cores ({cpu}), "
          f"{args.parcels} parcels (one database for both), {args.concurrency} concurrent clients, "
          f"median of {args.rounds} alternating rounds of {args.seconds} s, one uvicorn worker each, "
          f"no compression; load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end")
    for s in servers:
        print(f"{s.label}: {s.checkout} ({_describe(s.checkout)}); {', '.join(s.notes)}")
    print("\n| request | returned (before / after) | before req/s | p50 ms | p99 ms | after req/s | p50 ms "
          "| p99 ms | after/before | paired | rounds req/s (before; after) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    out = []
    for req, returned, cells in results:
        b, a = _median(cells["before"]), _median(cells["after"])
        ratio = f"{a['rps'] / b['rps']:.2f}" if b["rps"] else "—"
        # each round's after against the before measured next to it, the median of those
        pairs = sorted(x["rps"] / y["rps"] for x, y in zip(cells["after"], cells["before"], strict=True)
                       if y["rps"])
        paired = f"{pairs[len(pairs) // 2]:.2f}" if pairs else "—"
        spread = "; ".join(" ".join(f"{m['rps']:.0f}" for m in cells[k]) for k in ("before", "after"))
        cells_out = [req.name, " — ".join(returned), *_cells(b), *_cells(a), ratio, paired, spread]
        print("| " + " | ".join(cells_out) + " |")
        out.append({"request": req.name, "returned": returned, "before": cells["before"],
                    "after": cells["after"], "ratio": a["rps"] / b["rps"] if b["rps"] else None})
    (DATA / "compare.json").write_text(json.dumps(out, indent=2, ensure_ascii=False))


def _describe(checkout: Path) -> str:
    """The checkout's commit, when it is a git work tree of its own (not an exported revision)."""
    top = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True).stdout.strip()
    if not top or Path(top).resolve() != checkout:
        return "exported revision"
    out = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h"],
                         capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" + uncommitted changes" if dirty else "")


if __name__ == "__main__":
    main()
