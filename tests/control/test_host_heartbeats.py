"""Registered hosts' heartbeats as an input of the control plane's host watch (in-memory FakeAgents, no root):
a host whose heartbeat is stale is unreachable for this replica although its agent answers, and is re-adopted
once it heartbeats again; a host that joins while the control plane runs is reached, adopted and placed on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings
from aerodrome.core import App, MachineState
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.store.factories import make_app
from tests.support.fake_agent import FakeAgent

IMAGE = "registry.local/library/busybox:latest"
STALE_AFTER = 30.0


class Beats:
    """The hosts table's heartbeats, as the replica reads them."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def beat(self, *names: str) -> None:
        for name in names:
            self.at[name] = time.time()

    def silence(self, name: str) -> None:
        self.at[name] = time.time() - 2 * STALE_AFTER

    async def __call__(self) -> Mapping[str, float]:
        return dict(self.at)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, Beats, App, int]]:
    store = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    await store.ensure_org("personal", "Personal")
    beats = Beats()
    beats.beat("host-a", "host-b")
    settings = Settings(volume_check_interval=0, host_check_interval=0, heartbeat_stale_after=STALE_AFTER)
    agents = [FakeAgent("host-a", memory_mb=2048), FakeAgent("host-b", memory_mb=2048)]
    plane = ControlPlane(
        store, agents, Secrets.new_key(), settings, registry_signer=RegistryTokens(tmp_path / "r"), heartbeats=beats
    )
    app = make_app("beats")
    await store.add_app(app)
    await plane.start()
    org = await store.get_org(app.org_slug)
    assert org is not None
    try:
        yield plane, beats, app, org.internal_numeric_id
    finally:
        await plane.close()
        await store.close()


async def create(plane: ControlPlane, app: App, org_id: int) -> str:
    machine = await plane.machines.create(app, org_id, {"config": {"image": IMAGE}, "skip_launch": True})
    await plane.machines.start(app, machine.id, None)
    return machine.id


async def host_of(plane: ControlPlane, mid: str) -> str:
    machine = await plane.store.get_machine(mid)
    assert machine is not None
    return machine.host


async def test_a_stale_heartbeat_makes_a_host_unreachable_until_it_beats_again(
    plane: tuple[ControlPlane, Beats, App, int],
) -> None:
    control, beats, app, org_id = plane
    on_a = await create(control, app, org_id)
    if await host_of(control, on_a) != "host-a":
        on_a = await create(control, app, org_id)
    assert await host_of(control, on_a) == "host-a"
    await control.host_watch.check_all()
    assert control.hosts.host_status("host-a") == "ok"

    beats.silence("host-a")  # its agent still answers this replica: the database's word decides
    await control.host_watch.check_all()
    assert control.hosts.host_status("host-a") == "unreachable"
    assert control.hosts.host_status("host-b") == "ok"
    assert await host_of(control, await create(control, app, org_id)) == "host-b"  # placement passes it over

    beats.beat("host-a")
    await control.host_watch.check_all()
    assert control.hosts.host_status("host-a") == "ok"  # re-adopted
    machine = await control.store.get_machine(on_a)
    assert machine is not None and machine.state is MachineState.STARTED


async def test_a_heartbeat_that_cannot_be_read_changes_nothing(plane: tuple[ControlPlane, Beats, App, int]) -> None:
    control, beats, _, _ = plane
    beats.at.clear()  # a host with no row (an --agent one) is judged by its health calls alone
    await control.host_watch.check_all()
    assert control.hosts.host_status("host-a") == control.hosts.host_status("host-b") == "ok"


async def test_a_host_that_joins_is_adopted_and_placed_on(plane: tuple[ControlPlane, Beats, App, int]) -> None:
    control, beats, app, org_id = plane
    for _ in range(2):
        await create(control, app, org_id)  # one on each of the first two
    joined = FakeAgent("host-c", memory_mb=2048)
    entry = control.hosts.add(joined)
    assert not entry.reachable  # not used before it is reached and adopted
    beats.beat("host-c")
    await control.host_watch.check_all()
    assert control.hosts.host_status("host-c") == "ok"
    assert await host_of(control, await create(control, app, org_id)) == "host-c"  # the fewest of the app's
