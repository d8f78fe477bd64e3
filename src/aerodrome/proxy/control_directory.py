"""The `Directory` of a running server: the control plane answers which machines serve a hostname or address,
and starts or stops them for the edge."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence

from aerodrome.control import Machines, is_standby
from aerodrome.core import (
    App,
    CheckBoard,
    FailedPreconditionError,
    Machine,
    MachineState,
    NotFoundError,
    ServiceSpec,
    StaticSpec,
    Store,
)
from aerodrome.proxy.directory import AppRoute, Backend
from aerodrome.proxy.statics import MAX_STATIC_BYTES, StaticFile, StaticReader, StaticRoot, content_type, match

#: Machines the edge never routes to.
_GONE = (MachineState.DESTROYED, MachineState.DESTROYING, MachineState.LAUNCH_FAILED)
_Parsed = tuple[tuple[ServiceSpec, ...], bool, tuple[StaticSpec, ...]]  # services, readiness-gated, statics
#: What a start that lost the claim waits for (the edge's own start timeout bounds the whole), and how often
#: it tries again when the machine came to rest stopped instead.
_AT_REST = ("started", "stopped", "suspended", "failed", "destroyed")
_START_WAIT = 300.0
_START_ATTEMPTS = 3
_SPECS_KEPT = 4096  # parsed service lists remembered; past this the oldest half is forgotten


class ControlDirectory:
    def __init__(
        self,
        store: Store,
        machines: Machines,
        *,
        domain: str,
        dedicated: Callable[[str], str | None] | None = None,
        hostnames: Callable[[str], str | None] | None = None,
        checks: CheckBoard | None = None,
        static_reader: StaticReader | None = None,
        usage_reader: Callable[[str], tuple[float, int] | None] | None = None,
    ) -> None:
        self._store = store
        self._machines = machines
        self._suffix = "." + domain.strip(".")
        self._dedicated = dedicated or (lambda _address: None)
        self._hostnames = hostnames or (lambda _hostname: None)  # custom hostnames (certificates) → app
        self._checks = checks or CheckBoard()  # a board nobody writes: no machine is gated then
        self._static_reader = static_reader  # None: statics are left to the machines
        self._usage_reader = usage_reader  # a machine's (CPU seconds, block I/O bytes); None: never busy
        self._specs: dict[tuple[str, str], _Parsed] = {}

    def app_name_for(self, host: str | None, local_addr: str) -> str | None:
        """`myapp.localhost:8080` → `myapp`; a custom hostname → its app; a dedicated address → its app whatever
        the host."""
        by_address = self._dedicated(local_addr)
        if by_address:
            return by_address
        if not host:
            return None
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
        name = name.lower().rstrip(".")
        custom = self._hostnames(name)
        if custom:
            return custom
        if not name.endswith(self._suffix):
            return None
        label = name[: -len(self._suffix)]
        return label if label and "." not in label else None

    async def route(self, host: str | None, local_addr: str, edge_port: int) -> AppRoute | None:
        name = self.app_name_for(host, local_addr)
        if name is None:
            return None
        app = await self._store.get_app(name)
        if app is None or app.destroying:
            return None
        machines = await self._store.list_machines(app.name)
        return self._route_of(app.name, edge_port, machines)

    def _route_of(self, app_name: str, edge_port: int, machines: Sequence[Machine]) -> AppRoute | None:
        backends = []
        statics: tuple[StaticRoot, ...] = ()
        for machine in machines:
            if machine.state in _GONE or machine.cordoned or not self._machines.hosts.reachable(machine.host):
                continue  # a machine whose host is out of reach is routed around
            if is_standby(machine.config):
                continue  # a standby waits for the machine it stands by for
            services, gated, machine_statics = self._spec_of(machine)
            digest = str(machine.image_ref.get("digest") or "")
            if machine_statics and not statics and digest:
                statics = tuple(StaticRoot(spec, digest) for spec in machine_statics)
            service = _service_for(services, edge_port)
            if service is not None:
                backends.append(
                    Backend(
                        machine_id=machine.id,
                        state=machine.state,
                        address=machine.private_ipv4 or machine.private_ip,
                        service=service,
                        region=machine.region,
                        gated=gated,
                    )
                )
        if not backends:
            return None
        return AppRoute(app=app_name, edge_port=edge_port, backends=tuple(backends), statics=statics)

    async def static_file(self, route: AppRoute, target: bytes) -> StaticFile | None:
        found = match(route.statics, target)
        if found is None or self._static_reader is None:
            return None
        image, guest_file = found
        body = await asyncio.to_thread(self._static_reader, image, guest_file, MAX_STATIC_BYTES)
        return None if body is None else StaticFile(body, content_type(guest_file))

    def ready(self, machine_id: str) -> bool:
        return self._checks.ready(machine_id)

    async def start_machine(self, app: str, machine_id: str) -> None:
        """Start the machine once, whichever replica's edge asks first: the start's compare-and-set on the row
        is the claim. The loser (412, or a machine already starting) waits for it to settle, and starts it itself
        only if it came to rest stopped (the winner's start failed, or the conflict was another change)."""
        record = await self._app(app)
        for attempt in range(_START_ATTEMPTS):
            try:
                await self._machines.start(record, machine_id, None, source="flyd")
                return
            except FailedPreconditionError:
                machine, _ = await self._machines.wait(
                    record, machine_id, _AT_REST, version=None, from_event_id=None, timeout=_START_WAIT
                )
                if machine.state is MachineState.STARTED:
                    return
                if attempt == _START_ATTEMPTS - 1:
                    raise

    async def stop_machine(self, app: str, machine_id: str, suspend: bool) -> None:
        record = await self._app(app)
        if suspend:
            await self._machines.suspend(record, machine_id, None, source="flyd")
        else:
            await self._machines.stop(record, machine_id, None, source="flyd")

    async def usage(self, machine_ids: Sequence[str]) -> dict[str, tuple[float, int]]:
        reader = self._usage_reader
        if reader is None or not machine_ids:
            return {}
        read = await asyncio.to_thread(lambda: [(m, reader(m)) for m in machine_ids])
        return {machine_id: found for machine_id, found in read if found is not None}

    async def autostop_routes(self) -> Sequence[AppRoute]:
        by_app: defaultdict[str, list[Machine]] = defaultdict(list)
        for machine in await self._store.live_machines():
            by_app[machine.app_name].append(machine)
        routes = []
        for app_name, machines in by_app.items():
            ports = {
                port.port
                for m in machines
                for service in self._services_of(m)
                if service.autostop != "off"
                for port in service.ports
            }
            for port in sorted(ports):
                route = self._route_of(app_name, port, machines)
                if route is not None:
                    routes.append(route)
        return routes

    async def service_ports(self, app: str) -> set[int]:
        """Every port the app's machines declare, for binding its dedicated addresses."""
        return {
            port.port
            for machine in await self._store.list_machines(app)
            for service in self._services_of(machine)
            for port in service.ports
        }

    def _services_of(self, machine: Machine) -> tuple[ServiceSpec, ...]:
        return self._spec_of(machine)[0]

    def _spec_of(self, machine: Machine) -> _Parsed:
        """The machine's services, whether it has readiness checks, and its statics, parsed once per version of
        its config.
        Every update makes a new version (`instance_id`); the changes made in place (metadata, memory) leave
        both alone."""
        key = (machine.id, machine.instance_id)
        parsed = self._specs.get(key)
        if parsed is None:
            if len(self._specs) >= _SPECS_KEPT:
                for stale in list(self._specs)[: _SPECS_KEPT // 2]:  # insertion order: the oldest first
                    del self._specs[stale]
            spec = self._machines.spec_of(machine)
            parsed = self._specs[key] = (spec.services, any(c.readiness for c in spec.checks), spec.statics)
        return parsed

    async def _app(self, name: str) -> App:
        app = await self._store.get_app(name)
        if app is None or app.destroying:
            raise NotFoundError(f"app {name!r} not found")
        return app


def _service_for(services: Sequence[ServiceSpec], edge_port: int) -> ServiceSpec | None:
    for service in services:
        if service.protocol == "tcp" and any(port.port == edge_port for port in service.ports):
            return service
    return None
