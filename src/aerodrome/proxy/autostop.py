"""The autostop loop: stop or suspend machines that have served nothing for the idle period.

Fly stops one machine per region per pass, every few minutes; aerodrome stops every idle machine in one pass,
after an idle period the operator picks. What must keep running follows Fly's excess rule (notes §10): with
load in a region, keep the machines over their soft limit plus one; with no load at all, keep none, except
`min_machines_running`, which counts in the primary region (every region when the route names none).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

from aerodrome.core import AerodromeError, MachineState
from aerodrome.proxy.directory import AppRoute, Backend
from aerodrome.proxy.fleet import Fleet

log = logging.getLogger(__name__)


class Autostopper:
    """Runs `sweep()` every `interval` seconds until closed."""

    def __init__(self, fleet: Fleet, *, idle_period: float = 300.0, interval: float = 30.0) -> None:
        self.fleet = fleet
        self.idle_period = idle_period
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._samples: dict[str, tuple[float, float, int]] = {}  # machine → (when, CPU seconds, I/O bytes)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except AerodromeError as exc:
                log.warning("autostop pass failed: %s", exc)

    async def sweep(self) -> list[str]:
        """One pass over every autostop route; returns the machines stopped or suspended."""
        routes = await self.fleet.directory.autostop_routes()
        await self._note_busy(routes)
        victims: dict[str, tuple[AppRoute, Backend]] = {}
        for route in routes:
            for backend in self._idle_excess(route):
                victims.setdefault(backend.machine_id, (route, backend))
        results = await asyncio.gather(
            *(self.fleet.stop(route.app, b, b.service.autostop == "suspend") for route, b in victims.values()),
            return_exceptions=True,
        )
        stopped = []
        for machine_id, result in zip(victims, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("autostop of machine %s failed: %s", machine_id, result)
            else:
                stopped.append(machine_id)
        return stopped

    async def _note_busy(self, routes: Sequence[AppRoute]) -> None:
        """`aerodrome_busy`: a machine whose cgroup used more CPU or block I/O since the last pass than its
        service's thresholds counts as active now, traffic or not (background work keeps it running)."""
        fleet = self.fleet
        watched = {
            b.machine_id: b.service
            for route in routes
            for b in route.backends
            if (b.service.busy_cpu_percent or b.service.busy_io_bytes_per_second)
            and fleet.state(b) == MachineState.STARTED
        }
        usage = await fleet.directory.usage(sorted(watched)) if watched else {}
        now = fleet.clock()
        samples = {machine_id: (now, cpu, io) for machine_id, (cpu, io) in usage.items()}
        for machine_id, (_, cpu, io) in samples.items():
            previous = self._samples.get(machine_id)
            if previous is None or now <= previous[0] or cpu < previous[1]:
                continue  # first sight, or counters restarted with the machine: measured from the next pass
            elapsed = now - previous[0]
            service = watched[machine_id]
            cpu_percent = 100 * (cpu - previous[1]) / elapsed
            io_rate = (io - previous[2]) / elapsed
            if (service.busy_cpu_percent and cpu_percent >= service.busy_cpu_percent) or (
                service.busy_io_bytes_per_second and io_rate >= service.busy_io_bytes_per_second
            ):
                fleet.note_activity(machine_id)
        self._samples = samples

    def _idle_excess(self, route: AppRoute) -> list[Backend]:
        fleet = self.fleet
        running = [
            b
            for b in route.backends
            if b.service.autostop != "off"
            and fleet.state(b) == MachineState.STARTED
            and not fleet.is_starting(b.machine_id)
            and not fleet.is_stopping(b.machine_id)
        ]
        by_region: dict[str, list[Backend]] = defaultdict(list)
        for backend in running:
            by_region[backend.region].append(backend)
        victims: list[Backend] = []
        min_running = max((b.service.min_machines_running for b in running), default=0)
        for region, machines in sorted(by_region.items()):
            keep = self._keep(machines)
            if route.primary_region in (None, region):
                keep = max(keep, min_running)
            idle = [b for b in machines if fleet.idle_for(b.machine_id) >= self.idle_period]
            idle.sort(key=lambda b: fleet.idle_for(b.machine_id), reverse=True)
            victims.extend(idle[: max(0, len(machines) - keep)])
        return victims

    def _keep(self, machines: list[Backend]) -> int:
        loads = [self.fleet.load(b.machine_id) for b in machines]
        if not any(loads):
            return 0
        over_soft = sum(1 for b, load in zip(machines, loads, strict=True) if load >= b.service.soft_limit)
        return over_soft + 1
