"""One `serve` driving two `aerodrome agent` processes ("hosts"), each with its own data directory, port, name
and address pool: machines placed on both, a volume pinning its machine to its host, and SIGKILL of one agent.
Its machines then show `host_status: "unreachable"` and their calls get 503s, the edge routes around them, the
other host's machines are unaffected; once the agent is back they are `ok` again, re-adopted as they were."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aerodrome.cli.daemon import release_pool, unrouted_pool
from aerodrome.core import HostState
from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.agents import HostProcess
from tests.support.registry import free_loopback_port
from tests.support.server import Server
from tests.support.services import SELF_NAMING, http_service

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]
SERVICE = http_service(autostart=False)


@pytest.fixture
def cluster() -> Iterator[tuple[Server, HostProcess, HostProcess]]:
    """Two agents, then a serve driving both; afterwards everything is destroyed through the API, all stopped, and
    both hosts checked clean (an agent the test killed is started again first, to take down what it left)."""
    # serve runs no machine itself: host-a takes its pool, host-b reserves one more (before anything is made)
    pools = [unrouted_pool()]
    try:
        pools.append(unrouted_pool())
    except RuntimeError:
        release_pool(pools[0])
        raise
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-several-agents-"))
    # the agents are told the registry before serve starts: its port is fixed here, not left to the kernel
    server = Server(workdir, machine_pool=pools[0], registry_port=free_loopback_port())
    server.data_dir.mkdir(mode=0o700)
    keys = server.data_dir / "registry"
    hosts = [
        HostProcess("host-a", workdir / "host-a", server.registry, keys, machine_pool=pools[0]),
        HostProcess("host-b", workdir / "host-b", server.registry, keys, machine_pool=pools[1]),
    ]
    for host in hosts:
        server.extra_args += ("--agent", host.url, "--agent-token-file", str(host.token_file))
    machine_ids: list[str] = []
    try:
        for host in hosts:
            host.start()
        server.start()
        yield server, hosts[0], hosts[1]
        for host in hosts:
            if host.process is not None and host.process.poll() is not None:
                host.start()
        wait_all_reachable(server)
        server.destroy_everything()
        machine_ids = server.machine_ids()
    finally:
        server.stop()
        for host in hosts:
            host.stop()
    found = [line for host in hosts for line in host.leftovers(machine_ids)] + server.leftovers(machine_ids)
    for pool in pools:
        release_pool(pool)
    assert found == [], "the test left on the hosts:\n  " + "\n  ".join(found)
    shutil.rmtree(workdir)


def wait_all_reachable(server: Server, timeout: float = 30.0) -> None:
    """Until no machine shows its host unreachable (serve's health call runs every 2 s)."""
    deadline = time.monotonic() + timeout
    with server.client() as api:
        while time.monotonic() < deadline:
            apps = api.get("/v1/apps", params={"org_slug": "personal"}).json().get("apps", [])
            statuses = {m["host_status"] for a in apps for m in api.get(f"/v1/apps/{a['name']}/machines").json()}
            if statuses <= {"ok"}:
                return
            time.sleep(0.1)
    raise AssertionError("machines still show their host unreachable")


def host_status_becomes(api: httpx.Client, path: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(path).json()
        if body["host_status"] == status:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{path} never showed host_status {status}")


def running_on(host: HostProcess, machine_id: str) -> bool:
    return host.status(machine_id).state is HostState.RUNNING


def through_edge(server: Server, app: str) -> set[str]:
    """The machines the edge answers from, over a few requests (each machine's page is its id)."""
    seen = set()
    for _ in range(24):  # the balancer picks at random between equals: each of two is seen all but surely
        response = httpx.get(
            f"http://127.0.0.1:{server.edge_http_port}/", headers={"host": f"{app}.localhost"}, timeout=10
        )
        assert response.status_code == 200, response.text
        seen.add(response.text.strip())
    return seen


def test_two_hosts_under_one_serve_place_pin_and_survive_one_agent_killed(
    cluster: tuple[Server, HostProcess, HostProcess],
) -> None:
    server, host_a, host_b = cluster
    image = server.push_image("busybox")
    by_name = {"host-a": host_a, "host-b": host_b}
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": "spread", "org_slug": "personal"}).status_code == 201
        config = {"image": image, "services": [SERVICE], "init": {"exec": ["sh", "-c", SELF_NAMING]}}
        first = create_machine(api, "spread", config)["id"]
        second = create_machine(api, "spread", config)["id"]
        for mid in (first, second):
            wait_for(api, "spread", mid, "started")
        placed = {
            mid: host
            for mid in (first, second)
            for host in by_name
            if by_name[host].status(mid).state is HostState.RUNNING
        }
        assert sorted(placed.values()) == ["host-a", "host-b"]  # one machine on each host
        for mid, host in placed.items():
            other = host_b if host == "host-a" else host_a
            assert other.status(mid).state is HostState.ABSENT
            assert mid in http_inside(api, "spread", mid)

        # a volume lives on one host, and its machine goes there
        volume = api.post("/v1/apps/spread/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
        pinned = create_machine(api, "spread", {"image": image, "mounts": [{"volume": volume["id"], "path": "/data"}]})
        wait_for(api, "spread", pinned["id"], "started")
        holders = [name for name, host in by_name.items() if running_on(host, pinned["id"])]
        assert len(holders) == 1
        on_a = next(mid for mid, host in placed.items() if host == "host-a")
        on_b = next(mid for mid, host in placed.items() if host == "host-b")
        assert through_edge(server, "spread") >= {on_a, on_b}

        held = host_a.status(on_a)
        host_a.stop(signal.SIGKILL)
        refused = api.post(f"/v1/apps/spread/machines/{on_a}/stop")
        assert refused.status_code == 503, refused.text
        assert "unreachable" in refused.json()["error"]
        shown = host_status_becomes(api, f"/v1/apps/spread/machines/{on_a}", "unreachable")
        assert shown["state"] == "started"
        assert api.get(f"/v1/apps/spread/machines/{on_b}").json()["host_status"] == "ok"
        listed = {m["id"]: m["host_status"] for m in api.get("/v1/apps/spread/machines").json()}
        assert listed[on_a] == "unreachable" and listed[on_b] == "ok"
        assert through_edge(server, "spread") == {on_b}  # routed around the host out of reach
        assert on_b in http_inside(api, "spread", on_b)  # the other host as before
        assert api.post(f"/v1/apps/spread/machines/{on_b}/stop").status_code == 200
        wait_for(api, "spread", on_b, "stopped")
        assert api.post(f"/v1/apps/spread/machines/{on_b}/start").status_code == 200
        wait_for(api, "spread", on_b, "started")

        host_a.start()
        host_status_becomes(api, f"/v1/apps/spread/machines/{on_a}", "ok")
        assert host_a.status(on_a) == held  # re-adopted as it was: still running, not made again
        assert api.get(f"/v1/apps/spread/machines/{on_a}").json()["state"] == "started"
        assert on_a in http_inside(api, "spread", on_a)
        assert api.post(f"/v1/apps/spread/machines/{on_a}/stop").status_code == 200
        wait_for(api, "spread", on_a, "stopped")
