"""One `aerodrome serve` and one headless Chromium (Debian's, driven by Playwright) for the dashboard's tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server, running_server

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[object]:
    """Set up after the server, and gone after its module: Playwright's sync API keeps an event loop running in
    this thread, and the server's image push and asyncio tests run loops of their own."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-test-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # root runs no sandboxed renderer; the pages are our own, on loopback
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
