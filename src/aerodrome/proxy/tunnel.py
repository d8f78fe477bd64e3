"""Plain TCP passthrough, for service ports without the `http` handler: bytes both ways, half-close honoured."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from aerodrome.core import AerodromeError
from aerodrome.proxy.context import EdgeContext
from aerodrome.proxy.directory import AppRoute, Backend

_BUFFER_LIMIT = 256 * 1024


def _write_eof_or_close(transport: asyncio.Transport) -> None:
    if transport.can_write_eof():
        transport.write_eof()
    else:
        transport.close()  # TLS cannot half-close


class TcpConnection(asyncio.Protocol):
    """A client's connection to a TCP service; holds one unit of its machine's load while open."""

    def __init__(self, edge: EdgeContext, route: AppRoute, *, admitted_from: str | None = None) -> None:
        """`admitted_from`: the client address this connection was counted for against the connection limits."""
        self.edge = edge
        self.route = route
        self._admitted_from = admitted_from
        self.transport: asyncio.Transport | None = None
        self.machine: _MachineSide | None = None
        self.last_activity = time.monotonic()
        self._backend: Backend | None = None
        self._task: asyncio.Task[None] | None = None
        self._backlog: list[bytes] = []
        self._backlog_size = 0
        self._client_eof = False
        self.machine_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.edge.connections.add(self)
        self._task = self.edge.spawn(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        try:
            self._backend = await self.edge.balancer.pick(self.route)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.edge.settings.connect_timeout):
                await loop.create_connection(lambda: _MachineSide(self), self._backend.address, self._backend.port)
        except (AerodromeError, OSError, TimeoutError):
            self.transport.close()  # a raw stream has no way to say why
        finally:
            self._task = None

    def machine_connected(self, machine: _MachineSide) -> None:
        assert machine.transport is not None and self.transport is not None
        if self.transport.is_closing():
            machine.transport.close()
            return
        self.machine = machine
        if self._backlog:
            machine.transport.write(b"".join(self._backlog))
            self._backlog.clear()
            self.transport.resume_reading()
        if self._client_eof:
            _write_eof_or_close(machine.transport)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.machine is not None and self.machine.transport is not None:
            self.machine.transport.write(data)
            return
        self._backlog.append(data)
        self._backlog_size += len(data)
        if self._backlog_size > _BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._client_eof = True
        if self.machine is not None and self.machine.transport is not None:
            _write_eof_or_close(self.machine.transport)
        if self.machine_eof and self.transport is not None:
            self.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.edge.connections.discard(self)
        if self._admitted_from is not None:
            self.edge.leave(self._admitted_from)
            self._admitted_from = None
        if self._task is not None:
            self._task.cancel()
        if self.machine is not None and self.machine.transport is not None:
            self.machine.transport.close()
        if self._backend is not None:
            self.edge.fleet.release(self._backend.machine_id)
            self._backend = None

    def pause_writing(self) -> None:
        if self.machine is not None and self.machine.transport is not None:
            self.machine.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.machine is not None and self.machine.transport is not None:
            self.machine.transport.resume_reading()

    def sweep(self, now: float) -> None:
        if now - self.last_activity > self.edge.settings.idle_timeout:
            self.shutdown()

    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _MachineSide(asyncio.Protocol):
    def __init__(self, client: TcpConnection) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.client.machine_connected(self)

    def data_received(self, data: bytes) -> None:
        client = self.client
        client.last_activity = time.monotonic()
        if client.transport is not None:
            client.transport.write(data)

    def eof_received(self) -> bool:
        client = self.client
        client.machine_eof = True
        if client.transport is not None:
            _write_eof_or_close(client.transport)
        if client._client_eof and self.transport is not None:
            self.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()
