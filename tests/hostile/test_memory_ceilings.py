"""The daemon's memory under hostile traffic: its peak resident set while each attack runs stays within a bound.

Against a real `aerodrome serve`: the peak (VmHWM, restarted through /proc/<pid>/clear_refs before each attack)
is compared with the resident set just before. Bodies of 300 MB with and without a token, heads of 64 MB,
thousands of heads that trickle in, 100 MB of exec output and a flood of TLS handshakes for unknown names, on
the API and on the edge: none of them costs the daemon more than CEILING_MIB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_machine, wait_for
from tests.support.server import Server, running_server

CEILING_MIB = 64
MIB = 1024 * 1024
HUGE = 300 * MIB


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@contextlib.contextmanager
def ceiling(server: Server, what: str) -> Iterator[None]:
    """Fail unless the daemon's peak resident set, while the block runs, stays within CEILING_MIB of before."""
    assert server.process is not None
    pid = server.process.pid
    baseline = kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    yield
    grown = (kib(pid, "VmHWM") - baseline) / 1024
    print(f"{what}: the daemon's peak resident set grew by {grown:.1f} MiB")
    assert grown < CEILING_MIB, f"{what}: the daemon grew by {grown:.1f} MiB"
    assert httpx.get(f"{server.api_url}/health", timeout=10).status_code == 200


def push(port: int, head: bytes, total: int) -> tuple[int, bytes]:
    """Send `head`, then up to `total` bytes of body until the daemon stops reading; (bytes sent, reply)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent, piece = 0, b"a" * (256 * 1024)
    try:
        sock.sendall(head)
        while sent < total:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    reply = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            reply += chunk
    sock.close()
    return sent, reply


def post_head(path: str, token: str = "", length: int = HUGE) -> bytes:
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: api\r\n{authorization}Content-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply.split(b" ", 2)[1])


def error_of(reply: bytes) -> str:
    body = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert isinstance(body["error"], str)
    return body["error"]


def test_a_300_mb_unauthenticated_graphql_post(server: Server) -> None:
    with ceiling(server, "300 MB to /graphql without a token"):
        sent, reply = push(server.api_port, post_head("/graphql"), HUGE)
    assert status(reply) in (200, 401, 413)
    assert sent < HUGE, "the daemon read the whole body of a request it refused"


def test_a_300_mb_graphql_post_with_a_token(server: Server) -> None:
    with ceiling(server, "300 MB to /graphql with a token"):
        sent, reply = push(server.api_port, post_head("/graphql", server.token), HUGE)
    assert status(reply) == 413 and "request body too large" in error_of(reply)
    assert sent < HUGE


def test_a_300_mb_machine_create(server: Server) -> None:
    app = f"ceiling-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
    for length in (HUGE, 7 * MIB):  # refused from its length; and a body under the limit that is no JSON
        with ceiling(server, f"{length // MIB} MB to machine create"):
            sent, reply = push(server.api_port, post_head(f"/v1/apps/{app}/machines", server.token, length), length)
        assert status(reply) == (413 if length == HUGE else 400), reply[:300]
        assert error_of(reply) and (sent < length or length < HUGE)
    with server.client() as api:
        assert api.get(f"/v1/apps/{app}/machines").json() == []


def test_64_mb_heads_on_the_api_and_the_edge(server: Server) -> None:
    for port, where in ((server.api_port, "API"), (server.edge_http_port, "edge")):
        with ceiling(server, f"a 64 MB head to the {where}"):
            sent, reply = push(port, b"GET / HTTP/1.1\r\nHost: x.localhost\r\nX-Big: ", 64 * MIB)
        assert status(reply) == 431
        if where == "API":  # the edge reads and drops what follows its 431 for a moment, so that it is not lost
            assert sent < 64 * MIB


async def trickle(port: int, sources: list[str], per_source: int, rounds: int) -> int:
    """Open `per_source` connections from each address, each sending a head a few bytes at a time; how many were
    admitted (answered or closed by the daemon, never left to hang)."""
    writers: list[asyncio.StreamWriter] = []
    for source in sources:
        for _ in range(per_source):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                writers.append(writer)
    head = b"GET /health HTTP/1.1\r\nHost: x.localhost\r\nX-Slow: " + b"s" * 4096
    for step in range(rounds):
        for writer in writers:
            with contextlib.suppress(OSError):
                writer.write(head[step * 64 : (step + 1) * 64])
        await asyncio.sleep(0.05)
    for writer in writers:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for writer in writers), return_exceptions=True)
    return len(writers)


def test_thousands_of_slow_heads(server: Server) -> None:
    sources = [f"127.0.8.{n}" for n in range(1, 21)]
    for port, where in ((server.api_port, "API"), (server.edge_http_port, "edge")):
        with ceiling(server, f"1000 slow heads to the {where}"):
            opened = asyncio.run(trickle(port, sources, per_source=50, rounds=40))
        assert opened > 0


def test_100_mb_of_exec_output(server: Server) -> None:
    app = f"ceiling-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        config = {"image": server.image(), "init": {"exec": ["sleep", "1000"]}}
        machine = create_machine(api, app, config)["id"]
        wait_for(api, app, machine, "started")
        url = f"/v1/apps/{app}/machines/{machine}/exec"
        assert api.post(url, json={"command": ["true"]}).status_code == 200  # warm
        with ceiling(server, "100 MB of exec output"):
            done = api.post(url, json={"command": ["sh", "-c", "yes | head -c 100000000"], "timeout": 120})
        assert done.status_code == 200, done.text
        result = done.json()
        assert result["truncated"] is True and result["stdout"] == "y\n" * (MIB // 2)
        api.delete(f"/v1/apps/{app}/machines/{machine}", params={"force": "true"})


async def sni_flood(port: int, names: list[str]) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    gate = asyncio.Semaphore(32)

    async def one(name: str) -> None:
        async with gate:
            with contextlib.suppress(OSError, ssl.SSLError):
                _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
                writer.close()
                await writer.wait_closed()  # closed before the loop ends, or the transport is reported unclosed

    await asyncio.gather(*(one(name) for name in names))


def test_an_sni_flood(server: Server) -> None:
    tls = server.data_dir / "edge" / "tls"
    before = sorted(str(path) for path in tls.rglob("*"))
    names = [f"{secrets.token_hex(8)}.localhost" for _ in range(1000)]
    with ceiling(server, "1000 TLS handshakes for unknown names"):
        asyncio.run(sni_flood(server.edge_https_port, names))
    assert sorted(str(path) for path in tls.rglob("*")) == before  # nothing written for them
