"""The seam between the edge and the control plane: what the edge asks, per connection or request.

The control plane (backed by the store) implements `Directory`. The edge never reaches the store or the
runtime itself; it asks the directory which machines serve a hostname or address, and asks it to start or
stop a machine. Every record here is a frozen dataclass so a cached answer cannot be changed under a
request that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aerodrome.core import MachineState, PortSpec, ServiceSpec
from aerodrome.proxy.statics import StaticFile, StaticRoot

#: States the edge can have a machine started from, cheapest first: one already on its way up (started through
#: the API a moment ago: the edge joins that start), then suspended, which resumes faster than a cold start.
STARTABLE_STATES = (
    MachineState.STARTING,
    MachineState.RESTARTING,
    MachineState.SUSPENDED,
    MachineState.STOPPED,
    MachineState.CREATED,
)


@dataclass(frozen=True, slots=True)
class Backend:
    """One machine that can serve a route, with the address the edge connects to."""

    machine_id: str
    state: MachineState
    address: str  # the machine's private IPv4 (or loopback), reachable from the host
    service: ServiceSpec  # the service matched by the edge port; `service.internal_port` is where to connect
    region: str = "local"
    gated: bool = False  # it has readiness checks: it takes traffic only while `Directory.ready` says so
    endpoint: tuple[str, int] = field(init=False, repr=False, compare=False)  # (address, port): the pool's key

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", (self.address, self.service.internal_port))

    @property
    def port(self) -> int:
        """The TCP port inside the machine the service listens on."""
        return self.service.internal_port


@dataclass(frozen=True, slots=True)
class AppRoute:
    """An app and the machines that may answer one of its service ports."""

    app: str
    edge_port: int  # the service port as the app declares it: 80, 443, 5432…
    backends: tuple[Backend, ...]
    primary_region: str | None = None  # `min_machines_running` counts here only; None: every region
    statics: tuple[StaticRoot, ...] = ()  # files answered from a machine's image, without waking it

    def port_spec(self) -> PortSpec | None:
        """The port entry (handlers, force_https) of the first backend's service for this edge port."""
        for backend in self.backends:
            for port in backend.service.ports:
                if port.port == self.edge_port:
                    return port
        return None


class Directory(Protocol):
    """What the edge needs from the control plane. Implementations must be safe to call concurrently."""

    async def route(self, host: str | None, local_addr: str, edge_port: int) -> AppRoute | None:
        """The app and candidate machines for a connection, or None when nothing matches.

        `host` is the request's Host header or TLS SNI (it may carry a port: `myapp.localhost:8080`) and is
        None on a dedicated address reached without one. `local_addr` is the address the client reached:
        a dedicated address routes to its app whatever the host. `edge_port` is the service port (80 for
        the shared HTTP listener, 443 for the HTTPS one). Backends are the app's machines whose services
        expose `edge_port`, in any state; destroyed machines are left out.
        """
        ...

    async def static_file(self, route: AppRoute, target: bytes) -> StaticFile | None:
        """The static file a GET of `target` names under `route.statics`, or None to ask the machine."""
        ...

    def ready(self, machine_id: str) -> bool:
        """Whether the machine's readiness checks all pass now (asked only of a `gated` backend; never blocks)."""
        ...

    async def start_machine(self, app: str, machine_id: str) -> None:
        """Start a stopped or created machine, or resume a suspended one; return once it runs.

        Raises an `AerodromeError` when the machine cannot start. Starting a started machine succeeds.
        """
        ...

    async def stop_machine(self, app: str, machine_id: str, suspend: bool) -> None:
        """Stop the machine (with its stop signal and timeout) or, with `suspend`, suspend it."""
        ...

    async def usage(self, machine_ids: Sequence[str]) -> dict[str, tuple[float, int]]:
        """For `aerodrome_busy`: each running machine's CPU seconds and block I/O bytes since it started (a
        machine without counters is left out)."""
        ...

    async def autostop_routes(self) -> Sequence[AppRoute]:
        """Every route whose service has autostop `stop` or `suspend`, with all its machines.

        The autostop loop walks these; machines the edge has never routed to are included so that a
        machine started through the API is stopped once idle too.
        """
        ...
