"""The `Directory` of a running server: the store answers which machines serve a hostname or address, and the
control plane's narrow `MachinePower` port starts and stops them for the edge."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence

from aerodrome.control import is_standby
from aerodrome.core import (
    CheckBoard,
    Machine,
    MachinePower,
    MachineState,
    ServiceSpec,
    StaticSpec,
    Store,
)
from aerodrome.proxy.directory import AppRoute, Backend
from aerodrome.proxy.statics import MAX_STATIC_BYTES, StaticFile, StaticReader, StaticRoot, content_type, match

#: Machines the edge never routes to.
_GONE = (MachineState.DESTROYED, MachineState.DESTROYING, MachineState.LAUNCH_FAILED)
_Parsed = tuple[tuple[ServiceSpec, ...], bool, tuple[StaticSpec, ...]]  # services, readiness-gated, statics
_SPECS_KEPT = 4096  # parsed service lists remembered; past this the oldest half is forgotten


class ControlDirectory:
    def __init__(
        self,
        store: Store,
        power: MachinePower,
        *,
        domain: str,
        dedicated: Callable[[str], str | None] | None = None,
        hostnames: Callable[[str], str | None] | None = None,
        checks: CheckBoard | None = None,
        static_reader: StaticReader | None = None,
        usage_reader: Callable[[str], tuple[float, int] | None] | None = None,
    ) -> None:
        self._store = store
        self._power = power  # the control plane, as far as the edge may act on it
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
            if machine.state in _GONE or machine.cordoned or not self._power.reachable(machine.host):
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
                        address=self._address_of(machine),
                        service=service,
                        region=machine.region,
                        gated=gated,
                    )
                )
        if not backends:
            return None
        return AppRoute(app=app_name, edge_port=edge_port, backends=tuple(backends), statics=statics)

    def _address_of(self, machine: Machine) -> str:
        """The machine's IPv4 address on its host, or its 6PN address when its host is across the private network
        (IPv4 private addresses are host-local)."""
        if self._power.on_private_network(machine.host):
            return machine.private_ip or machine.private_ipv4
        return machine.private_ipv4 or machine.private_ip

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
        await self._power.start(app, machine_id)

    async def stop_machine(self, app: str, machine_id: str, suspend: bool) -> None:
        await self._power.stop(app, machine_id, suspend)

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
            spec = self._power.spec_of(machine)
            parsed = self._specs[key] = (spec.services, any(c.readiness for c in spec.checks), spec.statics)
        return parsed


def _service_for(services: Sequence[ServiceSpec], edge_port: int) -> ServiceSpec | None:
    for service in services:
        if service.protocol == "tcp" and any(port.port == edge_port for port in service.ports):
            return service
    return None
