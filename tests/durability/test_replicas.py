"""Two `aerodrome serve` replicas on one PostgreSQL database, driving one `aerodrome agent` ("the host"): what one
replica changes, the other sees through the change feed (`wait`, the edge's hostnames), the rate limits are
the database's, the first requests through both edges start a stopped machine once, and with one replica
SIGKILLed the other serves everything acknowledged through it, `wait` and leases included."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from aerodrome.cli.daemon import release_pool, unrouted_pool
from tests.api.helpers import create_machine, wait_for
from tests.support.agents import HostProcess
from tests.support.postgres import PostgresServer
from tests.support.registry import free_loopback_port
from tests.support.server import Server
from tests.support.services import SELF_NAMING, http_service

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]
SERVICE = http_service(autostart=True)
SEEN_WITHIN = 20.0  # a deadline for what the feed brings at once; `wait`'s own timeout (60 s) is far past it


class LimitedServer(Server):
    """A replica with Fly's rate limits on (the tests' daemons turn them off)."""

    def argv(self) -> list[str]:
        return [arg for arg in super().argv() if arg != "--no-rate-limits"]


@pytest.fixture
def replicas(postgres_server: PostgresServer) -> Iterator[tuple[Server, Server]]:
    """The agent, then replica A (whose registry the agent pulls from) and replica B, both driving the agent;
    afterwards everything is destroyed through A (started again if the test killed it) and the host checked."""
    database = postgres_server.create_database()
    pool = unrouted_pool()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-replicas-"))
    first = LimitedServer(workdir / "a", machine_pool=pool, registry_port=free_loopback_port(), database=database)
    # B runs no machine itself (the agent does): it shares A's pool, and so its dedicated ranges, as the database
    # hands each address out once
    second = LimitedServer(workdir / "b", machine_pool=pool, database=database)
    first.data_dir.mkdir(mode=0o700, parents=True)
    second.workdir.mkdir()
    host = HostProcess("host-a", workdir / "host", first.registry, first.data_dir / "registry", machine_pool=pool)
    for replica in (first, second):
        replica.extra_args += ("--agent", host.url, "--agent-token-file", str(host.token_file))
    machine_ids: list[str] = []
    try:
        host.start()
        first.start()
        second.start()
        yield first, second
        if not first.alive():
            first.start()
        first.destroy_everything()
        machine_ids = first.machine_ids()
    finally:
        second.stop()
        first.stop()
        host.stop()
        found = host.leftovers(machine_ids)
        release_pool(pool)
        postgres_server.drop_database(database)
    assert found == [], "the test left on the host:\n  " + "\n  ".join(found)
    shutil.rmtree(workdir)


def edge_get(server: Server, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.edge_http_port}/", headers={"host": host}, timeout=60)


def served_within(server: Server, host: str, deadline: float = SEEN_WITHIN) -> httpx.Response:
    end = time.monotonic() + deadline
    while True:
        response = edge_get(server, host)
        if response.status_code == 200 or time.monotonic() > end:
            return response
        time.sleep(0.1)


def start_events(api: httpx.Client, app: str, machine_id: str) -> int:
    events = api.get(f"/v1/apps/{app}/machines/{machine_id}").json()["events"]
    return sum(event["type"] == "start" for event in events)


def test_changes_through_one_replica_reach_the_other(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    image = first.push_image("busybox")
    with first.client() as one, second.client() as two:
        assert one.post("/v1/apps", json={"app_name": "web", "org_slug": "personal"}).status_code == 201
        config = {"image": image, "services": [SERVICE], "init": {"exec": ["sh", "-c", SELF_NAMING]}}
        mid = create_machine(one, "web", config, skip_launch=True)["id"]
        base = f"/v1/apps/web/machines/{mid}"

        # `wait` through B wakes on A's start at once, not at its own timeout
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(two.get(f"{base}/wait", params={"state": "started", "timeout": 60}))
        )
        waiting.start()
        time.sleep(1.0)  # B's wait is under way (it would return at once were the machine started already)
        assert one.post(f"{base}/start").status_code == 200
        waiting.join(SEEN_WITHIN)
        assert not waiting.is_alive(), "B's wait did not see A's start"
        assert answers[0].status_code == 200, answers[0].text
        assert two.get(base).json()["state"] == "started"

        # a hostname added through A is routed by B's edge
        added = one.post("/v1/apps/web/certificates/acme", json={"hostname": "www.replicated.test"})
        assert added.status_code == 201, added.text
        routed = served_within(second, "www.replicated.test")
        assert routed.status_code == 200 and routed.text.strip() == mid
        assert one.delete("/v1/apps/web/certificates/www.replicated.test").status_code == 204
        gone_by = time.monotonic() + SEEN_WITHIN
        while edge_get(second, "www.replicated.test").status_code == 200:
            assert time.monotonic() < gone_by, "B's edge still routes a hostname A removed"
            time.sleep(0.1)

        # the first requests through both edges to the stopped machine start it once, and both are served
        assert one.post(f"{base}/stop").status_code == 200
        wait_for(two, "web", mid, "stopped")
        started_before = start_events(one, "web", mid)
        with ThreadPoolExecutor(2) as pool:
            both = list(pool.map(lambda replica: edge_get(replica, "web.localhost"), (first, second)))
        assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
        assert {r.text.strip() for r in both} == {mid}
        assert start_events(two, "web", mid) == started_before + 1

        # one bucket for both replicas: signal's burst of 3 taken through A leaves none for B (a bad signal name
        # is refused after its token is taken, and changes nothing)
        for _ in range(3):
            assert one.post(f"{base}/signal", json={"signal": "NOT-A-SIGNAL"}).status_code == 400
        refused = two.post(f"{base}/signal", json={"signal": "NOT-A-SIGNAL"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] and float(refused.headers["retry-after"]) > 0
        assert one.post(f"{base}/signal", json={"signal": "NOT-A-SIGNAL"}).status_code == 429


def test_a_replica_killed_loses_nothing_and_the_other_serves_everything(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    image = first.push_image("busybox")
    with first.client() as one:
        assert one.post("/v1/apps", json={"app_name": "kept", "org_slug": "personal"}).status_code == 201
        mid = create_machine(one, "kept", {"image": image, "init": {"exec": ["sleep", "3600"]}})["id"]
        wait_for(one, "kept", mid, "started")
        base = f"/v1/apps/kept/machines/{mid}"
        assert one.post(f"{base}/metadata/role", json={"value": "primary"}).status_code == 204
    first.kill()
    with second.client() as two:
        assert [app["name"] for app in two.get("/v1/apps", params={"org_slug": "personal"}).json()["apps"]] == ["kept"]
        assert two.get(f"{base}/metadata").json() == {"role": "primary"}
        lease = two.post(f"{base}/lease", json={"ttl": 60})
        assert lease.status_code == 201, lease.text
        nonce = lease.json()["data"]["nonce"]
        assert two.post(f"{base}/lease", json={"ttl": 60}).status_code == 409
        with ThreadPoolExecutor(1) as pool:
            waited = pool.submit(two.get, f"{base}/wait", params={"state": "stopped", "timeout": 60})
            stopped = two.post(f"{base}/stop", headers={"fly-machine-lease-nonce": nonce})
            assert stopped.status_code == 200, stopped.text
            assert waited.result().status_code == 200
        assert two.delete(f"{base}/lease", headers={"fly-machine-lease-nonce": nonce}).status_code == 200


def test_after_a_restart_of_postgresql_the_feed_carries_changes_again(
    replicas: tuple[Server, Server], postgres_server: PostgresServer
) -> None:
    first, second = replicas
    image = first.push_image("busybox")
    with first.client() as one, second.client() as two:
        assert one.post("/v1/apps", json={"app_name": "again", "org_slug": "personal"}).status_code == 201
        mid = create_machine(one, "again", {"image": image, "init": {"exec": ["sleep", "3600"]}}, skip_launch=True)
        base = f"/v1/apps/again/machines/{mid['id']}"
        postgres_server.stop()
        postgres_server.start()
        for api in (one, two):
            reachable_by = time.monotonic() + 30
            while api.get(base).status_code != 200:
                assert time.monotonic() < reachable_by, "a replica did not reconnect to PostgreSQL"
                time.sleep(0.2)
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(two.get(f"{base}/wait", params={"state": "started", "timeout": 60}))
        )
        waiting.start()
        time.sleep(1.0)  # B's wait is under way
        assert one.post(f"{base}/start").status_code == 200
        waiting.join(SEEN_WITHIN)
        assert not waiting.is_alive(), "B's wait did not see A's start after PostgreSQL restarted"
        assert answers[0].status_code == 200, answers[0].text
