"""How fast a big layer's map opens: page size and time until its vector tiles are drawn.

Usage: python -m bench.maps [N ...]   (default: 100000; needs ``landeco_bench_<N>``,
made by ``python -m bench.demo_load N``)

Serves landeco with uvicorn over the benchmark database and opens maps in headless
Chromium (Debian's), with no basemap so that only landeco is measured. Target for the
100 000-parcel layer: HTML < 2 MB, tiles drawn < 3 s after navigation starts.

Then the printed maps (PNG/PDF, matplotlib): the time to answer each print URL and its
size, status kept so that a route that does not exist yet (before a change) shows as 404.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from api.app import create_app
from bench.demo_load import bench_url
from layers.settings import Settings

PAGES = ("/maps/caragana_plots?basemap=none", "/maps?basemap=none")
#: printed maps: a small layer, the big layer whole, the overview, a village, the screen's print
PRINTS = ("/maps/subsidence_zones.pdf", "/maps/caragana_plots.png", "/maps.pdf",
          "/maps/villages/{village}.pdf",
          "/maps.png?bbox=107.05,38.05,107.25,38.2&layers=villages,caragana_plots,land_leases")
REPEAT = 3


def _serve(n: int) -> tuple[uvicorn.Server, str]:
    settings = Settings(database_url=bench_url(n).render_as_string(hide_password=False),
                        home=Path(tempfile.mkdtemp()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _measure(browser, url: str) -> dict:
    # the pages' CSP forbids eval, which Playwright's wait_for_function needs
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    tiles = {"n": 0, "bytes": 0, "failed": 0}

    def on_finished(request):
        if "/tiles/" in request.url:
            tiles["n"] += 1
            response = request.response()
            if response is None or response.status not in (200, 204):  # 204: an empty tile
                tiles["failed"] += 1
            tiles["bytes"] += request.sizes()["responseBodySize"]

    page.on("requestfinished", on_finished)
    page.goto(url)
    page.wait_for_function("document.documentElement.dataset.tilesLoaded", timeout=120_000)
    drawn = float(page.evaluate("document.documentElement.dataset.tilesLoaded"))
    dom = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    canvases = page.locator("canvas.leaflet-tile").count()
    context.close()
    return {"dom_ms": dom, "drawn_ms": drawn, "tiles": tiles["n"], "tile_kb": tiles["bytes"] / 1024,
            "failed": tiles["failed"], "canvases": canvases}


def run(n: int) -> list[str]:
    """Rows of the table for the ``n``-parcel database."""
    server, base = _serve(n)
    rows: list[str] = []
    prints: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-background-networking",
                                              "--disable-gpu"])
            for path in PAGES:
                t = time.perf_counter()
                html = httpx.get(base + path, timeout=120).content
                server_ms = (time.perf_counter() - t) * 1000
                runs = [_measure(browser, base + path) for _ in range(REPEAT)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append(f"| {n:,} | `{path}` | {len(html) / 1e6:.2f} | {server_ms:.0f} "
                            f"| {med['dom_ms']:.0f} | {med['drawn_ms']:.0f} "
                            f"| {med['tiles']:.0f} ({med['failed']:.0f} failed) "
                            f"| {med['tile_kb']:.0f} |")
            browser.close()
        village = httpx.get(base + "/collections/villages/items?limit=1", timeout=60).json()
        code = village["features"][0]["properties"]["code"]
        for path in PRINTS:
            url = base + path.format(village=code)
            times, size, status = [], 0, 0
            for _ in range(REPEAT):
                t = time.perf_counter()
                r = httpx.get(url, timeout=600)
                times.append((time.perf_counter() - t) * 1000)
                size, status = len(r.content), r.status_code
            prints.append(f"| {n:,} | `{path}` | {status} | {size / 1024:.0f} "
                          f"| {statistics.median(times):.0f} |")
    finally:
        server.should_exit = True
    head = ["", "| parcels | print | status | KB | ms (median) |", "|---:|---|---:|---:|---:|"]
    return [*rows, *head, *prints]


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [100_000]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"median of {REPEAT} page loads in headless Chromium, no basemap\n")
    print("| parcels | page | HTML MB | HTML served ms | DOM ready ms | tiles drawn ms | tile requests "
          "| tile KB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for row in run(n):
            print(row, flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main(sys.argv[1:])
