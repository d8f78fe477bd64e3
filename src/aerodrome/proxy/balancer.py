"""Choosing a machine for a request or connection: least-loaded, soft and hard limits, autostart.

Fly's rules (reference notes §10): prefer a running machine under its soft limit; when every running machine
is over it, start a stopped or suspended one (suspended first: it resumes faster); between soft and hard only
if nothing better exists; never over the hard limit — wait briefly for capacity, then give up with a 503.
For HTTP each in-flight request holds one backend connection, so `connections` and `requests` count the same;
for TCP services the count is open connections.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from aerodrome.core import MachineState, UnavailableError
from aerodrome.proxy.directory import STARTABLE_STATES, AppRoute, Backend
from aerodrome.proxy.fleet import Fleet


class NoMachineError(UnavailableError):
    """No machine can take the request; the edge answers 503 with this message."""


@dataclass(frozen=True, slots=True)
class _Plan:
    backend: Backend | None
    needs_start: bool = False
    wait: bool = False
    reason: str = ""


class Balancer:
    """Picks a backend and holds its load until the caller releases it."""

    def __init__(self, fleet: Fleet, *, region: str = "local", queue_timeout: float = 5.0) -> None:
        self.fleet = fleet
        self.region = region
        self.queue_timeout = queue_timeout

    def pick_now(self, route: AppRoute) -> Backend | None:
        """A running machine under its soft limit, load acquired; None when the slow path must decide."""
        fleet = self.fleet
        if len(route.backends) == 1:  # one machine, the common case: nothing to rank
            backend = route.backends[0]
            load = fleet.serving_load(backend)
            if load is None or load >= backend.service.soft_limit:
                return None
            fleet.acquire(backend.machine_id)
            return backend
        candidates = []
        for backend in route.backends:
            load = fleet.serving_load(backend)
            if load is not None and load < backend.service.soft_limit:
                candidates.append((backend, load))
        best = self._nearest_least_loaded(candidates)
        if best is not None:
            fleet.acquire(best.machine_id)
        return best

    async def pick(self, route: AppRoute, force_instance: str | None = None) -> Backend:
        """A machine for the request, started if need be, with its load acquired. Raises `NoMachineError`."""
        deadline = self.fleet.clock() + self.queue_timeout
        while True:
            plan = self._plan(route, force_instance)
            if plan.backend is not None:
                self.fleet.acquire(plan.backend.machine_id)
                if plan.needs_start:
                    try:
                        await self.fleet.ensure_started(route.app, plan.backend)
                    except BaseException as exc:
                        self.fleet.release(plan.backend.machine_id)
                        if isinstance(exc, Exception):
                            raise NoMachineError(f"failed to start machine {plan.backend.machine_id}: {exc}") from exc
                        raise
                return plan.backend
            remaining = deadline - self.fleet.clock()
            if not plan.wait or remaining <= 0:
                raise NoMachineError(plan.reason or f"app {route.app} has no machine with spare capacity")
            await self.fleet.wait_for_capacity(remaining)

    def _plan(self, route: AppRoute, force_instance: str | None) -> _Plan:
        backends = route.backends
        if force_instance is not None:
            backends = tuple(b for b in backends if b.machine_id == force_instance)
            if not backends:
                return _Plan(None, reason=f"machine {force_instance} does not serve app {route.app}")
        if not backends:
            return _Plan(None, reason=f"app {route.app} has no machines")
        running = self._running(route, backends, gate=force_instance is None)
        best = self._least_loaded(route, running, under_soft=True)
        if best is not None:
            return _Plan(best, needs_start=self.fleet.is_starting(best.machine_id))
        autostart = backends[0].service.autostart or force_instance is not None
        startable = self._startable(backends) if autostart else []
        if startable:
            return _Plan(startable[0], needs_start=True)
        best = self._least_loaded(route, running, under_soft=False)
        if best is not None:
            return _Plan(best, needs_start=self.fleet.is_starting(best.machine_id))
        if running:
            return _Plan(None, wait=True, reason=f"every machine of app {route.app} is at its hard limit")
        if any(self.fleet.state(b) == MachineState.STARTED for b in backends):
            return _Plan(None, wait=True, reason=f"no machine of app {route.app} passes its readiness checks")
        if not autostart:
            return _Plan(None, reason=f"app {route.app} has no started machine and autostart is off")
        if any(self.fleet.is_stopping(b.machine_id) for b in backends):
            return _Plan(None, wait=True, reason=f"app {route.app}'s machines are stopping")
        return _Plan(None, reason=f"app {route.app} has no machine that can be started")

    def _running(
        self, route: AppRoute, backends: tuple[Backend, ...] | None = None, *, gate: bool = True
    ) -> list[Backend]:
        """Started machines that pass their readiness checks (unless not `gate`d: a forced instance), and those
        the edge is starting (their requests join the start, which waits for the checks)."""
        fleet = self.fleet
        return [
            b
            for b in (route.backends if backends is None else backends)
            if (
                fleet.is_starting(b.machine_id)
                or (fleet.state(b) == MachineState.STARTED and (not gate or fleet.ready(b)))
            )
            and not fleet.is_stopping(b.machine_id)
        ]

    def _startable(self, backends: tuple[Backend, ...]) -> list[Backend]:
        fleet = self.fleet
        candidates = [b for b in backends if fleet.state(b) in STARTABLE_STATES and not fleet.is_starting(b.machine_id)]
        candidates.sort(key=lambda b: (b.region != self.region, STARTABLE_STATES.index(fleet.state(b))))
        return candidates

    def _least_loaded(self, route: AppRoute, running: list[Backend], *, under_soft: bool) -> Backend | None:
        candidates = []
        for backend in running:
            load = self.fleet.load(backend.machine_id)
            service = backend.service
            limit = service.soft_limit if under_soft else service.hard_limit
            if not (under_soft or limit) or load < limit:
                candidates.append((backend, load))
        return self._nearest_least_loaded(candidates)

    def _nearest_least_loaded(self, candidates: list[tuple[Backend, int]]) -> Backend | None:
        """In this region if possible, then least loaded; a tie is broken at random."""
        best: Backend | None = None
        best_key = (True, 0)
        ties = 0
        for backend, load in candidates:
            key = (backend.region != self.region, load)
            if best is None or key < best_key:
                best, best_key, ties = backend, key, 1
            elif key == best_key:
                ties += 1
                if random.random() * ties < 1:  # each tied machine ends up chosen with equal odds
                    best = backend
        return best
