"""Restart backoff on the injected clock (the in-memory FakeAgent, no root): a machine whose program crashed is
started again only once its backoff has passed on the control plane's clock, and not before, however long the
test waits in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings
from aerodrome.core import App, HostState, MachineState, restart_backoff
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.store.factories import make_app
from tests.support.clock import ManualClock
from tests.support.fake_agent import FakeAgent

S = MachineState
IMAGE = "registry.local/library/busybox:latest"


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, FakeAgent, App, ManualClock]]:
    store = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    await store.ensure_org("personal", "Personal")
    app = make_app("backoff")
    await store.add_app(app)
    agent, clock = FakeAgent(), ManualClock()
    settings = Settings(volume_check_interval=0)
    signer = RegistryTokens(tmp_path / "reg")
    plane = ControlPlane(store, agent, Secrets.new_key(), settings, clock=clock, registry_signer=signer)
    await plane.start()
    try:
        yield plane, agent, app, clock
    finally:
        await plane.close()
        await store.close()


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_crashed_machine_restarts_once_its_backoff_has_passed_on_the_clock(
    plane: tuple[ControlPlane, FakeAgent, App, ManualClock],
) -> None:
    control, agent, app, clock = plane
    org = await control.store.get_org(app.org_slug)
    assert org is not None
    config = {"image": IMAGE, "restart": {"policy": "always"}}
    machine = await control.machines.create(app, org.internal_numeric_id, {"config": config, "skip_launch": True})
    await control.machines.start(app, machine.id, None)

    async def state() -> MachineState:
        row = await control.store.get_machine(machine.id)
        assert row is not None
        return row.state

    async def waiting_for_backoff() -> bool:
        return await state() is S.STARTING and clock.sleepers == 1

    agent.exit(machine.id, 1)
    await until(waiting_for_backoff, "the restart to wait for its backoff")
    backoff = restart_backoff(0)
    clock.advance(backoff / 2)
    assert clock.sleepers == 1  # half the backoff: the restart still sleeps
    assert await state() is S.STARTING and (await agent.status(machine.id)).state is not HostState.RUNNING
    clock.advance(backoff / 2 + 1e-6)  # past it (the halves' float sum may fall a hair short)

    async def restarted() -> bool:
        now = await state()
        assert now is not S.FAILED, "the restart failed"
        return now is S.STARTED

    await until(restarted, "the restart once the backoff passed")
    row = await control.store.get_machine(machine.id)
    assert row is not None and row.restart_count == 1
    assert (await agent.status(machine.id)).state is HostState.RUNNING
