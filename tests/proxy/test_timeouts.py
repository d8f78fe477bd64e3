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
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def alpha(directory: TestDirectory) -> AsyncIterator[Upstream]:
    """App alpha's one machine, m-1."""
    machine = await directory.add_machine("alpha", "m-1")
    assert isinstance(machine.server, Upstream)
    yield machine.server
    machine.server.sse_gate.set()


@pytest.fixture
async def connection(directory: TestDirectory, tmp_path: Path) -> AsyncIterator[Connection]:
    """A raw client connection to an edge with short timeouts."""
    timeouts = {"keepalive_timeout": 1.5, "idle_timeout": 1.5, "upstream_idle_timeout": 1.0}
    edge = Edge(directory, settings(tmp_path, **timeouts))
    await edge.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    yield reader, writer
    writer.close()
    await edge.close()


async def response_body(reader: asyncio.StreamReader) -> bytes:
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
    alpha: Upstream, connection: Connection
) -> None:
    reader, writer = connection
    for _ in range(8):  # 3.2 s of requests on one connection: twice the keep-alive timeout
        writer.write(REQUEST % b"/")
        assert await response_body(reader) == b"hello from m-1"
        await asyncio.sleep(0.4)
    assert await closed_within(reader, 5.0)  # now idle: closed after the timeout


async def test_a_stream_that_keeps_sending_outlives_the_idle_timeout(alpha: Upstream, connection: Connection) -> None:
    reader, writer = connection
    writer.write(REQUEST % b"/drip/12/0.25")  # 3 s of body, a byte every 0.25 s
    async with asyncio.timeout(10):
        received = await reader.readuntil(b"0\r\n\r\n")
    assert received.count(b"1\r\n.\r\n") == 12


async def test_a_silent_stream_is_closed_after_the_idle_timeout(alpha: Upstream, connection: Connection) -> None:
    reader, writer = connection
    writer.write(REQUEST % b"/sse")  # one event, then nothing until the gate opens, which it never does
    await reader.readuntil(b"data: first\n\n")
    assert await closed_within(reader, 5.0)


async def test_a_pooled_machine_connection_is_closed_after_its_idle_timeout(
    alpha: Upstream, connection: Connection
) -> None:
    reader, writer = connection
    writer.write(REQUEST % b"/")
    await response_body(reader)
    assert alpha.open_connections == 1
    await eventually(lambda: alpha.open_connections == 0, timeout=5)  # the machine sees the edge close it
    writer.write(REQUEST % b"/")  # the client's connection is still open; the next request opens anew
    assert await response_body(reader) == b"hello from m-1"
    assert alpha.connections == 2
