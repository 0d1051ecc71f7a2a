"""Browser tests: Playwright's Python package driving Debian's Chromium (never ``playwright install``).

Fixtures ``chromium`` (one headless browser per test module) and ``browser_page`` (a fresh page per test that
records requests leaving 127.0.0.1, page errors and dialogs, and saves a screenshot under ``test-artifacts/``).
Requests to anything but 127.0.0.1/localhost are aborted: the pages under test must work with no network.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def require_chromium() -> None:
    """Skip the calling test when Debian's Chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install the Debian package `chromium` "
                    "(`make test` does, when run as root) to run the browser tests")


@dataclass
class BrowserPage:
    """A Playwright page plus what it did that a test may want to assert on."""

    page: object  # playwright.sync_api.Page (imported lazily, so collection works without a browser)
    outside_requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Headless Debian Chromium for one test module."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium, request) -> Iterator[BrowserPage]:
    """A fresh page (own context) that blocks the network beyond 127.0.0.1; screenshot saved after the test."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    result = BrowserPage(context.new_page())

    def route(r) -> None:
        url = r.request.url
        if url.startswith(("http://", "https://")) and urlsplit(url).hostname not in LOCAL_HOSTS:
            result.outside_requests.append(url)
            r.abort()
        else:
            r.continue_()

    def dialog(d) -> None:
        result.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    context.route("**/*", route)
    result.page.on("pageerror", lambda exc: result.errors.append(str(exc)))
    result.page.on("dialog", dialog)
    try:
        yield result
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            result.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        finally:
            context.close()


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
