"""The control plane over two hosts (in-memory FakeAgents, no root): machines and volumes placed by placement and
recorded with their host, each call sent to that host's agent, a volume pinning its machine, capacity refused in
Fly's shape, and a host out of reach shown `unreachable`, routed around, and re-adopted when it answers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings
from aerodrome.core import (
    App,
    CapacityError,
    FailedPreconditionError,
    HostState,
    HostUnreachableError,
    MachineEvent,
    MachineState,
    rfc3339,
    ulid,
)
from aerodrome.proxy.control_directory import ControlDirectory
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.store.factories import make_app, make_machine
from tests.support.fake_agent import FakeAgent

S = MachineState
IMAGE = "registry.local/library/busybox:latest"
SERVICE = {"internal_port": 8080, "ports": [{"port": 80}]}


@dataclasses.dataclass
class Cluster:
    plane: ControlPlane
    a: FakeAgent
    b: FakeAgent
    app: App
    org_id: int

    async def create(self, **config: Any) -> str:
        body = {"config": {"image": IMAGE, **config}, "skip_launch": True}
        machine = await self.plane.machines.create(self.app, self.org_id, body)
        await self.plane.machines.start(self.app, machine.id, None)
        return machine.id

    async def host_of(self, mid: str) -> str:
        machine = await self.plane.store.get_machine(mid)
        assert machine is not None
        return machine.host

    def agent(self, name: str) -> FakeAgent:
        return {"host-a": self.a, "host-b": self.b}[name]


async def reaches(plane: ControlPlane, mid: str, state: MachineState) -> None:
    """Wait for the machine's row to reach `state` (the host events' follower records it)."""
    for _ in range(50):
        machine = await plane.store.get_machine(mid)
        if machine is not None and machine.state is state:
            return
        await plane.feed.next_change(mid, 0.2)
    raise AssertionError(f"machine {mid} never reached {state}")


async def open_cluster(tmp_path: Path, a: FakeAgent, b: FakeAgent) -> tuple[ControlPlane, SqlStore]:
    store = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    await store.ensure_org("personal", "Personal")
    settings = Settings(volume_check_interval=0, host_check_interval=0)  # the tests make each health call
    plane = ControlPlane(store, [a, b], Secrets.new_key(), settings, registry_signer=RegistryTokens(tmp_path / "r"))
    return plane, store


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    a, b = FakeAgent("host-a", memory_mb=2048), FakeAgent("host-b", memory_mb=2048)
    plane, store = await open_cluster(tmp_path, a, b)
    app = make_app("several")
    await store.add_app(app)
    await plane.start()
    org = await store.get_org(app.org_slug)
    assert org is not None
    try:
        yield Cluster(plane, a, b, app, org.internal_numeric_id)
    finally:
        await plane.close()
        await store.close()


async def test_an_apps_machines_spread_over_both_hosts_and_each_call_goes_to_its_own(cluster: Cluster) -> None:
    first, second = await cluster.create(), await cluster.create()
    hosts = {await cluster.host_of(first), await cluster.host_of(second)}
    assert hosts == {"host-a", "host-b"}
    for mid in (first, second):
        own = cluster.agent(await cluster.host_of(mid))
        other = cluster.b if own is cluster.a else cluster.a
        assert (await own.status(mid)).state is HostState.RUNNING
        assert (await other.status(mid)).state is HostState.ABSENT
        await cluster.plane.machines.stop(cluster.app, mid, None)
        assert (await own.status(mid)).state is HostState.STOPPED
    # each host's exits reach the machine's row, through that host's own event stream
    for mid in (first, second):
        await cluster.plane.machines.start(cluster.app, mid, None)
        cluster.agent(await cluster.host_of(mid)).exit(mid, 0)
        await reaches(cluster.plane, mid, S.STOPPED)


async def test_a_volume_pins_its_machine_to_its_host(cluster: Cluster) -> None:
    volumes = [await cluster.plane.volumes.create(cluster.app, {"name": "data"}, "iad") for _ in range(2)]
    assert {v.host for v in volumes} == {"host-a", "host-b"}  # an app's volumes spread too
    for volume in volumes:
        assert volume.id in (await cluster.agent(volume.host).stored_volumes())[0]
        mid = await cluster.create(mounts=[{"volume": volume.id, "path": "/data"}])
        assert await cluster.host_of(mid) == volume.host
    copy = await cluster.plane.volumes.create(cluster.app, {"source_volume_id": volumes[1].id}, "iad")
    assert copy.host == volumes[1].host  # a copy is made where its source's file is


async def test_capacity_left_decides_and_none_left_is_flys_refusal(cluster: Cluster) -> None:
    big = {"guest": {"cpus": 1, "memory_mb": 2048}}
    first = await cluster.create(**big)
    second = await cluster.create(**big)
    assert {await cluster.host_of(first), await cluster.host_of(second)} == {"host-a", "host-b"}
    with pytest.raises(CapacityError) as refused:
        await cluster.create(guest={"cpus": 1, "memory_mb": 256})
    assert refused.value.status == "insufficient_capacity"
    assert "insufficient resources" in refused.value.message and "region iad" in refused.value.message
    assert len(await cluster.plane.store.list_machines(cluster.app.name)) == 2  # the refusal left nothing
    await cluster.plane.machines.stop(cluster.app, first, None)  # a stopped machine holds no memory
    third = await cluster.create(guest={"cpus": 1, "memory_mb": 256})
    assert await cluster.host_of(third) == await cluster.host_of(first)


async def test_a_host_out_of_reach_is_unreachable_its_neighbour_unaffected_and_it_is_readopted(
    cluster: Cluster,
) -> None:
    plane = cluster.plane
    config = {"services": [SERVICE], "restart": {"policy": "no"}}
    on_a, on_b = await cluster.create(**config), await cluster.create(**config)
    if await cluster.host_of(on_a) != "host-a":
        on_a, on_b = on_b, on_a
    directory = ControlDirectory(plane.store, plane.edge_power, domain="localhost")
    route = await directory.route("several.localhost", "127.0.0.1", 80)
    assert route is not None and {b.machine_id for b in route.backends} == {on_a, on_b}

    cluster.a.reachable = False
    with pytest.raises(HostUnreachableError):
        await plane.machines.stop(cluster.app, on_a, None)
    assert plane.hosts.host_status("host-a") == "unreachable"
    assert plane.hosts.host_status("host-b") == "ok"
    assert (await plane.store.get_machine(on_a)).state is S.STARTED  # type: ignore[union-attr]
    route = await directory.route("several.localhost", "127.0.0.1", 80)
    assert route is not None and [b.machine_id for b in route.backends] == [on_b]  # routed around
    await plane.machines.stop(cluster.app, on_b, None)  # the other host answers as before
    assert await cluster.host_of(await cluster.create()) == "host-b"  # placement passes host-a over
    cluster.a.exit(on_a, 1)  # meanwhile, host-a's machine exits: its event waits in host-a's stream

    entry_a = plane.hosts.entry("host-a")
    assert entry_a is not None
    await plane.host_watch.check(entry_a)  # still down: stays unreachable
    assert plane.hosts.host_status("host-a") == "unreachable"
    cluster.a.reachable = True
    await plane.host_watch.check(entry_a)
    assert plane.hosts.host_status("host-a") == "ok"
    assert (await plane.store.get_machine(on_a)).state is S.STOPPED  # type: ignore[union-attr]
    route = await directory.route("several.localhost", "127.0.0.1", 80)
    assert route is not None and on_a in {b.machine_id for b in route.backends}


async def test_rows_from_before_several_hosts_are_the_first_agents(cluster: Cluster) -> None:
    now = rfc3339(1_700_000_000)
    old = make_machine("old1", cluster.app.name, host="local", state=S.STOPPED, created_at=now, updated_at=now)
    await cluster.plane.store.add_machine(old, MachineEvent(ulid(), old.id, "launch", "stopped", "user", 0))
    assert cluster.plane.hosts.entry("local") is cluster.plane.hosts.entry("host-a")
    assert cluster.plane.hosts.host_status("local") == "ok"
    cluster.a.reachable = False  # so a call that reaches host-a says so
    with pytest.raises(HostUnreachableError, match="host-a"):
        await cluster.plane.machines.start(cluster.app, "old1", None)
    assert cluster.plane.hosts.host_status("local") == "unreachable"


async def test_two_agents_with_one_name_are_refused(tmp_path: Path) -> None:
    plane, store = await open_cluster(tmp_path, FakeAgent("twin"), FakeAgent("twin"))
    try:
        with pytest.raises(FailedPreconditionError, match="give each its own --name"):
            await plane.start()
    finally:
        await plane.close()
        await store.close()
