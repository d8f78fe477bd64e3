"""The host's health checker: every check of every started machine, from one scheduler.

One task holds a heap of due checks; each due check runs as a short probe (bounded by its timeout) and is put
back on the heap one interval after it answers, so a slow machine never has two probes of one check at once.
The change feed marks machines to look at again (a start tracks its checks afresh, a stop forgets them), and a
periodic pass over the store adopts what the feed cannot tell (machines that kept running across a daemon
restart, another replica's changes). Until a check has passed once it runs every `FIRST_PASS_INTERVAL` (at most
its interval), so an autostart is not held a whole interval; failures within its grace period are warnings.
A change of status or output is recorded in the board (the Machine's `checks`, the edge's readiness) and as
a machine event (`type: "check"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from aerodrome.core import (
    CHECK_CRITICAL,
    CHECK_PASSING,
    CHECK_WARNING,
    CheckBoard,
    CheckResult,
    CheckSpec,
    Clock,
    InvalidArgumentError,
    Machine,
    MachineEvent,
    MachineState,
    Store,
    SystemClock,
    normalize_config,
    rfc3339,
    ulid,
)
from aerodrome.inside.probes import Outcome, Prober

log = logging.getLogger(__name__)

FIRST_PASS_INTERVAL = 0.5  # seconds between runs of a check that has not passed since the machine started
RESYNC_INTERVAL = 5.0  # seconds between passes over the store


@dataclass(slots=True)
class _Tracked:
    machine: Machine
    checks: tuple[CheckSpec, ...]
    started: float  # monotonic, when tracking began: the grace periods count from here
    generation: int
    passed: set[str] = field(default_factory=set)  # checks that have passed since the start


class HealthChecker:
    def __init__(self, store: Store, board: CheckBoard, *, clock: Clock | None = None) -> None:
        self._store = store
        self._board = board
        self._clock = clock or SystemClock()
        self._prober = Prober()
        self._tracked: dict[str, _Tracked] = {}
        self._heap: list[tuple[float, int, str, int, int]] = []  # (due, tie, machine id, check index, generation)
        self._tie = 0
        self._generation = 0
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def changed(self, machine_id: str, app_name: str = "") -> None:
        """A change-feed listener: look at the machine again (soon, from the scheduler's task)."""
        self._dirty.add(machine_id)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health checks")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._prober.close()

    async def _run(self) -> None:
        next_resync = 0.0
        while True:
            now = time.monotonic()
            if now >= next_resync:
                await self._guarded(self._resync())
                next_resync = now + RESYNC_INTERVAL
            if self._dirty:
                dirty, self._dirty = self._dirty, set()
                await self._guarded(self._refresh(dirty))
            self._launch_due(time.monotonic())
            due = self._heap[0][0] if self._heap else next_resync
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(due, next_resync) - time.monotonic()))

    async def _guarded(self, step: Awaitable[None]) -> None:
        try:
            await step
        except Exception:  # the store may be briefly unavailable; the next pass tries again
            log.exception("health checks: reading machines failed")

    async def _resync(self) -> None:
        live = {m.id: m for m in await self._store.live_machines()}
        for machine_id in set(self._tracked) - set(live):
            self._untrack(machine_id)
        for machine in live.values():
            self._reconcile(machine)

    async def _refresh(self, machine_ids: set[str]) -> None:
        for machine_id in machine_ids:
            machine = await self._store.get_machine(machine_id)
            if machine is None:
                self._untrack(machine_id)
            else:
                self._reconcile(machine)

    def _reconcile(self, machine: Machine) -> None:
        tracked = self._tracked.get(machine.id)
        if machine.state is not MachineState.STARTED:
            self._untrack(machine.id)
        elif tracked is None or tracked.machine.instance_id != machine.instance_id:
            self._track(machine)
        else:
            tracked.machine = machine

    def _track(self, machine: Machine) -> None:
        try:
            checks = normalize_config(machine.config)[1].checks
        except InvalidArgumentError:  # a config stored before checks were validated: nothing to run
            checks = ()
        self._untrack(machine.id)
        if not checks:
            return
        self._generation += 1
        self._tracked[machine.id] = _Tracked(machine, checks, time.monotonic(), self._generation)
        self._board.track(machine.id, machine.app_name, checks, rfc3339(self._clock.now()))
        for index in range(len(checks)):
            self._schedule(machine.id, index, 0.0)

    def _untrack(self, machine_id: str) -> None:
        if self._tracked.pop(machine_id, None) is not None:
            self._board.forget(machine_id)  # stale heap entries are skipped by their generation

    def _schedule(self, machine_id: str, index: int, delay: float) -> None:
        tracked = self._tracked[machine_id]
        self._tie += 1
        heapq.heappush(self._heap, (time.monotonic() + delay, self._tie, machine_id, index, tracked.generation))

    def _launch_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, _, machine_id, index, generation = heapq.heappop(self._heap)
            tracked = self._tracked.get(machine_id)
            if tracked is None or tracked.generation != generation:
                continue
            task = asyncio.create_task(self._probe(tracked, index))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _probe(self, tracked: _Tracked, index: int) -> None:
        check = tracked.checks[index]
        machine = tracked.machine
        outcome = await self._prober.run(check, machine.private_ipv4 or machine.private_ip)
        if self._tracked.get(machine.id) is not tracked:
            return  # stopped or restarted while the probe ran
        result = CheckResult(
            check.name, self._status(tracked, check, outcome), outcome.output, rfc3339(self._clock.now())
        )
        if outcome.ok:
            tracked.passed.add(check.name)
        interval = check.interval if check.name in tracked.passed else min(check.interval, FIRST_PASS_INTERVAL)
        self._schedule(machine.id, index, interval)
        self._wake.set()
        if self._board.record(machine.id, machine.app_name, result):
            await self._record_event(machine, result)

    def _status(self, tracked: _Tracked, check: CheckSpec, outcome: Outcome) -> str:
        if outcome.ok:
            return CHECK_PASSING
        in_grace = time.monotonic() - tracked.started < check.grace_period
        return CHECK_WARNING if in_grace else CHECK_CRITICAL

    async def _record_event(self, machine: Machine, result: CheckResult) -> None:
        event = MachineEvent(
            id=ulid(),
            machine_id=machine.id,
            type="check",
            status=result.status,
            source="flyd",
            timestamp=int(self._clock.now() * 1000),
            request={"check": result.name, "output": result.output},
        )
        try:
            await self._store.add_event(machine, event)
        except Exception:  # a machine destroyed meanwhile; its checks are gone with it
            log.debug("health checks: event of %s not recorded", machine.id, exc_info=True)
