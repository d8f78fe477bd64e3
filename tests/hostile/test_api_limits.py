"""The API listener as a hostile client meets it: oversized bodies, heads and header lists, a head sent a byte at
a time, a flood of connections from one address, expensive GraphQL documents and Authorization headers with
thousands of tokens. Each is refused early, in Fly's error shape, without the daemon buffering what it refuses;
legitimate requests of the guide's shapes still pass. Against a real `aerodrome serve`, over raw sockets."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aerodrome.api import ApiLimits, parse_limits
from aerodrome.api.listener import Admission
from tests.support.server import Server, running_server

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
PER_ADDRESS = 16
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    limits = {"head-timeout": HEAD_TIMEOUT, "body-timeout": BODY_TIMEOUT, "connections-per-address": PER_ADDRESS}
    with running_server(
        *(arg for name, value in limits.items() for arg in ("--api-limit", f"{name}={value}"))
    ) as started:
        started.push_image("busybox")
        yield started
        log = started.log_path.read_text()
        for unwanted in ("Traceback", "unexpected error", "Invalid HTTP request"):  # refusals are not failures
            assert unwanted not in log, log[-4000:]


def rss_kib(server: Server) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@contextlib.contextmanager
def connection(server: Server, source: str = "127.0.0.1") -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.api_port), timeout=10, source_address=(source, 0))
    try:
        yield sock
    finally:
        sock.close()


def send_until_refused(sock: socket.socket, head: bytes, chunk: bytes, total: int) -> int:
    """Send `head` then `chunk` until `total` bytes or the server stops reading; the bytes sent."""
    sent = 0
    try:
        sock.sendall(head)
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 reply with a Content-Length (what the daemon sends), read until its end or the close."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        while len(body) < int(headers.get("content-length", "0")):
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    assert data, "the connection closed without a reply"
    return int(lines[0].split()[1]), headers, body


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: Server) -> None:
    with connection(server) as sock:
        sock.sendall(
            b"POST /v1/apps HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + server.token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
        )
        status, headers, body = read_reply(sock)
        assert status == 413 and headers["connection"] == "close"
        assert json.loads(body) == {"error": f"request body too large: the limit is {MIB} bytes"}
        assert closed(sock)


@pytest.mark.parametrize(
    ("path", "authorization", "status"),
    [
        ("/v1/apps", "token", 413),  # counted as it streams: 1 MiB
        ("/v1/apps/APP/machines", "token", 413),  # 8 MiB
        ("/graphql", "", 200),  # no token: never read at all, UNAUTHORIZED
        ("/v1/apps", "", 401),
    ],
)
def test_a_streamed_body_stops_being_read(server: Server, path: str, authorization: str, status: int) -> None:
    app = f"hostile-{uuid.uuid4().hex[:8]}"
    if "APP" in path:
        with server.client() as api:
            assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
    token = f"Authorization: Bearer {server.token}\r\n" if authorization else ""
    head = (
        f"POST {path.replace('APP', app)} HTTP/1.1\r\nHost: api\r\n{token}"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"a" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    before = rss_kib(server)
    with connection(server) as sock:
        sent = send_until_refused(sock, head, chunk, 128 * MIB)
        code, headers, body = read_reply(sock)
        assert code == status and headers["connection"] == "close", body
        assert closed(sock)
    assert sent < 64 * MIB, "the daemon kept reading a body it refused"
    grown = rss_kib(server) - before
    assert grown < 24 * 1024, f"the daemon grew by {grown} KiB for a body it refused"
    if status == 413:
        assert "request body too large" in json.loads(body)["error"]


def test_an_oversized_head_is_refused(server: Server) -> None:
    before = rss_kib(server)
    with connection(server) as sock:
        sent = send_until_refused(sock, b"GET /health HTTP/1.1\r\nHost: api\r\nX-Big: ", b"a" * 65536, 64 * MIB)
        status, _, body = read_reply(sock)
    assert status == 431 and "request header fields too large" in json.loads(body)["error"]
    assert sent < 16 * MIB
    assert rss_kib(server) - before < 16 * 1024


@pytest.mark.parametrize("count", [101, 200_000])
def test_too_many_header_fields_are_refused(server: Server, count: int) -> None:
    with connection(server) as sock:
        fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(count))
        send_until_refused(sock, b"GET /health HTTP/1.1\r\nHost: api\r\n", fields + b"\r\n", 1)
        status, _, body = read_reply(sock)
    assert status == 431
    assert json.loads(body)["error"] in (
        "too many header fields: at most 100",
        "request header fields too large: the head is limited to 65536 bytes",
    )


def test_a_head_sent_a_byte_at_a_time_meets_its_deadline(server: Server) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: api\r\nX-Slow: " + b"a" * 1000
    with connection(server) as sock:
        sock.settimeout(0.25)
        started = time.monotonic()
        deadline = started + HEAD_TIMEOUT + 3
        reply = b""
        for byte in head:
            assert time.monotonic() < deadline, "the head was still being read past its deadline"
            try:
                sock.sendall(bytes([byte]))
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            break
        elapsed = time.monotonic() - started
    assert HEAD_TIMEOUT - 0.5 < elapsed < HEAD_TIMEOUT + 3
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request head not received within 2 seconds" in reply


def test_a_body_that_stops_coming_meets_its_deadline(server: Server) -> None:
    with connection(server) as sock:
        sock.sendall(
            b"POST /v1/apps HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + server.token.encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"app_name": '
        )
        sock.settimeout(BODY_TIMEOUT + 3)
        started = time.monotonic()
        status, _, body = read_reply(sock)
        elapsed = time.monotonic() - started
        assert closed(sock)
    assert status == 408 and BODY_TIMEOUT - 0.5 < elapsed < BODY_TIMEOUT + 3
    assert json.loads(body) == {"error": "request body not received: 2 seconds without data"}


def test_connections_per_address_are_bounded(server: Server) -> None:
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connection(server, "127.0.0.3")) for _ in range(PER_ADDRESS)]
        with connection(server, "127.0.0.3") as refused:
            status, _, body = read_reply(refused)
            assert status == 503
            assert json.loads(body) == {"error": f"too many connections from 127.0.0.3 (at most {PER_ADDRESS})"}
        assert httpx.get(f"{server.api_url}/health", timeout=5).status_code == 200  # 127.0.0.1 is served
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n")  # and so are the admitted ones
        assert read_reply(held[0])[0] == 200
    # the count is given back as connections close
    for _ in range(PER_ADDRESS + 1):
        with connection(server, "127.0.0.3") as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
            assert read_reply(sock)[0] == 200


def gql(server: Server, query: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token if token is not None else server.token}"}
    return httpx.post(f"{server.api_url}/graphql", json={"query": query}, headers=headers, timeout=10)


def test_graphql_depth_and_cost_are_bounded(server: Server) -> None:
    deep = gql(server, "{" + 'app(name: "x") {' * 13 + "id" + "}" * 14)
    assert deep.status_code == 400
    assert deep.json()["error"] == "query is nested too deeply: 14 levels, at most 12"
    assert deep.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    very_deep = gql(server, "{" + "a {" * 5000 + "b" + "}" * 5001)
    assert very_deep.status_code == 400 and "query is" in very_deep.json()["error"]

    fragments = ["fragment F0 on App { id name }"]
    fragments += [f"fragment F{i} on App {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 25)]
    started = time.monotonic()
    wide = gql(server, '{ app(name: "x") { ...F24 } } ' + " ".join(fragments))
    assert wide.status_code == 400 and wide.json()["error"].startswith("query selects too many fields: 33554433")
    assert time.monotonic() - started < 0.5

    assert gql(server, '{ organization(slug: "personal") { slug } }').json() == {
        "data": {"organization": {"slug": "personal"}}
    }


def test_an_authorization_header_with_thousands_of_tokens_is_refused_quickly(server: Server) -> None:
    cases = [
        (",".join(f"fm2_{i}" for i in range(20_000)), 431, "request header fields too large"),  # 150 kB: the head
        (",".join("x" * 20_000), 401, "authorization header too long (at most 16384 bytes)"),
        (",".join("x" * 8_000), 401, "too many tokens in the authorization header (at most 8)"),
    ]
    for many, status, error in cases:
        for scheme in ("Bearer ", "FlyV1 ", "Bearer FlyV1 "):
            started = time.monotonic()
            response = httpx.get(
                f"{server.api_url}/v1/apps", params={"org_slug": "personal"}, headers={"Authorization": scheme + many}
            )
            elapsed = time.monotonic() - started
            assert response.status_code == status and error in response.json()["error"], response.text
            assert elapsed < 0.5, f"refusing {len(scheme + many)} bytes of tokens took {elapsed:.2f} s"
        if status == 401:
            started = time.monotonic()
            unauthorized = gql(server, "{ organization { slug } }", token=many).json()
            assert unauthorized["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
            assert time.monotonic() - started < 0.5
    stacked = httpx.get(f"{server.api_url}/v1/apps", headers={"Authorization": "Bearer " * 2000 + "x"})
    assert stacked.status_code == 401 and stacked.elapsed.total_seconds() < 0.5

    nine = ",".join(["fm2_nope"] * 8 + [server.token])
    refused = httpx.get(f"{server.api_url}/v1/apps?org_slug=personal", headers={"Authorization": f"FlyV1 {nine}"})
    assert refused.status_code == 401
    assert refused.json() == {"error": "too many tokens in the authorization header (at most 8)"}
    # a FlyV1 list of macaroons, the caller's token among them, is still one caller
    eight = ",".join(["fm2_nope"] * 7 + [server.token])
    for header in (f"FlyV1 {eight}", f"Bearer FlyV1 {eight}"):
        listed = httpx.get(f"{server.api_url}/v1/apps?org_slug=personal", headers={"Authorization": header})
        assert listed.status_code == 200, listed.text


def test_the_guides_requests_still_pass(server: Server) -> None:
    app = f"mcp-demo-{uuid.uuid4().hex[:12]}"
    with server.client() as api:
        created = api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"})
        assert created.status_code == 201, created.text
        allocate = (
            "mutation($input: AllocateIPAddressInput!) { allocateIpAddress(input: $input) "
            "{ ipAddress { id address type region createdAt } } }"
        )
        ip = api.post("/graphql", json={"query": allocate, "variables": {"input": {"appId": app, "type": "v6"}}})
        assert ip.status_code == 200 and ip.json()["data"]["allocateIpAddress"]["ipAddress"]["type"] == "v6"
        volume = api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "iad", "size_gb": 1})
        assert volume.status_code == 200, volume.text
        # the guide's machine, with a file that puts the body past the 1 MiB of other routes
        content = base64.b64encode(b"x" * (MIB + MIB // 2)).decode()
        config = {
            "image": server.image("busybox"),
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "files": [{"guest_path": "/etc/large.txt", "raw_value": content}],
            "mounts": [
                {
                    "volume": volume.json()["id"],
                    "path": "/data",
                    "extend_threshold_percent": 80,
                    "add_size_gb": 1,
                    "size_gb_limit": 100,
                }
            ],
            "services": [
                {
                    "protocol": "tcp",
                    "internal_port": 8080,
                    "autostop": "stop",
                    "autostart": True,
                    "ports": [
                        {"port": 80, "handlers": ["http"], "force_https": True},
                        {"port": 443, "handlers": ["http", "tls"]},
                    ],
                }
            ],
        }
        machine = api.post(f"/v1/apps/{app}/machines", json={"region": "iad", "config": config})
        assert machine.status_code == 200, machine.text
        assert len(machine.request.content) > MIB
        assert api.get(f"/v1/apps/{app}/machines/{machine.json()['id']}").status_code == 200


def test_connections_are_bounded_in_all() -> None:
    admission = Admission(ApiLimits(connections=3, connections_per_address=2))
    assert admission.admit("a") is None and admission.admit("a") is None
    assert admission.admit("a") == "too many connections from a (at most 2)"
    assert admission.admit("b") is None
    assert admission.admit("c") == "too many connections to the API (at most 3)"
    admission.release("a")
    assert admission.admit("c") is None and admission.by_address == {"a": 1, "b": 1, "c": 1}


def test_limits_are_settings() -> None:
    limits = parse_limits({"body": "2m", "head": "32k", "head-timeout": "2.5", "auth-tokens": "4"})
    assert limits == ApiLimits(body_bytes=2 * MIB, head_bytes=32 * 1024, head_timeout=2.5, auth_tokens=4)
    for bad in ({"nope": "1"}, {"headers": "1k"}, {"body": "0"}, {"head-timeout": "-1"}, {"body": "lots"}):
        with pytest.raises(ValueError):
            parse_limits(bad)
