"""The quick start's image, `flyio/mcp:latest`, is built on the host by `aerodrome images build-mcp`: on a server
where it was not built, the guide's machine create answers a 404 that names that command."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import Server, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        yield started


def test_the_guides_create_without_the_image_names_the_build_command(server: Server) -> None:
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": "quickstart", "org_slug": "personal"}).status_code == 201
        body = {"config": {"image": "flyio/mcp:latest", "guest": {"cpus": 1, "memory_mb": 1024}}, "region": "iad"}
        refused = api.post("/v1/apps/quickstart/machines", json=body)
        assert refused.status_code == 404, refused.text
        message = refused.json()["error"]
        assert "flyio/mcp:latest not found" in message and "sudo aerodrome images build-mcp" in message
        assert api.get("/v1/apps/quickstart/machines").json() == []  # nothing was left half-made


def test_another_missing_image_gets_no_such_hint(server: Server) -> None:
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": "quickstart-other", "org_slug": "personal"}).status_code == 201
        body = {"config": {"image": "flyio/nothing-here:latest"}, "region": "iad"}
        refused = api.post("/v1/apps/quickstart-other/machines", json=body)
        assert refused.status_code == 404 and "build-mcp" not in refused.json()["error"]
