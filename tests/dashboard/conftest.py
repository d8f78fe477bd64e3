"""One `aerodrome serve` and one headless Chromium (Debian's, driven by Playwright) for the dashboard's tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

from tests.support.server import Server, running_server

CHROMIUM = "/usr/bin/chromium"
#: `AERODROME_SCREENSHOTS=docs/screenshots` makes the README's pictures; otherwise they go to a temporary directory
SCREENSHOTS_VARIABLE = "AERODROME_SCREENSHOTS"

Shoot = Callable[["Page", str], None]


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


@pytest.fixture(scope="session")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> Shoot:
    """Saves a full-page screenshot by name, where SCREENSHOTS_VARIABLE says (else under the run's temporary
    directory, so that a test run leaves the working tree as it was)."""
    chosen = os.environ.get(SCREENSHOTS_VARIABLE)
    where = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")

    def save(page: Page, name: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(where / f"{name}.png"), full_page=True)

    return save
