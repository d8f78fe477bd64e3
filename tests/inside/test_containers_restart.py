"""A multi-container machine across daemon restarts: a SIGTERMed and a SIGKILLed daemon's successor re-adopts
both running containers (not restarted: each has run once; their output still reaches the logs), still sees
a later exit and restarts it by its policy, and stops the machine once every container has ended for good
(status 1: one of them failed)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_machine, delete_app, wait_for
from tests.inside.test_containers import containers_of, exec_in, new_app, wait_container, wait_logs
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


def waiting_container(server: Server, name: str, exit_code: int, restart: dict[str, Any]) -> dict[str, Any]:
    """Counts its runs in its own /tmp, runs until /shared/stop-<name> appears, says so and exits `exit_code`."""
    wait = f"until [ -f /shared/stop-{name} ]; do sleep 0.2; done"
    script = f"echo run >> /tmp/runs; {wait}; echo bye-{name}; exit {exit_code}"
    return {
        "name": name,
        "image": server.image("busybox"),
        "exec": ["sh", "-c", script],
        "mounts": [{"name": "shared", "path": "/shared"}],
        "restart": restart,
    }


def runs(api: httpx.Client, app: str, machine_id: str, container: str) -> int:
    return len(exec_in(api, app, machine_id, container, "cat", "/tmp/runs")["stdout"].splitlines())


def test_containers_survive_daemon_restarts(server: Server) -> None:
    app = "ctr-restart"
    with server.client() as api:
        new_app(api, app)
        config = {
            "image": server.image("busybox"),
            "restart": {"policy": "no"},  # the machine's own: the exit that ends it is its containers'
            "volumes": [{"name": "shared"}],
            "containers": [
                waiting_container(server, "keeper", 0, {"policy": "no"}),
                waiting_container(server, "worker", 7, {"policy": "on-failure", "max_retries": 1}),
            ],
        }
        machine_id = create_machine(api, app, config)["id"]
        wait_for(api, app, machine_id, "started")
        for name in ("keeper", "worker"):
            wait_container(api, app, machine_id, name, state="running")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        server.stop(sig)
        server.start()
        with server.client() as api:
            for name in ("keeper", "worker"):  # the same processes, adopted: never restarted
                assert wait_container(api, app, machine_id, name, state="running")["restart_count"] == 0
                assert runs(api, app, machine_id, name) == 1
    with server.client() as api:
        for params in ({}, {"include_leases": "true"}):  # the listing shows the containers as GET does
            listed = {m["id"]: m for m in api.get(f"/v1/apps/{app}/machines", params=params).json()}
            assert [c["state"] for c in listed[machine_id]["containers"]] == ["running", "running"], listed
        # an adopted container's exit is seen (its status unknown: a failure) and restarted; its second run,
        # this daemon's child, exits 7 and has no retry left
        exec_in(api, app, machine_id, "keeper", "touch", "/shared/stop-worker")
        worker = wait_container(api, app, machine_id, "worker", state="exited")
        assert worker == {**worker, "exit_code": 7, "restart_count": 1}
        assert containers_of(api, app, machine_id)["keeper"]["state"] == "running"
        # the last container ends for good: the machine stops, its exit recorded
        exec_in(api, app, machine_id, "keeper", "touch", "/shared/stop-keeper")
        wait_for(api, app, machine_id, "stopped")
        events = api.get(f"/v1/apps/{app}/machines/{machine_id}/events").json()
        exits = [event["request"]["exit_event"] for event in events if event["type"] == "exit"]
        assert exits and exits[0]["exit_code"] == 1, events  # not every container exited 0
        # what the adopted containers printed after the restarts still reached the logs, through their pipes
        wait_logs(
            api,
            app,
            machine_id,
            lambda lines: lines.count("[worker] bye-worker") == 2 and lines.count("[keeper] bye-keeper") == 1,
        )
        delete_app(api, app)
