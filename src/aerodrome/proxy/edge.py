"""The edge: listeners on the shared HTTP and HTTPS ports and on dedicated addresses, plus its background loops."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from aerodrome.core import Clock, SystemClock
from aerodrome.proxy.acceptor import Acceptor
from aerodrome.proxy.autostop import Autostopper
from aerodrome.proxy.balancer import Balancer
from aerodrome.proxy.context import EdgeContext, EdgeSettings
from aerodrome.proxy.directory import Directory
from aerodrome.proxy.downstream import HttpConnection
from aerodrome.proxy.fleet import Fleet
from aerodrome.proxy.tls import CertificateStore
from aerodrome.proxy.upstream import UpstreamPool

_BACKLOG = 1024


def _single_address(server: asyncio.Server) -> tuple[str, int] | None:
    """The (address, port) every connection to the server reaches, unless it listens on several or a wildcard."""
    if len(server.sockets) != 1:
        return None
    address, port = server.sockets[0].getsockname()[:2]
    return None if address in ("0.0.0.0", "::") else (address, port)


def edge_certificates(settings: EdgeSettings) -> CertificateStore:
    """The edge's TLS: its CA, the leaves it issues and the custom hostnames' chains, under its data directory."""
    return CertificateStore(
        settings.data_dir / "tls", domain=settings.domain, max_certificates=settings.max_certificates
    )


async def _serve(
    factory: Callable[[], asyncio.Protocol], address: tuple[str, int], sock: socket.socket | None
) -> asyncio.Server:
    """A shared listener: on the socket given (bound already), else bound to `address` now."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_server(factory, sock=sock, backlog=_BACKLOG)
    return await loop.create_server(factory, *address, reuse_address=True, backlog=_BACKLOG)


class Edge:
    """Fly's fly-proxy for one host: routes by Host, SNI or dedicated address; autostarts and autostops machines."""

    def __init__(
        self,
        directory: Directory,
        settings: EdgeSettings,
        *,
        clock: Clock | None = None,
        certificates: CertificateStore | None = None,
        listeners: tuple[socket.socket, socket.socket] | None = None,
    ) -> None:
        """`clock` times the fleet: idle periods (autostop), route caches, starts; tests pass one they move.
        `certificates` and `listeners` (the shared HTTP and HTTPS sockets, bound) are made here unless given:
        the server makes them first, as the control plane takes the one and the other's address."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.fleet = Fleet(
            directory,
            route_ttl=settings.route_ttl,
            start_timeout=settings.start_timeout,
            clock=self.clock.monotonic,
        )
        self.balancer = Balancer(self.fleet, region=settings.region, queue_timeout=settings.queue_timeout)
        self.pool = UpstreamPool(connect_timeout=settings.connect_timeout, idle_timeout=settings.upstream_idle_timeout)
        self.context = EdgeContext(settings, self.fleet, self.balancer, self.pool)
        self.certificates = certificates or edge_certificates(settings)
        self._listeners = listeners
        self.autostopper = Autostopper(
            self.fleet, idle_period=settings.autostop_idle, interval=settings.autostop_interval
        )
        self._shared: list[asyncio.Server] = []
        self._dedicated: dict[str, list[asyncio.Server]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def http_port(self) -> int:
        """The port the shared HTTP listener is bound to (useful when the settings asked for 0)."""
        return self.context.http_port

    @property
    def https_port(self) -> int:
        return self.context.https_port

    @property
    def ca_path(self) -> Path:
        """The CA certificate (PEM) clients must trust for the edge's TLS."""
        return self.certificates.ca_path

    def ca_pem(self) -> bytes:
        return self.certificates.ca_pem()

    def add_certificate(self, hostname: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve `hostname` with the user's own certificate instead of one from the aerodrome CA."""
        self.certificates.add_certificate(hostname, cert_pem, key_pem)

    async def start(self) -> None:
        """Bind the shared listeners and start the timeout sweeper and the autostop loop."""
        loop = asyncio.get_running_loop()
        context = self.context
        self.certificates.default_context(self.settings.domain)  # made now: a handshake without a route writes nothing
        http_socket, https_socket = self._listeners or (None, None)
        http = await _serve(
            lambda: HttpConnection(context, 80, "http", context.http_local),
            (self.settings.http_host, self.settings.http_port),
            http_socket,
        )
        https = await _serve(  # TLS is terminated by the acceptor, once SNI is routed
            lambda: Acceptor(context, self.certificates, 443, shared_tls=True),
            (self.settings.https_host, self.settings.https_port),
            https_socket,
        )
        self._shared = [http, https]
        context.http_port = http.sockets[0].getsockname()[1]
        context.http_local = _single_address(http)
        context.https_port = https.sockets[0].getsockname()[1]
        self._sweeper = loop.create_task(self._sweep_forever())
        self.autostopper.start()

    async def bind_address(self, address: str, ports: Mapping[int, int] | Iterable[int] = (80, 443)) -> dict[int, int]:
        """Listen on a dedicated address: every connection to it routes to its app, with or without a Host.

        `ports` are the app's service ports; a mapping sends service port → the local port to bind (tests and
        unprivileged runs bind 80 elsewhere; 0 picks a free port). What a connection speaks follows its
        service port's handlers. Returns service port → bound port.
        """
        mapping = dict(ports) if isinstance(ports, Mapping) else {port: port for port in ports}
        await self.release_address(address)
        loop = asyncio.get_running_loop()
        servers: list[asyncio.Server] = []
        self._dedicated[address] = servers
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for service_port, listen_port in mapping.items():
            servers.append(
                await loop.create_server(
                    lambda p=service_port: Acceptor(self.context, self.certificates, p, shared_tls=False),
                    address,
                    listen_port,
                    family=family,
                    reuse_address=True,
                    backlog=_BACKLOG,
                )
            )
        return {port: server.sockets[0].getsockname()[1] for port, server in zip(mapping, servers, strict=True)}

    async def release_address(self, address: str) -> None:
        """Stop listening on a dedicated address; its open connections stay until they end."""
        for server in self._dedicated.pop(address, []):
            server.close()
            await server.wait_closed()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()  # connections stamp their activity on the system clock
            for connection in list(self.context.connections):
                connection.sweep(now)
            self.pool.sweep(now)

    async def close(self) -> None:
        """Stop listening, end every connection and loop; starts and stops in flight are waited for."""
        await self.autostopper.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for address in list(self._dedicated):
            await self.release_address(address)
        for server in self._shared:
            server.close()
        for connection in list(self.context.connections):
            connection.shutdown()
        self.pool.close()
        tasks = list(self.context.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._shared:
            await server.wait_closed()
        self._shared = []
        await self.fleet.close()
        await asyncio.sleep(0)  # let transports closed above run connection_lost
