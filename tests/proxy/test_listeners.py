"""TLS through the aerodrome CA, WebSocket upgrades, and dedicated addresses (HTTP, TLS and raw TCP)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
from websockets.asyncio.server import ServerConnection

from aerodrome.core import PortSpec, ServiceSpec
from aerodrome.proxy import Edge
from tests.proxy.support import EchoServer, Machine, TestDirectory, exchange


async def test_tls_with_the_exported_ca_and_sni(directory: TestDirectory, edge: Edge) -> None:
    await directory.add_machine("myapp", "m-1")
    trust = ssl.create_default_context(cadata=edge.ca_pem().decode())
    raw = b"GET /headers HTTP/1.1\r\nhost: myapp.localhost\r\nconnection: close\r\n\r\n"
    data = await exchange(edge.https_port, raw, ssl=trust, server_hostname="myapp.localhost")
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"x-forwarded-proto": "https"' in data
    assert b'"x-forwarded-port": "443"' in data
    assert edge.ca_path.read_bytes() == edge.ca_pem()


async def test_custom_certificate_is_served(directory: TestDirectory, edge: Edge) -> None:
    from aerodrome.proxy import CertificateAuthority

    await directory.add_machine("myapp", "m-1")
    other = CertificateAuthority(edge.settings.data_dir / "other-ca")
    cert, key = other.issue("myapp.localhost")
    edge.add_certificate("myapp.localhost", cert, key)
    trust = ssl.create_default_context(cadata=other.pem().decode())
    raw = b"GET / HTTP/1.1\r\nhost: myapp.localhost\r\nconnection: close\r\n\r\n"
    data = await exchange(edge.https_port, raw, ssl=trust, server_hostname="myapp.localhost")
    assert data.endswith(b"hello from m-1")


@pytest.fixture
async def websocket_machine(directory: TestDirectory) -> AsyncIterator[Machine]:
    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    machine = await directory.add_machine("ws", "m-ws")
    assert machine.server is not None
    await machine.server.close()
    server = await websockets.asyncio.server.serve(echo, "127.0.0.1", machine.service.internal_port)
    yield machine
    server.close()
    await server.wait_closed()


async def test_websocket_echo_through_the_edge(websocket_machine: Machine, edge: Edge) -> None:
    uri = f"ws://ws.localhost:{edge.http_port}/"
    async with websockets.asyncio.client.connect(uri, host="127.0.0.1", port=edge.http_port) as socket:
        for message in ("hello", "x" * 100_000, b"\x00\x01binary"):
            await socket.send(message)
            assert await socket.recv() == message


async def test_dedicated_address_routes_without_host(directory: TestDirectory, edge: Edge) -> None:
    await directory.add_machine("alpha", "m-1")
    directory.addresses["127.0.0.9"] = "alpha"
    ports = await edge.bind_address("127.0.0.9", {80: 0, 443: 0})
    try:
        plain = await exchange(ports[80], b"GET / HTTP/1.0\r\n\r\n", host="127.0.0.9")
        assert plain.endswith(b"hello from m-1")
        trust = ssl.create_default_context(cadata=edge.ca_pem().decode())
        secure = await exchange(
            ports[443], b"GET / HTTP/1.0\r\n\r\n", host="127.0.0.9", ssl=trust, server_hostname="127.0.0.9"
        )
        assert secure.endswith(b"hello from m-1")
    finally:
        await edge.release_address("127.0.0.9")


async def test_dedicated_address_passes_raw_tcp_through(directory: TestDirectory, edge: Edge) -> None:
    echo = await EchoServer().start()
    service = ServiceSpec(protocol="tcp", internal_port=echo.port, ports=(PortSpec(5432, ()),))
    directory.apps["db"] = [Machine("m-db", service)]
    directory.addresses["127.0.0.10"] = "db"
    ports = await edge.bind_address("127.0.0.10", {5432: 0})
    try:
        reader, writer = await asyncio.open_connection("127.0.0.10", ports[5432])
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"PING"
        writer.write_eof()  # half-close: the echo still answers what was sent, then closes
        assert await reader.read(-1) == b""
        writer.close()
        await writer.wait_closed()
    finally:
        await edge.release_address("127.0.0.10")
        await echo.close()
