"""Fixtures every test package may use over the `server` fixture it defines: an API client and an app of its own.

Registered for the whole tree by `tests/conftest.py` (`pytest_plugins`); a package or module that needs another
shape of either defines its own fixture of the same name, which pytest prefers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import wait_app_gone
from tests.support.server import Server


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """An API client with the server's token."""
    with server.client() as client:
        yield client


@pytest.fixture
def app_name(api: httpx.Client) -> Iterator[str]:
    """An app of organisation `personal` for one test, deleted (machines and volumes with it) afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    response = api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
    assert response.status_code == 201, response.text
    yield name
    api.delete(f"/v1/apps/{name}")
    wait_app_gone(api, name)  # deleted in the background: the next test finds its addresses free
