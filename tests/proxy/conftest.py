from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aerodrome.proxy import Edge, EdgeSettings
from tests.proxy.support import TestDirectory


def settings(tmp_path: Path, **overrides: object) -> EdgeSettings:
    """Edge settings on free loopback ports with short timeouts."""
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "http_port": 0,
        "https_port": 0,
        "connect_timeout": 2.0,
        "read_timeout": 10.0,
        "queue_timeout": 0.3,
        "start_timeout": 10.0,
        "autostop_interval": 3600.0,
    }
    values.update(overrides)
    return EdgeSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def directory() -> AsyncIterator[TestDirectory]:
    found = TestDirectory()
    yield found
    await found.close()


@pytest.fixture
async def edge(directory: TestDirectory, tmp_path: Path) -> AsyncIterator[Edge]:
    started = Edge(directory, settings(tmp_path))
    await started.start()
    yield started
    await started.close()


@pytest.fixture
async def client(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge.http_port}", limits=limits, timeout=20) as c:
        yield c
