"""One probe against real loopback servers, hostile ones included: each ends within its check's timeout and
fails rather than raising, and only a 2xx passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from aerodrome.core import CheckSpec
from aerodrome.inside.probes import MAX_OUTPUT, Prober

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def prober() -> AsyncIterator[Prober]:
    made = Prober()
    yield made
    await made.close()


class Served:
    """A loopback server whose connections are all closed, whatever their handler was doing, by `close()`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


def reply(raw: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    return handle


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):
        writer.write(b"x-slow: 1\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
    writer.close()


@pytest.mark.parametrize(
    ("handler", "ok", "output"),
    [
        (reply(b"HTTP/1.1 204 No Content\r\n\r\n"), True, "204 No Content"),
        (reply(b"HTTP/1.1 302 Found\r\nlocation: http://192.0.2.1/\r\ncontent-length: 0\r\n\r\n"), False, "302 Found"),
        (reply(b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"), False, "500 Oops"),
        (reply(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\nonly a little"), True, "200 OK"),
        (reply(b"garbage\r\n\r\n"), False, "RemoteProtocolError"),
        (reply(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 1_000_000 + b"\r\n\r\n"), False, "Error"),
        (trickle, False, "timed out after 0.5s"),
    ],
)
async def test_http_probes(prober: Prober, handler: Handler, ok: bool, output: str) -> None:
    served = Served(handler)
    port = await served.start()
    try:
        check = CheckSpec("c", "http", port, timeout=0.5, path="/health", headers=(("X-Probe", "1"),))
        outcome = await prober.run(check, "127.0.0.1")
    finally:
        await served.close()
    assert outcome.ok is ok and output in outcome.output and len(outcome.output) <= MAX_OUTPUT, outcome


async def test_tcp_probes(prober: Prober) -> None:
    served = Served(reply(b""))
    port = await served.start()
    try:
        assert (await prober.run(CheckSpec("t", "tcp", port), "127.0.0.1")).ok
    finally:
        await served.close()
    refused = await prober.run(CheckSpec("t", "tcp", port, timeout=0.5), "127.0.0.1")
    assert not refused.ok and "ConnectionRefusedError" in refused.output, refused
