"""Scheduled machines (`config.schedule`: hourly, daily, weekly, monthly): the control plane starts a stopped one
once in each period of its schedule, as Fly's does; the machine's own process decides when it is done.

A period is a calendar one in UTC (the hour, the day, the ISO week, the month). A machine is due when it rests
(created or stopped) and its last start, or its creation if it never started, fell in an earlier period. The
last start is read from the machine's events, so a restart of the daemon neither loses nor repeats a run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aerodrome.control.machines import Machines
from aerodrome.control.periodic import Periodic
from aerodrome.core import AerodromeError, Clock, Machine, MachineState, Store, normalize_config

log = logging.getLogger("aerodrome.schedules")

RESTING = (MachineState.CREATED, MachineState.STOPPED)
CHECK_EVERY = 30.0  # seconds between passes: a run starts at most this late into its period


def period_of(schedule: str, seconds: float) -> tuple[int, ...]:
    """The period of `schedule` that the instant `seconds` (since the epoch) falls in, as a comparable key."""
    at = datetime.fromtimestamp(seconds, UTC)
    if schedule == "hourly":
        return (int(seconds // 3600),)
    if schedule == "daily":
        return (int(seconds // 86400),)
    if schedule == "weekly":
        year, week, _ = at.isocalendar()
        return (year, week)
    if schedule == "monthly":
        return (at.year, at.month)
    raise ValueError(f"unknown schedule {schedule!r}")


def _parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class Schedules:
    def __init__(self, store: Store, machines: Machines, clock: Clock, interval: float = CHECK_EVERY) -> None:
        self._store = store
        self._machines = machines
        self._clock = clock
        self.periodic = Periodic("schedules", interval, self.run_due, log)

    def start(self) -> None:
        self.periodic.start()

    async def close(self) -> None:
        await self.periodic.close()

    async def run_due(self) -> list[str]:
        """One pass: start every scheduled machine that is due; returns the ids started."""
        started = []
        for app in await self._store.list_apps(None):
            if app.destroying:
                continue
            for machine in await self._store.list_machines(app.name, states=RESTING):
                schedule = _schedule_of(machine)
                if schedule and await self._due(machine, schedule):
                    try:
                        await self._machines.start(app, machine.id, None, source="flyd")
                    except AerodromeError as exc:  # changed meanwhile, or the host refused: the next pass retries
                        log.warning("scheduled start of machine %s failed: %s", machine.id, exc)
                        continue
                    log.info("machine %s started on its %s schedule", machine.id, schedule)
                    started.append(machine.id)
        return started

    async def _due(self, machine: Machine, schedule: str) -> bool:
        starts = [e.timestamp / 1000 for e in await self._store.list_events(machine.id, limit=50) if e.type == "start"]
        last = max(starts) if starts else _parse_time(machine.created_at)
        return period_of(schedule, last) < period_of(schedule, self._clock.now())


def _schedule_of(machine: Machine) -> str:
    schedule = machine.config.get("schedule")
    if not schedule:
        return ""
    try:
        return normalize_config(machine.config)[1].schedule
    except AerodromeError:  # a row written before schedules were checked
        return ""
