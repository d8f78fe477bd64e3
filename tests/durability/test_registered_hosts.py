"""Hosts that register themselves: two `aerodrome agent --database` processes (on loopback, over mutual TLS)
and one `serve --no-local-agent` on the same PostgreSQL. serve signs and drives the host there at its start, and
a host that joins while it runs is used too; a machine on each; SIGKILL of one agent stops its heartbeat, its
machine shows `host_status: "unreachable"` and its calls 503, and once it is back it is re-adopted as it was."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aerodrome.agent import Identity
from aerodrome.cli.cluster import cluster_ca
from aerodrome.cli.daemon import release_pool, unrouted_pool
from aerodrome.core import HostState
from aerodrome.store import SqlStore
from tests.api.helpers import create_machine, wait_for
from tests.durability.test_several_agents import host_status_becomes, wait_all_reachable
from tests.support.agents import HostProcess
from tests.support.postgres import PostgresServer
from tests.support.registry import free_loopback_port
from tests.support.server import Server

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]
HEARTBEAT = "0.5"  # seconds: a stale host is seen within 3 of them (serve's --heartbeat-misses)
WAIT = 60.0  # an upper bound, never a measurement


def control_plane_tls(database: str, secrets_key: Path) -> ssl.SSLContext:
    """A control plane's client certificate, from the database's cluster CA (as a replica makes its own)."""

    key = secrets_key.read_bytes()

    async def read() -> ssl.SSLContext:
        store = await SqlStore.open(database)
        try:
            return Identity.control_plane(await cluster_ca(store.host_table(), key)).client_context()
        finally:
            await store.close()

    return asyncio.run(read())


def heartbeat_of(server: Server, name: str) -> float:
    rows = server.query(f"SELECT heartbeat_at FROM hosts WHERE name = '{name}'")
    return float(rows[0][0])


def logged(server: Server, line: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if line in server.log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"serve never logged {line!r}:\n{server.log_tail()}")


def graphql_host_status(api: httpx.Client, machine_id: str) -> tuple[str, str]:
    query = f'{{ machine(machineId: "{machine_id}") {{ state hostStatus }} }}'
    machine = api.post("/graphql", json={"query": query}).json()["data"]["machine"]
    return machine["state"], machine["hostStatus"]


@pytest.fixture
def cluster(postgres_server: PostgresServer) -> Iterator[tuple[Server, HostProcess, HostProcess]]:
    pools = [unrouted_pool()]
    try:
        pools.append(unrouted_pool())
    except RuntimeError:
        release_pool(pools[0])
        raise
    database = postgres_server.create_database()
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-registered-"))
    server = Server(workdir, machine_pool=pools[0], registry_port=free_loopback_port(), database=database)
    server.extra_args = ("--no-local-agent", "--heartbeat-interval", HEARTBEAT)
    server.data_dir.mkdir(mode=0o700)
    keys = server.data_dir / "registry"
    hosts = [
        HostProcess(name, workdir / name, server.registry, keys, machine_pool=pool, database=database)
        for name, pool in (("host-a", pools[0]), ("host-b", pools[1]))
    ]
    for host in hosts:
        host.heartbeat_interval = float(HEARTBEAT)
    machine_ids: list[str] = []
    try:
        hosts[0].start(wait=False)  # registers, and waits for serve to sign it
        server.start()
        tls = control_plane_tls(database, server.data_dir / "secrets.key")
        for host in hosts:
            host.tls = tls
        hosts[0].wait_ready()
        yield server, hosts[0], hosts[1]
        for host in hosts:
            if host.process is None or host.process.poll() is not None:
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
    postgres_server.drop_database(database)
    assert found == [], "the test left on the hosts:\n  " + "\n  ".join(found)
    shutil.rmtree(workdir)


def test_registered_hosts_join_are_driven_over_tls_and_survive_one_agent_killed(
    cluster: tuple[Server, HostProcess, HostProcess],
) -> None:
    server, host_a, host_b = cluster
    image = server.push_image("busybox")
    config = {"image": image, "init": {"exec": ["sleep", "3600"]}}
    rows = server.query("SELECT name, address, certificate_pem IS NOT NULL FROM hosts")
    assert rows == [("host-a", f"https://127.0.0.1:{host_a.port}", True)]
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": "reg", "org_slug": "personal"}).status_code == 201
        wait_all_reachable(server)
        on_a = create_machine(api, "reg", config)["id"]
        wait_for(api, "reg", on_a, "started")
        assert host_a.status(on_a).state is HostState.RUNNING

        host_b.start()  # joins while serve runs: signed, then used
        logged(server, "host host-b is reachable")
        on_b = create_machine(api, "reg", config)["id"]  # placement: the host with fewer of the app's machines
        wait_for(api, "reg", on_b, "started")
        assert host_b.status(on_b).state is HostState.RUNNING
        assert host_a.status(on_b).state is HostState.ABSENT

        held = host_a.status(on_a)
        host_a.stop(signal.SIGKILL)
        last_beat = heartbeat_of(server, "host-a")
        shown = host_status_becomes(api, f"/v1/apps/reg/machines/{on_a}", "unreachable")
        assert shown["state"] == "started"
        assert heartbeat_of(server, "host-a") == last_beat  # a dead agent beats no more
        refused = api.post(f"/v1/apps/reg/machines/{on_a}/stop")
        assert refused.status_code == 503 and "unreachable" in refused.json()["error"], refused.text
        assert api.get(f"/v1/apps/reg/machines/{on_b}").json()["host_status"] == "ok"
        assert graphql_host_status(api, on_a) == ("started", "unreachable")
        assert graphql_host_status(api, on_b) == ("started", "ok")
        assert api.post(f"/v1/apps/reg/machines/{on_b}/stop").status_code == 200
        wait_for(api, "reg", on_b, "stopped")

        host_a.start()  # same key, name and address: its certificate is kept, no signing needed
        host_status_becomes(api, f"/v1/apps/reg/machines/{on_a}", "ok")
        assert heartbeat_of(server, "host-a") > last_beat
        assert host_a.status(on_a) == held  # re-adopted as it was: still running, not made again
        assert api.post(f"/v1/apps/reg/machines/{on_a}/stop").status_code == 200
        wait_for(api, "reg", on_a, "stopped")
