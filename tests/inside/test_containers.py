"""Multi-container machines, from inside real ones: two busybox images in one machine sharing its network and a
scratch volume, `depends_on` healthy holding the second back until the first's healthcheck passes, exec in each
container, a failing dependency keeping its dependant from ever starting, a container's own restart policy,
per-container logs, and Fly's 400 for a config whose containers do not hold together."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_machine, delete_app, wait_for
from tests.cli.runner import Cli
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        started.push_image("sidecar", files={"/etc/flavour": b"sidecar\n"})
        yield started


def new_app(api: httpx.Client, app: str) -> None:
    assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201


def exec_in(api: httpx.Client, app: str, machine_id: str, container: str, *command: str) -> dict[str, Any]:
    body = {"command": list(command), "timeout": 10, "container": container}
    response = api.post(f"/v1/apps/{app}/machines/{machine_id}/exec", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def containers_of(api: httpx.Client, app: str, machine_id: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in api.get(f"/v1/apps/{app}/machines/{machine_id}").json()["containers"]}


def wait_container(api: httpx.Client, app: str, machine_id: str, name: str, **wanted: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found = containers_of(api, app, machine_id).get(name, {})
        if all(found.get(key) == value for key, value in wanted.items()):
            return found
        assert time.monotonic() < deadline, f"container {name} never reached {wanted}: {found}"
        time.sleep(0.1)


def two_containers(server: Server, **app_overrides: Any) -> dict[str, Any]:
    """`web` serves the shared volume on 8080 once it wrote into it; `reader` waits for it to be healthy."""
    web = {
        "name": "web",
        "image": server.image("busybox"),
        "exec": ["sh", "-c", "echo written-by-web > /shared/note; exec httpd -f -p 8080 -h /shared"],
        "mounts": [{"name": "shared", "path": "/shared"}],
        "healthchecks": [{"name": "up", "http": {"port": 8080, "path": "/note"}, "interval": 1}],
        **app_overrides,
    }
    reader = {
        "name": "reader",
        "image": server.image("sidecar"),
        "exec": ["sh", "-c", "cat /data/note; wget -qO- http://127.0.0.1:8080/note; exec sleep 3600"],
        "mounts": [{"name": "shared", "path": "/data"}],
        "depends_on": [{"name": "web", "condition": "healthy"}],
    }
    return {
        "image": server.image("busybox"),
        "volumes": [{"name": "shared"}],
        "containers": [web, reader],
        "checks": {"tcp-8080": {"type": "tcp", "port": 8080, "interval": "1s"}},
    }


def test_two_containers_share_network_and_volume(server: Server) -> None:
    app = "ctr-pair"
    with server.client() as api:
        new_app(api, app)
        machine = create_machine(api, app, two_containers(server))
        wait_for(api, app, machine["id"], "started")
        web = wait_container(api, app, machine["id"], "web", state="running", healthy=True)
        reader = wait_container(api, app, machine["id"], "reader", state="running")
        assert web["restart_count"] == 0 and "healthy" not in reader
        # each container is its own image: the sidecar's file is in one, not in the other
        assert exec_in(api, app, machine["id"], "reader", "cat", "/etc/flavour")["stdout"] == "sidecar\n"
        assert exec_in(api, app, machine["id"], "web", "cat", "/etc/flavour")["exit_code"] != 0
        # the volume is shared: what one wrote the other reads, and writes back
        assert exec_in(api, app, machine["id"], "reader", "cat", "/data/note")["stdout"] == "written-by-web\n"
        exec_in(api, app, machine["id"], "reader", "sh", "-c", "echo from-reader > /data/back")
        assert exec_in(api, app, machine["id"], "web", "cat", "/shared/back")["stdout"] == "from-reader\n"
        missing = api.post(
            f"/v1/apps/{app}/machines/{machine['id']}/exec", json={"command": ["true"], "container": "nope"}
        )
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        # each line of a container's output is labelled with its name
        # read from the file, then over HTTP from web: two lines
        wait_logs(api, app, machine["id"], lambda messages: messages.count("[reader] written-by-web") == 2)
        show_in_cli(server, app, machine["id"])
        delete_app(api, app)


def show_in_cli(server: Server, app: str, machine_id: str) -> None:
    """`machine list` counts the passing checks; `machine status` shows each check and each container."""
    cli = Cli(server.api_url, server.token, server.data_dir.parent / "cli.toml")
    deadline = time.monotonic() + 30
    while "1/1 passing" not in (listed := cli.run("machine", "list", "--app", app).stdout):
        assert time.monotonic() < deadline, listed
        time.sleep(0.2)
    status = cli.run("machine", "status", machine_id, "--app", app).stdout
    rows = {line.split()[0]: line.split()[1:] for line in status.splitlines() if line.strip()}
    assert rows["web"][:2] == ["running", "yes"] and rows["reader"][0] == "running", status
    assert "CHECK" in rows and "CONTAINER" in rows, status
    assert cli.json("machine", "status", machine_id, "--app", app)["checks"][0]["status"] == "passing"


def wait_logs(api: httpx.Client, app: str, machine_id: str, done: Callable[[list[str]], bool]) -> None:
    deadline = time.monotonic() + 30
    while True:
        body = api.get(f"/api/v1/apps/{app}/logs", params={"instance": machine_id}).json()
        messages = [entry["attributes"]["message"] for entry in body["data"]]
        if done(messages):
            return
        assert time.monotonic() < deadline, f"the logs never showed what was expected: {messages}"
        time.sleep(0.2)


def test_a_failing_dependency_keeps_its_dependant_from_starting(server: Server) -> None:
    app = "ctr-fail"
    with server.client() as api:
        new_app(api, app)
        config = {
            "image": server.image("busybox"),
            "containers": [
                {"name": "init", "image": server.image("busybox"), "exec": ["sh", "-c", "exit 3"]},
                {
                    "name": "app",
                    "image": server.image("busybox"),
                    "exec": ["sleep", "3600"],
                    "depends_on": [{"name": "init", "condition": "exited_successfully"}],
                },
                {
                    "name": "late",
                    "image": server.image("busybox"),
                    "exec": ["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 3600"],
                    "healthchecks": [{"exec": {"command": ["test", "-f", "/tmp/ok"]}, "interval": 1}],
                },
                {
                    "name": "after",
                    "image": server.image("busybox"),
                    "exec": ["sleep", "3600"],
                    "depends_on": [{"name": "late", "condition": "healthy"}],
                },
                {
                    "name": "flaky",
                    "image": server.image("busybox"),
                    "exec": ["sh", "-c", "echo run >> /tmp/runs; exit 1"],
                    "restart": {"policy": "on-failure", "max_retries": 2},
                },
            ],
        }
        machine = create_machine(api, app, config)
        wait_for(api, app, machine["id"], "started")
        assert wait_container(api, app, machine["id"], "init", state="exited")["exit_code"] == 3
        assert wait_container(api, app, machine["id"], "app", state="failed").get("exit_code") is None
        wait_container(api, app, machine["id"], "after", state="running")  # once late's exec check passed
        assert containers_of(api, app, machine["id"])["late"]["healthy"] is True
        flaky = wait_container(api, app, machine["id"], "flaky", state="exited")
        assert flaky == {**flaky, "exit_code": 1, "restart_count": 2}
        delete_app(api, app)


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}], "duplicate container name 'a'"),
        ([{"name": "a", "image": "x", "depends_on": [{"name": "b"}]}], "depends on unknown container 'b'"),
        (
            [
                {"name": "a", "image": "x", "depends_on": [{"name": "b"}]},
                {"name": "b", "image": "x", "depends_on": [{"name": "a"}]},
            ],
            "dependency cycle",
        ),
        ([{"name": "a", "image": "x", "mounts": [{"name": "nowhere", "path": "/d"}]}], "no machine volume"),
    ],
)
def test_containers_that_do_not_hold_together_are_refused(server: Server, containers: Any, message: str) -> None:
    app = "ctr-invalid"
    with server.client() as api:
        if api.get(f"/v1/apps/{app}").status_code == 404:
            new_app(api, app)
        config = {"image": server.image("busybox"), "containers": containers}
        response = api.post(f"/v1/apps/{app}/machines", json={"config": config})
        assert response.status_code == 400 and message in response.json()["error"], response.text
        assert api.get(f"/v1/apps/{app}/machines").json() == []
