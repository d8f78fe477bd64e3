"""Health checks run by the host against real machines (busybox httpd serves the checked paths), and the edge
routing by them: traffic held until a readiness check passes, an unhealthy machine out of rotation, an
autostart that waits for the checks, results in the Machine's `checks` and as events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_machine, delete_app, machine_exec, wait_for
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

SERVE = ("sh", "-c", "mkdir -p /srv && exec httpd -f -p 8080 -h /srv")
SERVICE_CHECK = "servicecheck-00-http-8080"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # a request nothing can take waits 2 s for a machine to become ready, then is refused
    with running_server("--edge-timeout", "queue=2", "--edge-timeout", "start=30") as started:
        started.push_image("busybox")
        yield started


def service(autostart: bool) -> dict[str, Any]:
    return {
        "protocol": "tcp",
        "internal_port": 8080,
        "autostart": autostart,
        "ports": [{"port": 80, "handlers": ["http"]}],
        "checks": [{"type": "http", "path": "/ready", "interval": "1s", "timeout": "1s"}],
    }


def edge_get(server: Server, app: str) -> httpx.Response:
    url = f"http://127.0.0.1:{server.edge_http_port}/"
    return httpx.get(url, headers={"Host": f"{app}.localhost:{server.edge_http_port}"}, timeout=60)


def checks_of(api: httpx.Client, app: str, machine_id: str) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in api.get(f"/v1/apps/{app}/machines/{machine_id}").json()["checks"]}


def wait_check(api: httpx.Client, app: str, machine_id: str, name: str, status: str) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while True:
        check = checks_of(api, app, machine_id).get(name)
        if check is not None and check["status"] == status:
            return check
        assert time.monotonic() < deadline, f"{name} of {machine_id} never became {status}: {check}"
        time.sleep(0.1)


def served_by(server: Server, app: str, count: int) -> set[str]:
    replies = [edge_get(server, app) for _ in range(count)]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    return {r.text.strip() for r in replies}


def test_readiness_holds_traffic_and_an_unhealthy_machine_leaves_rotation(server: Server) -> None:
    app = "chk-rotation"
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        top = {
            "alive": {"type": "tcp", "port": 8080, "interval": "1s"},  # informational: never gates
            "closed": {"type": "tcp", "port": 9, "interval": "1s", "timeout": "500ms"},
        }
        config = {
            "image": server.image("busybox"),
            "init": {"exec": list(SERVE)},
            "services": [service(autostart=False)],
            "checks": top,
        }
        ids = [create_machine(api, app, config)["id"] for _ in range(2)]
        for machine_id in ids:
            wait_for(api, app, machine_id, "started")
            machine_exec(api, app, machine_id, "sh", "-c", f"echo {machine_id} > /srv/index.html")
            critical = wait_check(api, app, machine_id, SERVICE_CHECK, "critical")
            assert critical["output"] == "404 Not Found" and critical["updated_at"].endswith("Z")
            assert wait_check(api, app, machine_id, "alive", "passing")["output"] == "connected to port 8080"
            wait_check(api, app, machine_id, "closed", "critical")
        refused = edge_get(server, app)  # both answer on 8080, neither is ready
        assert refused.status_code == 503 and "readiness" in refused.text

        first, second = ids
        machine_exec(api, app, first, "touch", "/srv/ready")
        wait_check(api, app, first, SERVICE_CHECK, "passing")
        assert served_by(server, app, 10) == {first}
        machine_exec(api, app, second, "touch", "/srv/ready")
        wait_check(api, app, second, SERVICE_CHECK, "passing")
        assert served_by(server, app, 30) == {first, second}
        machine_exec(api, app, first, "rm", "/srv/ready")  # unhealthy: out of rotation
        wait_check(api, app, first, SERVICE_CHECK, "critical")
        assert served_by(server, app, 10) == {second}

        events = api.get(f"/v1/apps/{app}/machines/{first}/events").json()
        seen = [(e["status"], e["request"]["check"]) for e in events if e["type"] == "check"]
        for status in ("passing", "critical"):
            assert (status, SERVICE_CHECK) in seen, seen
        listed = {m["id"]: m for m in api.get(f"/v1/apps/{app}/machines").json()}
        assert {c["name"] for c in listed[first]["checks"]} == {"alive", "closed", SERVICE_CHECK}
        delete_app(api, app)


def test_autostart_waits_for_the_readiness_check(server: Server) -> None:
    app = "chk-autostart"
    # the server answers at once, but only 2 s later has it something to serve and is it ready
    late = (
        "mkdir -p /srv; (sleep 2; echo ready-now > /srv/index.html; touch /srv/ready) & exec httpd -f -p 8080 -h /srv"
    )
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        config = {"image": server.image("busybox"), "init": {"exec": ["sh", "-c", late]}, "services": [service(True)]}
        machine = create_machine(api, app, config, skip_launch=True)
        reply = edge_get(server, app)
        assert reply.status_code == 200 and reply.text.strip() == "ready-now"
        assert checks_of(api, app, machine["id"])[SERVICE_CHECK]["status"] == "passing"
        api.post(f"/v1/apps/{app}/machines/{machine['id']}/stop")
        wait_for(api, app, machine["id"], "stopped")
        assert checks_of(api, app, machine["id"]) == {}  # a stopped machine is not checked
        delete_app(api, app)


@pytest.mark.parametrize(
    ("checks", "wanted"),
    [
        ({"x": {"type": "udp", "port": 80}}, "type"),
        ({"x": {"type": "tcp"}}, "port"),
        ({"x": {"type": "http", "port": 80, "interval": "10ms"}}, "interval"),
        ({"x": {"type": "http", "port": 80, "path": "no-slash"}}, "path"),
        ({"x": {"type": "http", "port": 80, "kind": "liveness"}}, "kind"),
        ({"x": {"type": "http", "port": 80, "headers": [{"name": "X", "values": ["a\r\nb"]}]}}, "headers"),
        ([1], "checks"),
    ],
)
def test_bad_checks_are_refused_with_flys_error(server: Server, checks: object, wanted: str) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "chk-bad", "org_slug": "personal"})
        body = {"config": {"image": server.image("busybox"), "checks": checks}, "region": "iad"}
        response = api.post("/v1/apps/chk-bad/machines", json=body)
        assert response.status_code == 400 and wanted in response.json()["error"], response.text
