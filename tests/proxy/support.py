"""Real upstream servers on loopback and a `Directory` backed by them, for the edge's tests."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from aerodrome.core import MachineState, PortSpec, ServiceSpec, UnavailableError
from aerodrome.proxy import AppRoute, Backend, StaticFile

HTTP_PORTS = (PortSpec(80, ("http",)), PortSpec(443, ("tls", "http")))


def http_service(internal_port: int, **overrides: object) -> ServiceSpec:
    """A service on ports 80 and 443 with the http handler."""
    return replace(ServiceSpec(protocol="tcp", internal_port=internal_port, ports=HTTP_PORTS), **overrides)  # type: ignore[arg-type]


class Upstream:
    """A tiny HTTP/1.1 server with keep-alive, standing in for an app inside a machine."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.connections = 0
        self.requests = 0
        self.inflight = 0
        self.max_inflight = 0
        self.last_trailers: dict[str, str] = {}  # of the last chunked request body
        self.hold = asyncio.Event()  # /hold answers once set
        self.sse_gate = asyncio.Event()  # /sse sends its second event once set
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    async def start(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "chunked" in headers.get("transfer-encoding", ""):
            self.last_trailers = {}
            body = await _read_chunked(reader, self.last_trailers)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._respond(method, path, headers, body, writer)
        finally:
            self.inflight -= 1

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if path == "/headers":
            self._send(writer, 200, json.dumps({"server": self.name, "headers": headers}).encode())
        elif path == "/echo":
            self._send(writer, 200, body)
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"alpha-", b"beta-", b"gamma"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif path == "/trailers":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n")
            writer.write(b"5\r\nhello\r\n0\r\nx-checksum: 5d41402a\r\n\r\n")
        elif path == "/sse":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"d\r\ndata: first\n\n\r\n")
            await writer.drain()
            await self.sse_gate.wait()
            writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
        elif path.startswith("/drip/"):  # /drip/<chunks>/<seconds between them>
            chunks, pause = path.split("/")[2:4]
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(int(chunks)):
                writer.write(b"1\r\n.\r\n")
                await writer.drain()
                await asyncio.sleep(float(pause))
            writer.write(b"0\r\n\r\n")
        elif path == "/hold":
            await self.hold.wait()
            self._send(writer, 200, self.name.encode())
        elif path == "/die":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
            await writer.drain()
            return False
        elif path == "/vanish":
            return False
        else:
            self._send(writer, 200, f"hello from {self.name}".encode())
        await writer.drain()
        return headers.get("connection", "").lower() != "close"

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        writer.write(b"HTTP/1.1 %d OK\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body))


async def _read_chunked(reader: asyncio.StreamReader, trailers: dict[str, str]) -> bytes:
    """A chunked body; its trailer fields go to `trailers`, lowercased."""
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    while line := (await reader.readuntil(b"\r\n")).strip():
        name, _, value = line.decode("latin-1").partition(":")
        trailers[name.strip().lower()] = value.strip()
    return body


class EchoServer:
    """A raw TCP echo server: a non-HTTP service."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> EchoServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data.upper())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()


@dataclass
class Machine:
    """A machine of the test directory: its service and, while started, its real upstream server."""

    machine_id: str
    service: ServiceSpec
    state: MachineState = MachineState.STARTED
    address: str = "127.0.0.1"
    region: str = "local"
    server: Upstream | EchoServer | None = None
    starts: int = 0
    stops: list[str] = field(default_factory=list)
    gated: bool = False  # it has readiness checks, which pass while `ready`
    ready: bool = True

    def backend(self) -> Backend:
        return Backend(self.machine_id, self.state, self.address, self.service, self.region, gated=self.gated)


class TestDirectory:
    """Routes `<app>.localhost` and dedicated addresses; start and stop really start and stop upstreams."""

    __test__ = False

    def __init__(self, *, start_delay: float = 0.0, fail_starts: bool = False) -> None:
        self.apps: dict[str, list[Machine]] = {}
        self.addresses: dict[str, str] = {}
        self.start_delay = start_delay
        self.fail_starts = fail_starts
        self.lookups: Counter[str] = Counter()  # routes asked for, per app

    async def add_machine(
        self,
        app: str,
        machine_id: str,
        service_overrides: dict[str, object] | None = None,
        *,
        running: bool = True,
        state: MachineState = MachineState.STOPPED,
        address: str = "127.0.0.1",
    ) -> Machine:
        """A machine whose upstream listens on a fixed free port, started now or left `state`."""
        probe = await Upstream(machine_id, address).start()
        port = probe.port
        await probe.close()
        machine = Machine(machine_id, http_service(port, **(service_overrides or {})), address=address)
        if running:
            machine.server = await Upstream(machine_id, address, port).start()
        else:
            machine.state = state
        self.apps.setdefault(app, []).append(machine)
        return machine

    def machine(self, machine_id: str) -> Machine:
        return next(m for machines in self.apps.values() for m in machines if m.machine_id == machine_id)

    def ready(self, machine_id: str) -> bool:
        return self.machine(machine_id).ready

    async def usage(self, machine_ids: Sequence[str]) -> dict[str, tuple[float, int]]:
        return {}  # busy machines are tested against real cgroups (tests/inside/test_busy.py)

    async def static_file(self, route: AppRoute, target: bytes) -> StaticFile | None:
        return None  # statics are tested against real images (tests/inside/test_statics.py)

    async def route(self, host: str | None, local_addr: str, edge_port: int) -> AppRoute | None:
        app = self.addresses.get(local_addr)
        if app is None and host:
            name = host.partition(":")[0]
            app = name.removesuffix(".localhost") if name.endswith(".localhost") else None
        if app not in self.apps:
            return None
        self.lookups[app] += 1
        backends = tuple(m.backend() for m in self.apps[app] if any(p.port == edge_port for p in m.service.ports))
        return AppRoute(app, edge_port, backends)

    async def start_machine(self, app: str, machine_id: str) -> None:
        machine = self.machine(machine_id)
        await asyncio.sleep(self.start_delay)
        if self.fail_starts:
            raise UnavailableError(f"machine {machine_id} failed to start")
        machine.starts += 1
        if machine.server is None:
            machine.server = await Upstream(machine_id, machine.address, machine.service.internal_port).start()
        machine.state = MachineState.STARTED

    async def stop_machine(self, app: str, machine_id: str, suspend: bool) -> None:
        machine = self.machine(machine_id)
        machine.stops.append("suspend" if suspend else "stop")
        if machine.server is not None:
            await machine.server.close()
            machine.server = None
        machine.state = MachineState.SUSPENDED if suspend else MachineState.STOPPED

    async def autostop_routes(self) -> Sequence[AppRoute]:
        routes = []
        for app, machines in self.apps.items():
            backends = tuple(m.backend() for m in machines if m.service.autostop != "off")
            if backends:
                routes.append(AppRoute(app, 80, backends))
        return routes

    async def close(self) -> None:
        for machines in self.apps.values():
            for machine in machines:
                if machine.server is not None:
                    await machine.server.close()
                    machine.server = None


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `predicate()` holds (state changed by other tasks), failing after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the state lives in plain attributes, no event to wait on
            await asyncio.sleep(0.01)


async def exchange(port: int, raw: bytes, host: str = "127.0.0.1", **tls: object) -> bytes:
    """Send raw bytes to the edge and read until it closes the connection."""
    reader, writer = await asyncio.open_connection(host, port, **tls)  # type: ignore[arg-type]
    writer.write(raw)
    data = await reader.read(-1)
    writer.close()
    await writer.wait_closed()
    return data
