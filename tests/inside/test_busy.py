"""`aerodrome_busy` (an aerodrome extension): autostop keeps a machine whose cgroup is busy, traffic or not, and
stops it once its work ends; the same busy machine without the option is stopped when idle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_machine, delete_app, machine_exec, wait_for
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

BUSY = "(while :; do :; done) & echo $! > /tmp/busy.pid; exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--autostop-idle", "2") as started:  # autostop looks every second
        started.push_image("busybox")
        yield started


def busy_machine(api: httpx.Client, server: Server, app: str, **extension: Any) -> str:
    assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
    service = {"protocol": "tcp", "internal_port": 8080, "autostop": "stop", "ports": [{"port": 80}], **extension}
    config = {"image": server.image("busybox"), "init": {"exec": ["sh", "-c", BUSY]}, "services": [service]}
    machine = create_machine(api, app, config)
    wait_for(api, app, machine["id"], "started")
    return str(machine["id"])


def state(api: httpx.Client, app: str, machine_id: str) -> str:
    return str(api.get(f"/v1/apps/{app}/machines/{machine_id}").json()["state"])


def test_a_busy_machine_is_kept_running_until_its_work_ends(server: Server) -> None:
    with server.client() as api:
        kept = busy_machine(api, server, "busy-kept", aerodrome_busy={"cpu_percent": 5})
        plain = busy_machine(api, server, "busy-plain")
        assert api.get(f"/v1/apps/busy-kept/machines/{kept}").json()["config"]["services"][0]["aerodrome_busy"]
        wait_for(api, "busy-plain", plain, "stopped")  # busy too, but it did not ask: idle means no traffic
        time.sleep(3)  # three more autostop passes, each past the idle period
        assert state(api, "busy-kept", kept) == "started"
        assert machine_exec(api, "busy-kept", kept, "sh", "-c", "kill $(cat /tmp/busy.pid)")["exit_code"] == 0
        wait_for(api, "busy-kept", kept, "stopped")
        delete_app(api, "busy-kept")
        delete_app(api, "busy-plain")


@pytest.mark.parametrize(
    "busy", [{"cpu_percent": -1}, {"io_bytes_per_second": "fast"}, {"cpu": 5}, [5], {"cpu_percent": True}]
)
def test_bad_busy_thresholds_are_refused(server: Server, busy: object) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "busy-bad", "org_slug": "personal"})
        service = {"internal_port": 8080, "ports": [{"port": 80}], "aerodrome_busy": busy}
        body = {"config": {"image": server.image("busybox"), "services": [service]}, "region": "iad"}
        response = api.post("/v1/apps/busy-bad/machines", json=body)
        assert response.status_code == 400 and "aerodrome_busy" in response.json()["error"], response.text
