"""Fly's API rate limits (on by default) and the `--regions` restriction, against a server of their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.api.helpers import create_machine, wait_for
from tests.support.server import Server, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--regions", "iad,ams", "--rate-limits") as started:
        started.push_image("busybox")
        yield started


def test_get_machine_allows_a_burst_of_ten_then_429(server: Server) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "limited", "org_slug": "personal"})
        machine = create_machine(api, "limited", {"image": server.image("busybox")}, skip_launch=True)
        url = f"/v1/apps/limited/machines/{machine['id']}"
        statuses = [api.get(url).status_code for _ in range(10)]
        assert statuses == [200] * 10  # a full bucket: nothing depends on how fast these went
        refused = until_refused(lambda: api.get(url))
        assert refused.json() == {"error": f"rate limit exceeded for get on {machine['id']}"}
        assert int(refused.headers["retry-after"]) == 1  # under 0.2 s to the next token, rounded up


def test_actions_allow_a_burst_of_three_per_machine(server: Server) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "limited-actions", "org_slug": "personal"})
        machine = create_machine(api, "limited-actions", {"image": server.image("busybox")})
        wait_for(api, "limited-actions", machine["id"], "started")
        url = f"/v1/apps/limited-actions/machines/{machine['id']}/stop"
        statuses = [api.post(url).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = until_refused(lambda: api.post(url))
        assert refused.json() == {"error": f"rate limit exceeded for stop on {machine['id']}"}
        assert int(refused.headers["retry-after"]) == 1
        other = create_machine(api, "limited-actions", {"image": server.image("busybox")}, skip_launch=True)
        assert api.post(f"/v1/apps/limited-actions/machines/{other['id']}/stop").status_code == 200  # its own bucket


def until_refused(send: Callable[[], httpx.Response], timeout: float = 30) -> httpx.Response:
    """Send until the limiter refuses: the bucket refills while requests are slow, so no count is assumed."""
    deadline = time.monotonic() + timeout
    while (response := send()).status_code != 429:
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, "never refused"
    return response


def test_regions_are_restricted(server: Server) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "regional", "org_slug": "personal"})
        refused = api.post(
            "/v1/apps/regional/machines",
            json={"region": "syd", "config": {"image": server.image("busybox")}},
        )
        assert refused.status_code == 400 and "not served" in refused.json()["error"]
        listed = api.get("/v1/platform/regions").json()["regions"]
        assert sorted(r["code"] for r in listed) == ["ams", "iad"]
        volume = api.post("/v1/apps/regional/volumes", json={"name": "data", "region": "ams", "size_gb": 1}).json()
        config = {"image": server.image("busybox"), "mounts": [{"volume": volume["id"], "path": "/data"}]}
        mismatch = api.post("/v1/apps/regional/machines", json={"region": "iad", "config": config})
        assert mismatch.status_code == 400 and "region" in mismatch.json()["error"]
