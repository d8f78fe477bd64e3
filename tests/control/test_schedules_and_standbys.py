"""Scheduled and standby machines on an in-process control plane: a real SQLite store, real runc machines (busybox
from the session's registry) and a manual clock, so that each schedule's periods are crossed without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aerodrome.control import ControlPlane, period_of
from aerodrome.core import App, ImageInfo, InvalidArgumentError, MachineState, normalize_config, ulid
from aerodrome.runtime import LoopVolumeBackend
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.registry import EmbeddedRegistry
from aerodrome.runtime.runc import RuncRuntime
from tests.runtime.runc_fixtures import TEST_POOL, host_leftovers, image_store_root, needs_root, network_leftovers
from tests.support.clock import ManualClock

__all__ = ["image_store_root"]  # the session fixture, used here

START = datetime(2026, 12, 3, 10, 15, tzinfo=UTC).timestamp()  # a Thursday, mid-hour, mid-month
HOUR, DAY = 3600.0, 86400.0


def test_periods_are_calendar_ones_in_utc() -> None:
    assert period_of("hourly", START) == period_of("hourly", START + 44 * 60) != period_of("hourly", START + 45 * 60)
    assert period_of("daily", START) == period_of("daily", START + 13 * HOUR) != period_of("daily", START + 14 * HOUR)
    # Thursday 10:15 to Monday 00:00 is 3 days, 13 hours and 45 minutes: a new ISO week from there
    monday = START + 3 * DAY + 13 * HOUR + 45 * 60
    assert period_of("weekly", START) == period_of("weekly", monday - 1) != period_of("weekly", monday)
    new_year = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert period_of("monthly", START) == period_of("monthly", new_year - 1) != period_of("monthly", new_year)
    with pytest.raises(ValueError, match="unknown schedule"):
        period_of("yearly", START)


@dataclass
class World:
    plane: ControlPlane
    clock: ManualClock
    app: App
    image: str

    async def machine(self, config: dict[str, Any], **body: Any) -> str:
        made = await self.plane.machines.create(self.app, 1, {"config": {"image": self.image, **config}, **body})
        return made.id

    async def state(self, machine_id: str) -> MachineState:
        machine = await self.plane.store.get_machine(machine_id)
        assert machine is not None
        return machine.state

    async def settle(self, machine_id: str, *states: MachineState) -> MachineState:
        """The machine's state once it is one of `states` (each change wakes this; no time is asserted)."""
        for _ in range(200):
            if (state := await self.state(machine_id)) in states:
                return state
            await self.plane.feed.next_change(machine_id, 0.5)
        raise AssertionError(f"machine {machine_id} is {await self.state(machine_id)}, not one of {states}")


@pytest.fixture
async def world(
    tmp_path: Path, registry: EmbeddedRegistry, busybox_image: str, image_store_root: tuple[Path, ImageInfo]
) -> AsyncIterator[World]:
    from aerodrome.store import SqlStore

    store = SqlStore.open_sqlite(tmp_path / "aerodrome.db")
    await store.ensure_org("personal", "Personal")
    clock = ManualClock(now=START)
    runtime = RuncRuntime(
        tmp_path / "runtime", ImageStore(image_store_root[0], registries=(registry.url,)), ipv4_pool=TEST_POOL,
        egress=False,
    )  # fmt: skip
    plane = ControlPlane(store, runtime, LoopVolumeBackend(tmp_path / "volumes"), Fernet.generate_key(), clock=clock)
    # exits reach the plane as in `start()`, whose periodic passes are left out: the test runs each pass itself
    runtime.on_exit(plane.machines.handle_exit)
    app = App(ulid(), "jobs", "personal", "default", 7, "2026-12-03T10:00:00Z")
    await store.add_app(app)
    try:
        yield World(plane, clock, app, busybox_image)
    finally:
        ids = [m.id for m in await store.list_machines("jobs")]
        for machine_id in ids:
            await plane.machines.destroy(app, machine_id, force=True, nonce_=None, ignore_lease=True)
        await plane.close()
        await runtime.close()
        await store.close()
        assert await host_leftovers(tmp_path / "runtime", ids) + await network_leftovers(ids) == []


@needs_root
async def test_a_scheduled_machine_runs_once_a_period(world: World) -> None:
    hourly = await world.machine({"schedule": "hourly", "init": {"exec": ["true"]}}, skip_launch=True)
    daily = await world.machine({"schedule": "daily", "init": {"exec": ["true"]}}, skip_launch=True)
    plain = await world.machine({"init": {"exec": ["true"]}}, skip_launch=True)
    assert await world.plane.schedules.run_due() == []  # made in this period: not due before the next

    world.clock.advance(HOUR)
    assert await world.plane.schedules.run_due() == [hourly]
    assert await world.settle(hourly, MachineState.STOPPED) is MachineState.STOPPED  # ran `true`, and exited
    assert await world.plane.schedules.run_due() == []  # it ran in this hour already
    world.clock.advance(30 * 60)  # 11:45: the same hour
    assert await world.plane.schedules.run_due() == []
    world.clock.advance(15 * 60)  # 12:00: the next
    assert await world.plane.schedules.run_due() == [hourly]
    await world.settle(hourly, MachineState.STOPPED)

    world.clock.advance(DAY)
    assert sorted(await world.plane.schedules.run_due()) == sorted([hourly, daily])
    await world.settle(daily, MachineState.STOPPED)
    assert await world.state(plain) is MachineState.CREATED  # no schedule: never started by the plane


@needs_root
async def test_a_started_scheduled_machine_is_left_alone(world: World) -> None:
    busy = await world.machine({"schedule": "hourly", "init": {"exec": ["sleep", "100000"]}})
    await world.settle(busy, MachineState.STARTED)
    world.clock.advance(HOUR)
    assert await world.plane.schedules.run_due() == []  # still running from the last period: not started twice


@needs_root
async def test_a_standby_starts_when_its_machine_stops(world: World) -> None:
    primary = await world.machine({"init": {"exec": ["sleep", "100000"]}})
    await world.settle(primary, MachineState.STARTED)
    standby = await world.machine({"standbys": [primary], "init": {"exec": ["sleep", "100000"]}}, skip_launch=True)
    other = await world.machine({"standbys": ["another"], "init": {"exec": ["sleep", "100000"]}}, skip_launch=True)
    await asyncio.sleep(0)  # the standby's own creation started nothing
    assert await world.state(standby) is MachineState.CREATED

    await world.plane.machines.stop(world.app, primary, None)
    assert await world.settle(standby, MachineState.STARTED) is MachineState.STARTED
    assert await world.state(other) is MachineState.CREATED  # it stands by for another machine
    assert await world.plane.standbys.cover("jobs", primary) == []  # started already: nothing more to do


def test_schedules_and_standbys_are_checked() -> None:
    spec = normalize_config({"image": "busybox", "schedule": "weekly", "standbys": ["m1"]})[1]
    assert spec.schedule == "weekly" and spec.standbys == ("m1",)
    for config, message in [
        ({"schedule": "yearly"}, "invalid config.schedule 'yearly': must be one of hourly, daily, weekly, monthly"),
        ({"standbys": "m1"}, "invalid config.standbys"),
        ({"standbys": [""]}, "invalid config.standbys"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            normalize_config({"image": "busybox", **config})
