"""One headless Chromium for the session, pages on the real server (``live_url``, tests/conftest.py).

Every page is watched: a request to any origin but the server is aborted and recorded, and
console errors are collected, so tests can assert that maps work with no network at all; a
Content-Security-Policy violation fails the test that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"


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
    #: Content-Security-Policy violations: any one fails the test (a script or image refused).
    csp: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        """Go to ``path`` on the server and wait until the map script has run."""
        self.page.goto(self.base + path)
        self.page.wait_for_selector(".leaflet-control-layers")

    def map_js(self, body: str, arg: object = None) -> object:
        """Evaluate ``body`` with ``map`` bound to the page's Leaflet map."""
        # the body goes into the function's source: the page's CSP forbids eval and new Function
        return self.page.evaluate(
            "(arg) => { const map = window[Object.keys(window).find(n => n.startsWith('map_'))];"
            f" {body}\n}}", arg)

    def paths(self) -> int:
        """How many vector features are drawn (SVG paths)."""
        return self.page.locator("path.leaflet-interactive").count()


#: Reports every CSP violation as a console error, in case the browser's own message changes.
_CSP_LISTENER = """document.addEventListener('securitypolicyviolation', e => console.error(
    'Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.fixture
def open_watched(browser: Browser, request) -> Callable[..., AbstractContextManager[Watched]]:
    """``with open_watched(base) as w:`` a fresh page on the server at ``base``, watched.

    ``bypass_csp`` turns the pages' Content-Security-Policy off (to show escaping alone suffices).

    A request to any other origin is aborted and recorded in ``w.outside``, console errors go
    to ``w.errors`` and CSP violations to ``w.csp`` (any one fails the test); a screenshot is
    kept under tests/artifacts/browser/.
    """

    @contextmanager
    def make(base: str, *, height: int = 800, full_page: bool = False,
             bypass_csp: bool = False) -> Iterator[Watched]:
        context = browser.new_context(viewport={"width": 1280, "height": height}, locale="zh-CN",
                                      bypass_csp=bypass_csp)
        page = context.new_page()
        w = Watched(page, base)

        def route(r):
            if r.request.url.startswith(base):
                r.continue_()
            else:
                w.outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: w.errors.append(f"uncaught: {e}"))
        page.on("console", lambda m: w.csp.append(m.text) if m.type == "error" and (
            "Content Security Policy" in m.text or "Refused to" in m.text) else None)
        page.add_init_script(_CSP_LISTENER)
        try:
            yield w
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=full_page)
            finally:
                context.close()
        assert w.csp == [], f"the page broke its Content-Security-Policy: {w.csp}"

    return make


@pytest.fixture
def watched(open_watched, live_url: str) -> Iterator[Watched]:
    """A fresh page on the demo server."""
    with open_watched(live_url) as w:
        yield w
