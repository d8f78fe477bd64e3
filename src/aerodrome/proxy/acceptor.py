"""The first protocol on TLS and dedicated-address listeners: it learns the route, then hands the connection on.

On a dedicated address the app is known from the address alone, so the service port's handlers decide what
the connection becomes: TLS is terminated when the port has `tls`, HTTP is parsed when it has `http`, and
anything else is passed through as TCP. On the shared HTTPS listener SNI names the app: the ClientHello is read
first, the name routed, and only then is the handshake made, with a certificate chosen for that route (a name
that routes nowhere has nothing issued for it).
"""

from __future__ import annotations

import asyncio
from typing import cast

from aerodrome.core import AerodromeError
from aerodrome.proxy.context import EdgeContext
from aerodrome.proxy.directory import AppRoute
from aerodrome.proxy.downstream import HttpConnection
from aerodrome.proxy.tls import MAX_CLIENT_HELLO, CertificateStore, NotTlsError, client_hello_name
from aerodrome.proxy.tunnel import TcpConnection


class Acceptor(asyncio.Protocol):
    """Holds a new connection until its route says what protocol it speaks; `shared_tls`: on the shared HTTPS
    listener, where TLS is always terminated and SNI routes."""

    def __init__(self, edge: EdgeContext, certificates: CertificateStore, edge_port: int, *, shared_tls: bool) -> None:
        self.edge = edge
        self.certificates = certificates
        self.edge_port = edge_port
        self.shared_tls = shared_tls
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self._admitted = False  # counted against the connection limits; the protocol handed over takes it on
        self._early: list[bytes] = []
        self._early_size = 0
        self._hello: asyncio.Future[str | None] | None = None  # set while the ClientHello is awaited
        self._hello_needed = 5  # bytes to have before the ClientHello is parsed again
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.pause_reading()
        self.client_ip = transport.get_extra_info("peername")[0]
        if not self.edge.admit(self.client_ip):
            self.transport.close()  # over a connection limit: closed before a byte is read
            return
        self._admitted = True
        self._task = self.edge.spawn(self._hand_over())

    def data_received(self, data: bytes) -> None:
        self._early.append(data)  # the ClientHello, or what arrives between a TLS handshake and the hand-over
        self._early_size += len(data)
        hello = self._hello
        if hello is None or hello.done() or self._early_size < self._hello_needed:
            return  # parsed only once the next record is whole: a trickled ClientHello costs a few parses
        try:
            self._hello_needed, name = client_hello_name(b"".join(self._early))
            if self._hello_needed > MAX_CLIENT_HELLO:
                raise NotTlsError("ClientHello too large")
        except NotTlsError as refusal:
            hello.set_exception(refusal)
            return
        if not self._hello_needed:
            hello.set_result(name)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._admitted:
            self._admitted = False
            self.edge.leave(self.client_ip)

    async def _hand_over(self) -> None:
        transport = self.transport
        assert transport is not None
        try:
            async with asyncio.timeout(self.edge.settings.connect_timeout):  # the ClientHello and handshake too
                protocol = await self._negotiate(transport)
        except (AerodromeError, OSError, TimeoutError, NotTlsError):
            transport.close()
            return
        finally:
            self._task = None
        if protocol is not None:
            self._admitted = False  # the protocol now holds the connection's count

    async def _negotiate(self, transport: asyncio.Transport) -> asyncio.Protocol | None:
        local_addr = transport.get_extra_info("sockname")[0]
        server_name = await self._client_hello() if self.shared_tls else None
        route = await self.edge.fleet.route(server_name, local_addr, self.edge_port)
        port = route.port_spec() if route is not None else None
        handlers = port.handlers if port is not None else ("tls", "http") if self.shared_tls else ("http",)
        if route is None and not self.shared_tls:
            transport.close()
            return None
        scheme = "http"
        if self.shared_tls or "tls" in handlers:
            if not self.shared_tls:
                server_name = await self._client_hello()
            default_host = self.edge.settings.domain if self.shared_tls else local_addr
            upgraded = await self._start_tls(transport, route, server_name, default_host)
            if upgraded is None:
                return None
            transport, scheme = upgraded, "https"
        protocol: asyncio.Protocol
        if "http" in handlers or route is None:
            protocol = HttpConnection(self.edge, self.edge_port, scheme, admitted=True)
        else:
            protocol = TcpConnection(self.edge, route, admitted_from=self.client_ip)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for data in self._early:
            protocol.data_received(data)
        self._early.clear()
        transport.resume_reading()
        return protocol

    async def _client_hello(self) -> str | None:
        """Read the client's ClientHello (left for the handshake) and return the host name it asks for."""
        assert self.transport is not None
        self._hello = asyncio.get_running_loop().create_future()
        self.transport.resume_reading()
        try:
            self.data_received(b"")  # bytes may have arrived already
            return await self._hello
        finally:
            self.transport.pause_reading()
            self._hello = None

    async def _start_tls(
        self, transport: asyncio.Transport, route: AppRoute | None, server_name: str | None, default_host: str
    ) -> asyncio.Transport | None:
        context = self.certificates.select(server_name, route.app if route is not None else None, default_host)
        hello, self._early, self._early_size = b"".join(self._early), [], 0
        loop = asyncio.get_running_loop()
        handshake = loop.create_task(loop.start_tls(transport, self, context, server_side=True))
        # start_tls puts its TLS protocol on the transport in its first step; the ClientHello it would wait
        # for was read already, so it is handed over through the buffered-protocol interface it reads with.
        while transport.get_protocol() is self and not handshake.done():  # noqa: ASYNC110 - no event says so
            await asyncio.sleep(0)
        if not handshake.done():
            tls = cast(asyncio.BufferedProtocol, transport.get_protocol())
            offset = 0
            while offset < len(hello):
                buffer = memoryview(tls.get_buffer(len(hello) - offset))
                size = min(len(buffer), len(hello) - offset)
                buffer[:size] = hello[offset : offset + size]
                tls.buffer_updated(size)
                offset += size
        return await handshake
