"""Settings of the edge and the shared state every connection of it reaches."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aerodrome.proxy.balancer import Balancer
from aerodrome.proxy.fleet import Fleet
from aerodrome.proxy.upstream import UpstreamPool


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Where the edge listens, how long it waits and how much a client may ask of it. Durations are in seconds."""

    data_dir: Path
    domain: str = "localhost"  # apps answer at `<app>.<domain>`; the CA may certify names under it only
    http_host: str = "127.0.0.1"
    http_port: int = 8080  # serves services' `port: 80`
    https_host: str = "127.0.0.1"
    https_port: int = 8443  # serves services' `port: 443`
    region: str = "local"
    connect_timeout: float = 5.0  # opening a connection to a machine
    read_timeout: float = 60.0  # from request sent to the response head
    idle_timeout: float = 300.0  # silence in a streaming response, tunnel or TCP connection
    keepalive_timeout: float = 75.0  # idle client connection between requests
    upstream_idle_timeout: float = 4.0  # idle pooled connection to a machine (Fly pools ~4 s)
    queue_timeout: float = 5.0  # waiting for capacity when every machine is at its hard limit
    start_timeout: float = 60.0  # a start, until the service port accepts connections
    route_ttl: float = 1.0  # how long a directory answer is reused
    autostop_idle: float = 300.0  # no traffic for this long: the machine is stopped or suspended
    autostop_interval: float = 30.0  # how often the autostop loop runs
    head_timeout: float = 10.0  # a request head, from its first byte until complete → 408
    max_head_bytes: int = 64 * 1024  # a request head's target and header fields → 431
    max_headers: int = 100  # header fields in one request head → 431
    max_connections: int = 8192  # client connections open at once (two descriptors each while proxying)
    max_connections_per_ip: int = 1024  # from one client address (local clients all come from 127.0.0.1)
    max_certificates: int = 1000  # certificates issued for hostnames: kept in memory and on disk, least recent out


class Sweepable(Protocol):
    """A connection whose timeouts the edge checks once a second."""

    def sweep(self, now: float) -> None: ...

    def shutdown(self) -> None: ...


class EdgeContext:
    """Shared by every connection: settings, fleet, balancer, upstream pool and the live connections."""

    def __init__(self, settings: EdgeSettings, fleet: Fleet, balancer: Balancer, pool: UpstreamPool) -> None:
        self.settings = settings
        self.fleet = fleet
        self.balancer = balancer
        self.pool = pool
        self.connections: set[Sweepable] = set()
        self._per_address: dict[str, int] = {}  # open client connections by address, counted while admitted
        self._admitted = 0
        self.http_port = settings.http_port  # the ports bound, once the listeners are up
        self.https_port = settings.https_port
        self.http_local: tuple[str, int] | None = None  # the shared HTTP listener's one address, once known
        self.tasks: set[asyncio.Task[None]] = set()
        self.region_tag = settings.region.encode()  # ends every request id

    def admit(self, address: str) -> bool:
        """Count a new client connection from `address`, unless it would pass a connection limit (then the
        caller closes it at once, before reading a byte: a refusal costs the edge nothing to write)."""
        settings, count = self.settings, self._per_address.get(address, 0)
        if count >= settings.max_connections_per_ip or self._admitted >= settings.max_connections:
            return False
        self._per_address[address] = count + 1
        self._admitted += 1
        return True

    def leave(self, address: str) -> None:
        """An admitted connection from `address` ended."""
        count = self._per_address.pop(address, 0) - 1
        if count > 0:
            self._per_address[address] = count
        self._admitted -= 1

    @property
    def admitted(self) -> int:
        """Client connections open now, as counted against the limits."""
        return self._admitted

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a connection's slow path as a task the edge can cancel when it closes."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
