from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from aerodrome.proxy import Edge
from tests.proxy.conftest import settings
from tests.proxy.support import TestDirectory, exchange


async def test_host_routes_to_the_app_and_adds_forwarding_headers(
    directory: TestDirectory, client: httpx.AsyncClient
) -> None:
    await directory.add_machine("alpha", "m-alpha")
    await directory.add_machine("beta", "m-beta")
    alpha = await client.get("/headers", headers={"host": "alpha.localhost:8080", "x-forwarded-for": "10.1.1.1"})
    beta = await client.get("/", headers={"host": "beta.localhost"})
    assert alpha.json()["server"] == "m-alpha"
    assert beta.text == "hello from m-beta"
    sent = alpha.json()["headers"]
    assert sent["fly-client-ip"] == "127.0.0.1"
    assert sent["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-port"] == "80"
    assert sent["fly-request-id"] == alpha.headers["fly-request-id"]


async def test_headers_named_by_connection_are_not_forwarded(
    directory: TestDirectory, client: httpx.AsyncClient
) -> None:
    await directory.add_machine("alpha", "m-alpha")
    headers = {"host": "alpha.localhost", "connection": "keep-alive, x-hop", "x-hop": "1", "x-end": "2"}
    sent = (await client.get("/headers", headers=headers)).json()["headers"]
    assert "x-hop" not in sent and sent["x-end"] == "2"


async def test_unknown_host_is_404(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"host": "nobody.localhost"})
    assert response.status_code == 404
    assert "nobody.localhost" in response.text


