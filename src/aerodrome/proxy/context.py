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
    """Where the edge listens and how long it waits. Durations are in seconds."""

    data_dir: Path
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
        self.http_port = settings.http_port  # the ports bound, once the listeners are up
        self.https_port = settings.https_port
        self.http_local: tuple[str, int] | None = None  # the shared HTTP listener's one address, once known
        self.tasks: set[asyncio.Task[None]] = set()
        self.region_tag = settings.region.encode()  # ends every request id

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a connection's slow path as a task the edge can cancel when it closes."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
