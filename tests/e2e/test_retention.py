"""Retention against a real `aerodrome serve` with tiny bounds: what a sweep removes, and nothing else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.api.helpers import create_machine, wait_for
from tests.support.server import Server, running_server

EVENTS, VERSIONS = 5, 3
DEADLINE = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    flags = ("--events-per-machine", str(EVENTS), "--versions-per-machine", str(VERSIONS))
    with running_server(*flags, "--destroyed-machine-age", "1", "--retention-interval", "0.2") as started:
        started.push_image("busybox")
        yield started


def _eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} did not happen in {DEADLINE} s"
        time.sleep(0.1)
    return result


def test_retention_keeps_the_newest_and_removes_destroyed_machines(server: Server) -> None:
    image = server.image("busybox")
    app = f"test-{uuid.uuid4().hex[:10]}"
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        busy = create_machine(api, app, {"image": image}, skip_launch=True)["id"]
        quiet = create_machine(api, app, {"image": image}, skip_launch=True)["id"]
        doomed = create_machine(api, app, {"image": image}, skip_launch=True)["id"]

        def events(machine_id: str) -> list[dict[str, Any]]:
            response = api.get(f"/v1/apps/{app}/machines/{machine_id}/events", params={"limit": 50})
            assert response.status_code == 200, response.text
            body: list[dict[str, Any]] = response.json()
            return body

        base = f"/v1/apps/{app}/machines/{busy}"
        for _ in range(4):  # start and stop, each an event: 9 with the launch
            assert api.post(f"{base}/start").status_code == 200
            wait_for(api, app, busy, "started")
            assert api.post(f"{base}/stop").status_code == 200
            wait_for(api, app, busy, "stopped")
        kept = _eventually(lambda: (listed := events(busy)) and len(listed) == EVENTS and listed, "event pruning")
        assert kept[0]["type"] == "stop"  # the newest, first
        assert [e["timestamp"] for e in kept] == sorted((e["timestamp"] for e in kept), reverse=True)

        versions_url = f"/v1/apps/{app}/machines/{quiet}/versions"
        for i in range(5):
            body = {"config": {"image": image, "env": {"N": str(i)}}, "skip_launch": True}
            assert api.post(f"/v1/apps/{app}/machines/{quiet}", json=body).status_code == 200
        current = api.get(f"/v1/apps/{app}/machines/{quiet}").json()["instance_id"]
        versions = _eventually(
            lambda: (listed := api.get(versions_url).json()) and len(listed) == VERSIONS and listed, "version pruning"
        )
        assert versions[0]["version"] == current
        quiet_events = events(quiet)

        assert api.delete(f"/v1/apps/{app}/machines/{doomed}").status_code == 200

        def listed() -> list[str]:
            machines = api.get(f"/v1/apps/{app}/machines", params={"include_deleted": "true"}).json()
            return [m["id"] for m in machines]

        assert doomed in listed()  # within the bound it is still listed
        _eventually(lambda: doomed not in listed(), "the destroyed machine's removal")
        assert sorted(listed()) == sorted([busy, quiet])
        assert api.get(f"/v1/apps/{app}/machines/{doomed}").status_code == 404
        assert events(quiet) == quiet_events  # under the bound: all of them still there, after many sweeps
        assert len(events(busy)) == EVENTS
