"""Scheduled and standby machines on an in-process control plane: a real SQLite store, the in-memory FakeAgent
(its machines exit when the test says) and a manual clock, so that each schedule's periods are crossed without
waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aerodrome.control import ControlPlane, Secrets, Settings, period_of
from aerodrome.core import App, InvalidArgumentError, MachineState, normalize_config, ulid
from aerodrome.runtime import RegistryTokens
from aerodrome.store import SqlStore, sqlite_url
from tests.support.clock import ManualClock
from tests.support.fake_agent import FakeAgent

IMAGE = "registry.local/library/busybox:latest"
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
    agent: FakeAgent
    clock: ManualClock
    app: App

    async def machine(self, config: dict[str, Any], **body: Any) -> str:
        made = await self.plane.machines.create(self.app, 1, {"config": {"image": IMAGE, **config}, **body})
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

    async def job_ends(self, machine_id: str) -> None:
        """The machine's process exits 0, as a scheduled job does when it is done."""
        await self.settle(machine_id, MachineState.STARTED)
        self.agent.exit(machine_id, 0)
        await self.settle(machine_id, MachineState.STOPPED)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = await SqlStore.open(sqlite_url(tmp_path / "aerodrome.db"))
    await store.ensure_org("personal", "Personal")
    clock = ManualClock(now=START)
    agent = FakeAgent()
    # the periodic passes are off: each test runs a pass itself, after moving the clock
    settings = Settings(volume_check_interval=0, schedule_interval=0)
    plane = ControlPlane(
        store, agent, Secrets.new_key(), settings, clock=clock, registry_signer=RegistryTokens(tmp_path / "reg")
    )
    app = App(ulid(), "jobs", "personal", "default", 7, "2026-12-03T10:00:00Z")
    await store.add_app(app)
    await plane.start()
    try:
        yield World(plane, agent, clock, app)
    finally:
        await plane.close()
        await store.close()


async def test_a_scheduled_machine_runs_once_a_period(world: World) -> None:
    hourly = await world.machine({"schedule": "hourly", "init": {"exec": ["true"]}}, skip_launch=True)
    daily = await world.machine({"schedule": "daily", "init": {"exec": ["true"]}}, skip_launch=True)
    plain = await world.machine({"init": {"exec": ["true"]}}, skip_launch=True)
    assert await world.plane.schedules.run_due() == []  # made in this period: not due before the next

    world.clock.advance(HOUR)
    assert await world.plane.schedules.run_due() == [hourly]
    await world.job_ends(hourly)
    assert await world.plane.schedules.run_due() == []  # it ran in this hour already
    world.clock.advance(30 * 60)  # 11:45: the same hour
    assert await world.plane.schedules.run_due() == []
    world.clock.advance(15 * 60)  # 12:00: the next
    assert await world.plane.schedules.run_due() == [hourly]
    await world.job_ends(hourly)

    world.clock.advance(DAY)
    assert sorted(await world.plane.schedules.run_due()) == sorted([hourly, daily])
    await world.job_ends(daily)
    assert await world.state(plain) is MachineState.CREATED  # no schedule: never started by the plane


async def test_a_started_scheduled_machine_is_left_alone(world: World) -> None:
    busy = await world.machine({"schedule": "hourly", "init": {"exec": ["sleep", "100000"]}})
    await world.settle(busy, MachineState.STARTED)
    world.clock.advance(HOUR)
    assert await world.plane.schedules.run_due() == []  # still running from the last period: not started twice


async def test_a_standby_starts_when_its_machine_is_lost_not_when_asked_to_stop(world: World) -> None:
    primary = await world.machine({"init": {"exec": ["sleep", "100000"]}})
    await world.settle(primary, MachineState.STARTED)
    standby = await world.machine({"standbys": [primary], "init": {"exec": ["sleep", "100000"]}}, skip_launch=True)
    other = await world.machine({"standbys": ["another"], "init": {"exec": ["sleep", "100000"]}}, skip_launch=True)
    await asyncio.sleep(0)  # the standby's own creation started nothing
    assert await world.state(standby) is MachineState.CREATED

    await world.plane.machines.stop(world.app, primary, None)  # asked for: not a loss
    assert await world.settle(primary, MachineState.STOPPED) is MachineState.STOPPED
    assert await world.plane.standbys.cover("jobs", primary) == []
    assert await world.state(standby) is MachineState.CREATED

    await world.plane.machines.start(world.app, primary, None)
    await world.settle(primary, MachineState.STARTED)
    world.agent.exit(primary, 0)  # its program ends on its own: the machine is lost
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
