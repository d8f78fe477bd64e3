from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import Server, running_server


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    """One `aerodrome serve` shared by the API tests; each test works in apps of its own."""
    with running_server() as started:
        started.push_image("busybox")
        yield started


@pytest.fixture
def image(server: Server) -> str:
    return server.image("busybox")


@pytest.fixture
def server_registry(server: Server) -> str:
    return server.registry
