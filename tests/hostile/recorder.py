"""A machine's HTTP server that records exactly what reached it, behind a real edge, for the framing tests."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import h11

from aerodrome.core import MachineState
from aerodrome.proxy import Edge
from tests.proxy.conftest import settings
from tests.proxy.support import TestDirectory

HOST = b"alpha.localhost"


@dataclass
class Received:
    """One request as the machine parsed it."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Recorder:
    """A machine's HTTP server: keeps the raw bytes of every connection and the requests h11 reads from them."""

    port: int = 0
    raw: list[bytes] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.close()
            await self.server.wait_closed()

    def clear(self) -> None:
        self.raw.clear()
        self.requests.clear()
        self.malformed.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.raw)
        self.raw.append(b"")
        parser = h11.Connection(h11.SERVER)
        self.writers.add(writer)
        try:
            while data := await reader.read(65536):
                self.raw[index] += data
                parser.receive_data(data)
                if not self._answer(parser, writer):
                    break
                await writer.drain()
        except h11.RemoteProtocolError as error:
            self.malformed.append(str(error))
        except ConnectionError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def _answer(self, parser: h11.Connection, writer: asyncio.StreamWriter) -> bool:
        """Answer every request complete in what was received; False once the connection must end."""
        body, request = b"", None
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                return True
            if isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                self.requests.append(Received(request.method, request.target, list(request.headers), body))
                reply = f"request {len(self.requests)}".encode()
                writer.write(
                    parser.send(h11.Response(status_code=200, headers=[("content-length", str(len(reply)))]))
                    + parser.send(h11.Data(data=reply))
                    + parser.send(h11.EndOfMessage())
                )
                if parser.our_state is h11.MUST_CLOSE:
                    return False
                parser.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return False


@contextlib.asynccontextmanager
async def edge_before(recorder: Recorder, tmp_path: Path) -> AsyncIterator[Edge]:
    """A real edge routing alpha.localhost to `recorder`, started on the machine's port."""
    directory = TestDirectory()
    machine = await directory.add_machine("alpha", "m-1", running=False, state=MachineState.STARTED)
    recorder.port = machine.service.internal_port
    await recorder.start()
    running = Edge(directory, settings(tmp_path, keepalive_timeout=5.0))
    await running.start()
    try:
        yield running
    finally:
        await running.close()
        await directory.close()
        await recorder.close()


async def converse(port: int, raw: bytes, then: bytes = b"", quiet: float = 1.5) -> bytes:
    """Send `raw` (and `then`, once something was answered), read until the edge closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        writer.write(raw)
        if then:
            data = await asyncio.wait_for(reader.read(65536), 5)
            writer.write(then)
        while True:
            try:
                piece = await asyncio.wait_for(reader.read(65536), quiet)
            except TimeoutError:
                break
            if not piece:
                break
            data += piece
    except ConnectionError:
        pass
    finally:
        writer.close()
    return data


def statuses(response: bytes) -> list[int]:
    """The status of every response in what the client read."""
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", response)]


def head(*lines: bytes, method: bytes = b"POST", target: bytes = b"/", version: bytes = b"HTTP/1.1") -> bytes:
    return b"%s %s %s\r\nhost: %s\r\n" % (method, target, version, HOST) + b"".join(line + b"\r\n" for line in lines)


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n"
Meaning = list[tuple[bytes, bytes, bytes]]  # (method, target, body) of each request


def forwarded(recorder: Recorder) -> Meaning:
    return [(r.method, r.target, r.body) for r in recorder.requests]


def framing_is_plain(received: Received) -> None:
    """What the machine got has one way to read it: one Host, and at most one framing field."""
    names = [name.lower() for name, _ in received.headers]
    assert names.count(b"host") == 1 and dict(received.headers)[b"host"].lower() == HOST, received.headers
    assert names.count(b"content-length") + names.count(b"transfer-encoding") <= 1, received.headers
