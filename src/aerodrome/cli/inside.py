"""`aerodrome serve --dns`: the resolver at fdaa::3, the API at `_api.internal:4280`, and each machine's /.fly/api.

The runtime puts the service addresses on every veth and opens exactly these ports there to machines; the
resolver and the API's extra listeners bind them with IP_FREEBIND, so they listen before any machine runs.
Everything here goes with the daemon: the sockets close, the firewall openings are removed by the runtime.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from starlette.types import ASGIApp

from aerodrome.cli.config import HostCheckError
from aerodrome.control import ControlPlane
from aerodrome.core import MachineState, Store
from aerodrome.inside import (
    GUEST_API_PORT,
    RESOLVER_IPV4,
    RESOLVER_IPV6,
    Directory,
    GuestApi,
    HealthChecker,
    Resolver,
    ResolverSettings,
    freebind_socket,
)
from aerodrome.proxy import Edge
from aerodrome.runtime import HostServices, RuncRuntime, machine_usage

ADDRESSES = (RESOLVER_IPV6, RESOLVER_IPV4)
GUEST_TOKEN_NAME = "/.fly/api"


def host_services(dns: bool) -> HostServices | None:
    """What of the host machines reach with `--dns`: the resolver's port and the API's, at ADDRESSES."""
    if not dns:
        return None
    return HostServices(ADDRESSES, ("udp/53", "tcp/53", f"tcp/{GUEST_API_PORT}"))


@dataclass
class Inside:
    resolver: Resolver
    guest_api: GuestApi

    async def close(self) -> None:
        await self.guest_api.close()
        await self.resolver.close()


async def start_inside(
    store: Store, plane: ControlPlane, runtime: RuncRuntime, app: ASGIApp, *, egress: bool
) -> Inside:
    """Start the resolver and register the /.fly/api sockets; before the control plane starts any machine."""
    directory = Directory(store)
    plane.feed.subscribe(directory.changed)
    resolver = Resolver(directory, ResolverSettings(addresses=ADDRESSES, api=ADDRESSES, forward=egress))
    try:
        await resolver.start()
    except OSError as exc:
        raise HostCheckError(
            f"the machines' resolver cannot listen at {', '.join(ADDRESSES)} port 53 ({exc.strerror}): another "
            "aerodrome serve on this host answers there; run this one with --no-dns"
        ) from None
    guest_api = GuestApi(app, directory, lambda org: plane.tokens.ephemeral(org, GUEST_TOKEN_NAME))
    runtime.on_start(guest_api.listen)
    runtime.on_exit(guest_api.close_machine)
    return Inside(resolver, guest_api)


async def adopt_running(inside: Inside, store: Store, runtime: RuncRuntime) -> None:
    """Serve the sockets of machines that kept running while no daemon did."""
    for machine in await store.live_machines():
        fly = runtime.layout.machine(machine.id).fly
        if machine.state is MachineState.STARTED and fly.is_dir():
            await inside.guest_api.listen(machine.id, fly / "api")


def api_sockets(own: socket.socket, inside: Inside | None) -> list[socket.socket]:
    """The API's listeners: its own address, and with `--dns` the machines' `_api.internal:4280` too."""
    if inside is None:
        return [own]
    try:
        extra = [freebind_socket(address, GUEST_API_PORT, socket.SOCK_STREAM) for address in ADDRESSES]
    except OSError as exc:
        raise HostCheckError(f"the API cannot listen for machines at port {GUEST_API_PORT}: {exc.strerror}") from None
    return [own, *extra]


async def start_health_checks(store: Store, plane: ControlPlane, edge: Edge) -> HealthChecker:
    """The checks of every started machine; a change of one is the edge's cue to look at its routes again."""
    checker = HealthChecker(store, plane.checks)
    plane.feed.subscribe(checker.changed)
    plane.checks.subscribe(lambda machine_id, app, _result: edge.fleet.readiness_changed(machine_id, app))
    await checker.start()
    return checker


def machine_activity(machine_id: str) -> tuple[float, int] | None:
    """A running machine's CPU seconds and block I/O bytes from its cgroups, for `aerodrome_busy` (blocking)."""
    usage = machine_usage(machine_id)
    return None if usage is None else (usage.cpu_seconds, usage.io_bytes)