async def test_keepalive_reuses_one_upstream_connection(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    for _ in range(5):
        assert (await client.get("/", headers={"host": "alpha.localhost"})).status_code == 200
    assert machine.server is not None
    assert machine.server.requests == 5
    assert machine.server.connections == 1


async def test_request_body_is_forwarded(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    await directory.add_machine("alpha", "m-1")
    body = b"x" * 300_000
    response = await client.post("/echo", content=body, headers={"host": "alpha.localhost"})
    assert response.content == body


async def test_chunked_response_is_relayed(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    await directory.add_machine("alpha", "m-1")
    response = await client.get("/chunked", headers={"host": "alpha.localhost"})
    assert response.text == "alpha-beta-gamma"
    assert response.headers["transfer-encoding"] == "chunked"


async def test_sse_events_arrive_before_the_response_ends(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    assert isinstance(machine.server, object) and machine.server is not None
    async with client.stream("GET", "/sse", headers={"host": "alpha.localhost"}) as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "data: first"
        assert not machine.server.sse_gate.is_set()  # the first event came while the stream is still open
        machine.server.sse_gate.set()  # type: ignore[union-attr]
        rest = [line async for line in lines if line]
    assert rest == ["data: second"]


async def test_force_instance_routes_to_that_machine(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    await directory.add_machine("alpha", "m-1")
    await directory.add_machine("alpha", "m-2")
    for _ in range(4):
        response = await client.get("/", headers={"host": "alpha.localhost", "fly-force-instance-id": "m-2"})
        assert response.text == "hello from m-2"
    missing = await client.get("/", headers={"host": "alpha.localhost", "fly-force-instance-id": "m-9"})
    assert missing.status_code == 503


async def test_force_https_redirects(directory: TestDirectory, edge: Edge, client: httpx.AsyncClient) -> None:
    await directory.add_machine("alpha", "m-1", {"ports": (PortSpec_force(),)})
    response = await client.get("/path?q=1", headers={"host": "alpha.localhost:8080"})
    assert response.status_code == 301
    assert response.headers["location"] == f"https://alpha.localhost:{edge.https_port}/path?q=1"


def PortSpec_force() -> object:
    from aerodrome.core import PortSpec

    return PortSpec(80, ("http",), force_https=True)


async def test_upstream_dying_mid_response_closes_the_client(
    directory: TestDirectory, client: httpx.AsyncClient
) -> None:
    await directory.add_machine("alpha", "m-1")
    try:
        response = await client.get("/die", headers={"host": "alpha.localhost"})
    except httpx.RemoteProtocolError:
        pass
    else:
        raise AssertionError(f"a truncated body was accepted: {response.status_code}")
    vanished = await client.get("/vanish", headers={"host": "alpha.localhost"})
    assert vanished.status_code == 502


async def test_machine_down_is_502(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    assert machine.server is not None
    await machine.server.close()
    machine.server = None
    response = await client.get("/", headers={"host": "alpha.localhost"})
    assert response.status_code == 502


async def test_pipelined_requests_are_answered_in_order(directory: TestDirectory, edge: Edge) -> None:
    await directory.add_machine("alpha", "m-1")
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    request = b"GET /chunked HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n"
    writer.write(
        request
        + request.replace(b"/chunked", b"/")
        + b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: close\r\n\r\n"
    )
    data = await reader.read(-1)
    writer.close()
    await writer.wait_closed()
    assert data.count(b"HTTP/1.1 200") == 3
    assert data.index(b"gamma") < data.index(b"hello from m-1")


async def test_response_trailers_are_relayed(directory: TestDirectory, edge: Edge) -> None:
    await directory.add_machine("alpha", "m-1")
    data = await exchange(
        edge.http_port, b"GET /trailers HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: close\r\n\r\n"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\ntrailer: x-checksum" in head.lower()
    assert body == b"5\r\nhello\r\n0\r\nx-checksum: 5d41402a\r\n\r\n"


async def test_request_trailers_are_forwarded(directory: TestDirectory, edge: Edge) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    assert machine.server is not None
    head = (
        b"POST /headers HTTP/1.1\r\nhost: alpha.localhost\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n"
        b"te: trailers\r\nconnection: close\r\n\r\n"
    )
    data = await exchange(edge.http_port, head + b"3\r\nabc\r\n0\r\nx-sum: 42\r\nhost: evil.example\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    sent = json.loads(data.partition(b"\r\n\r\n")[2])["headers"]
    assert (sent["trailer"], sent["te"], sent["connection"]) == ("x-sum", "trailers", "te")
    assert machine.server.last_trailers == {"x-sum": "42"}  # a trailer that names the host is not relayed


async def test_a_machine_change_forgets_only_its_apps_routes(directory: TestDirectory, tmp_path: Path) -> None:
    await directory.add_machine("alpha", "m-alpha")
    await directory.add_machine("beta", "m-beta")
    edge = Edge(directory, settings(tmp_path, route_ttl=3600.0))
    await edge.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge.http_port}") as client:
            for host in ("alpha.localhost", "beta.localhost", "nobody.localhost") * 2:
                await client.get("/", headers={"host": host})
            assert (directory.lookups["alpha"], directory.lookups["beta"]) == (1, 1)
            edge.fleet.machine_changed("m-alpha", "alpha")
            for host in ("alpha.localhost", "beta.localhost"):
                assert (await client.get("/", headers={"host": host})).status_code == 200
    finally:
        await edge.close()
    assert (directory.lookups["alpha"], directory.lookups["beta"]) == (2, 1)


async def test_an_http_1_0_client_gets_no_chunks_and_keep_alive_only_when_asked(
    directory: TestDirectory, edge: Edge
) -> None:
    await directory.add_machine("alpha", "m-1")
    data = await exchange(edge.http_port, b"GET /chunked HTTP/1.0\r\nhost: alpha.localhost\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
    assert body == b"alpha-beta-gamma"  # delimited by the close, which HTTP/1.0 understands

    request = b"GET / HTTP/1.0\r\nhost: alpha.localhost\r\nconnection: keep-alive\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    for _ in range(2):  # the same connection serves both
        writer.write(request)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        assert b"connection: keep-alive" in head
        length = int(head.partition(b"content-length: ")[2].partition(b"\r\n")[0])
        assert b"hello from m-1" in await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
