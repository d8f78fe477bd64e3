"""Session fixtures shared by every test package: one embedded registry and the default busybox image in it.

They are synchronous (each step runs in its own `asyncio.run`) so that sync and async tests of any loop scope
can use them; the registry is a plain child process, not tied to any event loop.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aerodrome.runtime.registry import EmbeddedRegistry
from tests.support.images import build_busybox_image

# flyctl takes about 20 minutes to build on two cores, so CI does not build it: its smoke test is collected only
# where a binary is cached (README, "flyctl and fly-go"), rather than skipped where it is not.
_FLYCTL_CACHE = Path.home() / ".cache" / "aerodrome" / "flyctl"
collect_ignore = [] if any(_FLYCTL_CACHE.glob("flyctl-*")) else ["api/test_flyctl.py"]

pytest_plugins = ["pytester", "tests.support.postgres", "tests.support.fixtures", "tests.support.skips"]


@pytest.fixture(scope="session")
def registry() -> Iterator[EmbeddedRegistry]:
    """A running EmbeddedRegistry on a free loopback port, for the whole session."""
    for tool in ("docker-registry", "skopeo", "umoci"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run scripts/install-deps.sh)")
    directory = Path(tempfile.mkdtemp(prefix="aerodrome-registry-"))
    embedded = EmbeddedRegistry(directory, listen="127.0.0.1:0")
    try:
        asyncio.run(embedded.start())
        yield embedded
    finally:
        asyncio.run(embedded.stop())
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_image(registry: EmbeddedRegistry) -> str:
    """The reference of the default busybox image (httpd on 8080 serving /www), pushed to `registry`."""
    return asyncio.run(build_busybox_image(registry.url))
