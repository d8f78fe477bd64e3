"""The first protocol on TLS and dedicated-address listeners: it learns the route, then hands the connection on.

On a dedicated address the app is known from the address alone, so the service port's handlers decide what
the connection becomes: TLS is terminated when the port has `tls`, HTTP is parsed when it has `http`, and
anything else is passed through as TCP. On the shared HTTPS listener TLS is already terminated and SNI names
the app.
"""

from __future__ import annotations

import asyncio
from typing import cast

from aerodrome.core import AerodromeError
from aerodrome.proxy.context import EdgeContext
from aerodrome.proxy.downstream import HttpConnection
from aerodrome.proxy.tls import CertificateStore, sni_hostname
from aerodrome.proxy.tunnel import TcpConnection


class Acceptor(asyncio.Protocol):
    """Holds a new connection (reading paused) until its route says what protocol it speaks."""

    def __init__(self, edge: EdgeContext, certificates: CertificateStore, edge_port: int, *, tls_done: bool) -> None:
        self.edge = edge
        self.certificates = certificates
        self.edge_port = edge_port
        self.tls_done = tls_done
        self.transport: asyncio.Transport | None = None
        self._early: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.pause_reading()
        self._task = self.edge.spawn(self._hand_over())

    def data_received(self, data: bytes) -> None:
        self._early.append(data)  # arrives between a TLS handshake and the hand-over

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _hand_over(self) -> None:
        transport = self.transport
        assert transport is not None
        try:
            await self._negotiate(transport)
        except (AerodromeError, OSError, TimeoutError):
            transport.close()
        finally:
            self._task = None

    async def _negotiate(self, transport: asyncio.Transport) -> asyncio.Transport | None:
        local_addr = transport.get_extra_info("sockname")[0]
        host = sni_hostname(transport.get_extra_info("ssl_object")) if self.tls_done else None
        route = await self.edge.fleet.route(host, local_addr, self.edge_port)
        port = route.port_spec() if route is not None else None
        handlers = port.handlers if port is not None else ("tls", "http") if self.tls_done else ("http",)
        if route is None and not self.tls_done:
            transport.close()
            return None
        scheme = "https" if self.tls_done else "http"
        if "tls" in handlers and not self.tls_done:
            context = self.certificates.server_context(default_host=local_addr)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.edge.settings.connect_timeout):
                upgraded = await loop.start_tls(transport, self, context, server_side=True)
            if upgraded is None:
                return None
            transport, scheme = upgraded, "https"
        protocol: asyncio.Protocol
        if "http" in handlers or route is None:
            protocol = HttpConnection(self.edge, self.edge_port, scheme)
        else:
            protocol = TcpConnection(self.edge, route)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for data in self._early:
            protocol.data_received(data)
        self._early.clear()
        transport.resume_reading()
        return transport
