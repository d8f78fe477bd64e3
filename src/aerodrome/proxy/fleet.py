"""What the edge knows about machines beyond the directory: load, activity, and the starts and stops it drives.

The directory is backed by a database, so its answers are cached for a short while; a start or stop made
through the edge overrides the cached state at once (and forgets the app's cached routes), so a request arriving
right after a start sees the machine as started even if the control plane is slow to say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from aerodrome.core import MachineState, UnavailableError
from aerodrome.proxy.directory import AppRoute, Backend, Directory
from aerodrome.proxy.traffic import AppTraffic

_RouteKey = tuple[str | None, str, int]
_ROUTES_KEPT = 4096  # cached answers before expired ones are swept out (hosts come from clients: unbounded)


@dataclass(slots=True)
class _Override:
    state: MachineState
    until: float


class Fleet:
    """Per-machine in-flight counts and last activity, a route cache, and single-flight start and stop."""

    def __init__(
        self,
        directory: Directory,
        *,
        route_ttl: float = 1.0,
        start_timeout: float = 60.0,
        port_poll_interval: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.route_ttl = route_ttl
        self.start_timeout = start_timeout
        self.port_poll_interval = port_poll_interval
        self.clock = clock
        self._routes: dict[_RouteKey, tuple[AppRoute | None, float]] = {}
        self._overrides: dict[str, _Override] = {}
        self._load: dict[str, int] = {}
        self._last_activity: dict[str, float] = {}
        self._starts: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, asyncio.Task[None]] = {}
        self._capacity: asyncio.Event | None = None  # set while a request waits for capacity
        self._readiness: asyncio.Event | None = None  # set when a check changes while a start waits for one
        self.starts_total = 0  # machines started by the edge, for tests and metrics
        self.traffic: dict[str, AppTraffic] = {}  # by app name, read by `/metrics`

    def traffic_of(self, app: str) -> AppTraffic:
        """The app's traffic counts, made at its first request (an app's name is not reused while it lives)."""
        traffic = self.traffic.get(app)
        if traffic is None:
            traffic = self.traffic[app] = AppTraffic()
        return traffic

    # --- routes -------------------------------------------------------------------------------------------

    def cached_route(self, host: str | None, local_addr: str, edge_port: int) -> AppRoute | bool | None:
        """The cached route, or False when the cache has no fresh answer (a sync fast path)."""
        entry = self._routes.get((host, local_addr, edge_port))
        if entry is None or entry[1] < self.clock():
            return False
        return entry[0]

    async def route(self, host: str | None, local_addr: str, edge_port: int) -> AppRoute | None:
        """The directory's route for a connection, through the cache."""
        cached = self.cached_route(host, local_addr, edge_port)
        if cached is not False:
            return cached  # type: ignore[return-value]
        found = await self.directory.route(host, local_addr, edge_port)
        now = self.clock()
        if len(self._routes) >= _ROUTES_KEPT:
            self._routes = {key: entry for key, entry in self._routes.items() if entry[1] >= now}
            if len(self._routes) >= _ROUTES_KEPT:
                self._routes.clear()
        self._routes[(host, local_addr, edge_port)] = (found, now + self.route_ttl)
        return found

    def forget_routes(self, app: str) -> None:
        """Drop the app's cached routes, and every cached "no route": a new machine may be what gives a host one."""
        routes = self._routes.items()
        self._routes = {key: entry for key, entry in routes if entry[0] is not None and entry[0].app != app}

    def state(self, backend: Backend) -> MachineState:
        """The machine's state, preferring what the edge itself did to it recently."""
        override = self._overrides.get(backend.machine_id)
        if override is not None and override.until >= self.clock():
            return override.state
        return backend.state

    def is_starting(self, machine_id: str) -> bool:
        return machine_id in self._starts

    def is_stopping(self, machine_id: str) -> bool:
        return machine_id in self._stops

    def machine_changed(self, machine_id: str, app: str) -> None:
        """The control plane changed a machine of `app`: forget the app's cached routes and what the edge assumed
        about the machine."""
        self._overrides.pop(machine_id, None)
        self.forget_routes(app)

    def forget_all(self) -> None:
        """Changes may have been missed (the change feed was cut off): every route is asked again."""
        self._overrides.clear()
        self._routes = {}

    def ready(self, backend: Backend) -> bool:
        """Whether the machine may take new traffic as far as its readiness checks go."""
        return not backend.gated or self.directory.ready(backend.machine_id)

    def readiness_changed(self, machine_id: str, app: str) -> None:
        """A check of the machine changed status: routes are asked again, and waiting starts and requests look."""
        self.forget_routes(app)
        event, self._readiness = self._readiness, None
        if event is not None:
            event.set()
        self._signal_capacity()

    def _settle(self, app: str, machine_id: str, state: MachineState) -> None:
        # Long enough for the control plane to catch up; the app's routes are forgotten so it is asked again.
        self._overrides[machine_id] = _Override(state, self.clock() + max(5.0, 5 * self.route_ttl))
        self.forget_routes(app)

    # --- load and activity ----------------------------------------------------------------------------------

    def load(self, machine_id: str) -> int:
        """In-flight requests (or open connections, for TCP services) on the machine."""
        return self._load.get(machine_id, 0)

    def serving_load(self, backend: Backend) -> int | None:
        """The machine's load when it is started and neither starting nor stopping (it can take a request at
        once); None otherwise."""
        machine_id = backend.machine_id
        if machine_id in self._starts or machine_id in self._stops:
            return None
        if (self.state(backend) if self._overrides else backend.state) is not MachineState.STARTED:
            return None
        if backend.gated and not self.directory.ready(machine_id):
            return None
        return self._load.get(machine_id, 0)

    def acquire(self, machine_id: str) -> None:
        # No activity stamp: `idle_for` is 0 while the load lasts, and `release` stamps when it ends.
        self._load[machine_id] = self._load.get(machine_id, 0) + 1

    def release(self, machine_id: str) -> None:
        remaining = self._load.get(machine_id, 1) - 1
        if remaining:
            self._load[machine_id] = remaining
        else:
            self._load.pop(machine_id, None)
            self._last_activity[machine_id] = self.clock()
        if self._capacity is not None:
            self._signal_capacity()

    def note_activity(self, machine_id: str) -> None:
        """Activity other than traffic (a busy cgroup): the idle time starts again from now."""
        self._last_activity[machine_id] = self.clock()

    def idle_for(self, machine_id: str) -> float:
        """Seconds since the machine last had traffic; 0 while it has some. First sight counts as traffic."""
        if self._load.get(machine_id):
            return 0.0
        now = self.clock()
        return now - self._last_activity.setdefault(machine_id, now)

    def _signal_capacity(self) -> None:
        event, self._capacity = self._capacity, None
        if event is not None:
            event.set()

    async def wait_for_capacity(self, timeout: float) -> None:
        """Return when some load was released or a machine came up, or after `timeout`."""
        if self._capacity is None:
            self._capacity = asyncio.Event()  # made only when someone waits: releases are on the hot path
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._capacity.wait(), timeout)

    # --- start and stop -------------------------------------------------------------------------------------

    async def ensure_started(self, app: str, backend: Backend) -> None:
        """Start the machine unless it runs; one start per machine however many requests wait for it."""
        if self.state(backend) == MachineState.STARTED and not self.is_stopping(backend.machine_id):
            return
        task = self._starts.get(backend.machine_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._start(app, backend))
            self._starts[backend.machine_id] = task
            task.add_done_callback(functools.partial(self._start_done, backend.machine_id))
        await asyncio.shield(task)

    def _start_done(self, machine_id: str, task: asyncio.Task[None]) -> None:
        self._starts.pop(machine_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here so an unwaited failure is not reported as lost
        self._signal_capacity()

    async def _start(self, app: str, backend: Backend) -> None:
        stopping = self._stops.get(backend.machine_id)
        if stopping is not None:
            await asyncio.wait([stopping])
        began = self.clock()
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self.directory.start_machine(app, backend.machine_id)
                await self._wait_for_port(backend.address, backend.port)
        except TimeoutError:
            raise UnavailableError(f"machine {backend.machine_id} did not start in {self.start_timeout:g}s") from None
        if backend.gated:
            with contextlib.suppress(TimeoutError):  # past the start timeout the request goes through, as Fly's
                async with asyncio.timeout_at(deadline):
                    await self._wait_until_ready(backend.machine_id)
        self.starts_total += 1
        self.traffic_of(app).autostarted(self.clock() - began)
        self._settle(app, backend.machine_id, MachineState.STARTED)

    async def _wait_until_ready(self, machine_id: str) -> None:
        while not self.directory.ready(machine_id):
            if self._readiness is None:
                self._readiness = asyncio.Event()
            await self._readiness.wait()

    async def _wait_for_port(self, address: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                transport, _ = await loop.create_connection(asyncio.Protocol, address, port)
            except OSError:
                await asyncio.sleep(self.port_poll_interval)
                continue
            transport.close()
            return

    async def stop(self, app: str, backend: Backend, suspend: bool) -> None:
        """Stop or suspend the machine through the directory; new requests skip it meanwhile."""
        if backend.machine_id in self._stops or backend.machine_id in self._starts:
            return
        task = asyncio.get_running_loop().create_task(self._stop(app, backend, suspend))
        self._stops[backend.machine_id] = task
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._stops.pop(backend.machine_id, None)

    async def _stop(self, app: str, backend: Backend, suspend: bool) -> None:
        try:
            await self.directory.stop_machine(app, backend.machine_id, suspend)
        finally:
            self._stops.pop(backend.machine_id, None)
        self._settle(app, backend.machine_id, MachineState.SUSPENDED if suspend else MachineState.STOPPED)

    async def close(self) -> None:
        """Wait for starts and stops in flight; they belong to the control plane and must not be torn."""
        pending = [*self._starts.values(), *self._stops.values()]
        if pending:
            await asyncio.wait(pending)
