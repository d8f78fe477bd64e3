from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import Server, running_server


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    """One `aerodrome serve` shared by the API tests; each test works in apps of its own."""
    with running_server() as started:
        started.push_image("busybox")
        yield started


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def app_name(api: httpx.Client) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    response = api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
    assert response.status_code == 201, response.text
    yield name
    api.delete(f"/v1/apps/{name}")


@pytest.fixture
def image(server: Server) -> str:
    return server.image("busybox")


@pytest.fixture
def server_registry(server: Server) -> str:
    return server.registry
