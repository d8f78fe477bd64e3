"""The edge's idle timeouts: what is in use stays open however long, what is idle past its timeout is closed.

Idle times are noticed by the once-a-second sweep, so each test allows a second or two past the timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aerodrome.proxy import Edge
from tests.proxy.conftest import settings
from tests.proxy.support import TestDirectory, Upstream, eventually

REQUEST = b"GET %s HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n"


@pytest.fixture
async def short_edge(directory: TestDirectory, tmp_path: Path) -> AsyncIterator[Edge]:
    timeouts = {"keepalive_timeout": 1.5, "idle_timeout": 1.5, "upstream_idle_timeout": 1.0}
    started = Edge(directory, settings(tmp_path, **timeouts))
    await started.start()
    yield started
    await started.close()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return await reader.readexactly(length)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the edge closes the connection within `seconds`, whatever else it sends first."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    return True


async def test_a_client_connection_in_use_stays_open_and_an_idle_one_is_closed(
    directory: TestDirectory, short_edge: Edge
) -> None:
    await directory.add_machine("alpha", "m-1")
    reader, writer = await asyncio.open_connection("127.0.0.1", short_edge.http_port)
    try:
        for _ in range(8):  # 3.2 s of requests on one connection: twice the keep-alive timeout
            writer.write(REQUEST % b"/")
            assert await read_response(reader) == b"hello from m-1"
            await asyncio.sleep(0.4)
        assert await closed_within(reader, 5.0)  # now idle: closed after the timeout
    finally:
        writer.close()


async def test_a_stream_that_keeps_sending_outlives_the_idle_timeout(
    directory: TestDirectory, short_edge: Edge
) -> None:
    await directory.add_machine("alpha", "m-1")
    reader, writer = await asyncio.open_connection("127.0.0.1", short_edge.http_port)
    try:
        writer.write(REQUEST % b"/drip/12/0.25")  # 3 s of body, a byte every 0.25 s
        async with asyncio.timeout(10):
            received = await reader.readuntil(b"0\r\n\r\n")
        assert received.count(b"1\r\n.\r\n") == 12
    finally:
        writer.close()


async def test_a_silent_stream_is_closed_after_the_idle_timeout(directory: TestDirectory, short_edge: Edge) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    assert isinstance(machine.server, Upstream)
    reader, writer = await asyncio.open_connection("127.0.0.1", short_edge.http_port)
    try:
        writer.write(REQUEST % b"/sse")  # one event, then nothing until the gate opens, which it never does
        assert b"data: first" in await reader.readuntil(b"data: first\n\n")
        assert await closed_within(reader, 5.0)
    finally:
        writer.close()
        machine.server.sse_gate.set()


async def test_a_pooled_machine_connection_is_closed_after_its_idle_timeout(
    directory: TestDirectory, short_edge: Edge
) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    assert isinstance(machine.server, Upstream)
    reader, writer = await asyncio.open_connection("127.0.0.1", short_edge.http_port)
    try:
        writer.write(REQUEST % b"/")
        await read_response(reader)
        assert machine.server.open_connections == 1
        server = machine.server
        await eventually(lambda: server.open_connections == 0, timeout=5)  # the machine sees the edge close it
        writer.write(REQUEST % b"/")  # the client's connection is still open; the next request opens anew
        assert await read_response(reader) == b"hello from m-1"
        assert machine.server.connections == 2
    finally:
        writer.close()
