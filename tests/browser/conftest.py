"""A real uvicorn server over the demo township, and one headless Chromium for the session.

Every page is watched: a request to any origin but the server is aborted and recorded, and
console errors are collected, so tests can assert that maps work with no network at all.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from api.app import create_app
from layers.settings import Settings

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_app(demo_url, tmp_path_factory):
    """The landeco app over the demo database (tests may tune ``app.state``, then reset it)."""
    settings = Settings(database_url=demo_url.render_as_string(hide_password=False),
                        home=tmp_path_factory.mktemp("home"))
    return create_app(settings)


@pytest.fixture(scope="session")
def live_url(live_app) -> Iterator[str]:
    """The base URL of a uvicorn server running ``live_app`` on a free loopback port."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(live_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield b
        b.close()


@dataclass
class Watched:
    """A page with what it tried to fetch from outside and the errors it logged."""

    page: Page
    base: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        """Go to ``path`` on the server and wait until the map script has run."""
        self.page.goto(self.base + path)
        self.page.wait_for_selector(".leaflet-control-layers")

    def map_js(self, body: str, arg: object = None) -> object:
        """Evaluate ``body`` with ``map`` bound to the page's Leaflet map."""
        return self.page.evaluate(
            "([body, arg]) => { const k = Object.keys(window).find(n => n.startsWith('map_'));"
            " return new Function('map', 'arg', body)(window[k], arg); }", [body, arg])

    def paths(self) -> int:
        """How many vector features are drawn (SVG paths)."""
        return self.page.locator("path.leaflet-interactive").count()


@pytest.fixture
def watched(browser: Browser, live_url: str, request) -> Iterator[Watched]:
    """A fresh page on the server; a screenshot is kept under tests/artifacts/browser/."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    w = Watched(page, live_url)

    def route(r):
        if r.request.url.startswith(live_url):
            r.continue_()
        else:
            w.outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(f"uncaught: {e}"))
    yield w
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    finally:
        context.close()
