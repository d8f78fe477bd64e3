"""A hostile client against a real edge: heads too large, too many or too slow, too many connections, SNI floods.

Each limit is met on loopback against the edge's listeners, with real upstream servers that count what reaches
them; waits are on conditions, and the sweep's one-second granularity is the slack allowed past a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from aerodrome.proxy import Edge
from tests.proxy.conftest import settings
from tests.proxy.support import TestDirectory, Upstream, eventually, exchange

GET = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n"


@pytest.fixture
async def directory() -> AsyncIterator[TestDirectory]:
    found = TestDirectory()
    yield found
    await found.close()


@pytest.fixture
async def alpha(directory: TestDirectory) -> Upstream:
    """App alpha's one machine: a recording upstream."""
    machine = await directory.add_machine("alpha", "m-1")
    assert isinstance(machine.server, Upstream)
    return machine.server


async def started(directory: TestDirectory, tmp_path: Path, **overrides: object) -> Edge:
    edge = Edge(directory, settings(tmp_path, **overrides))
    await edge.start()
    return edge


@pytest.fixture
async def edge(directory: TestDirectory, tmp_path: Path) -> AsyncIterator[Edge]:
    """An edge with the default limits."""
    running = await started(directory, tmp_path)
    yield running
    await running.close()


async def send_all(port: int, pieces: list[bytes], host: str = "127.0.0.1") -> bytes:
    """Write the pieces until the edge stops reading or closes, then read what it answered until it closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
    except ConnectionError:
        pass
    try:
        async with asyncio.timeout(10):
            return await reader.read(-1)
    except ConnectionError:
        return b""  # reset: the edge closed with unread bytes of ours
    finally:
        writer.close()


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


# --- the head's size and fields ------------------------------------------------------------------------------


async def test_an_oversized_head_is_refused_with_431_and_nothing_reaches_the_machine(
    edge: Edge, alpha: Upstream
) -> None:
    # 64 MB of one header field, in 64 KiB writes: the edge answers once past its limit and reads no more.
    piece = b"a" * 65536
    pieces = [b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nx-big: ", *([piece] * 1024)]
    started_at = time.monotonic()
    response = await send_all(edge.http_port, pieces)
    assert status(response) == 431, response[:200]
    assert b"content-type: text/plain" in response and b"connection: close" in response
    assert time.monotonic() - started_at < 10
    # Within one read too: the fields the parser hands over are counted exactly.
    one_read = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nx-big: " + b"b" * 70_000 + b"\r\n\r\n"
    assert status(await exchange(edge.http_port, one_read)) == 431
    long_target = b"GET /" + b"c" * 70_000 + b" HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n"
    assert status(await exchange(edge.http_port, long_target)) == 414
    assert alpha.connections == 0 and alpha.requests == 0
    # A head just under the limit is forwarded.
    fits = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nx-big: " + b"d" * 60_000 + b"\r\nconnection: close\r\n\r\n"
    assert status(await exchange(edge.http_port, fits)) == 200
    assert alpha.requests == 1


async def test_too_many_header_fields_are_refused_with_431(edge: Edge, alpha: Upstream) -> None:
    head = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\n" + b"x-n: 1\r\n" * 150 + b"\r\n"
    response = await exchange(edge.http_port, head)
    assert status(response) == 431 and b"too many header fields" in response
    flood = [b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\n", *([b"x-n: 1\r\n" * 1000] * 200)]  # 200 000 fields
    assert status(await send_all(edge.http_port, flood)) == 431
    assert alpha.connections == 0
    under = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\n" + b"x-n: 1\r\n" * 90 + b"connection: close\r\n\r\n"
    assert status(await exchange(edge.http_port, under)) == 200


async def test_the_limits_are_settings(directory: TestDirectory, alpha: Upstream, tmp_path: Path) -> None:
    edge = await started(directory, tmp_path, max_head_bytes=1024, max_headers=4)
    try:
        big = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nx-big: " + b"e" * 2000 + b"\r\n\r\n"
        assert status(await exchange(edge.http_port, big)) == 431
        many = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\n" + b"x-n: 1\r\n" * 4 + b"\r\n"
        assert status(await exchange(edge.http_port, many)) == 431
        ok = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: close\r\n\r\n"
        assert status(await exchange(edge.http_port, ok)) == 200
    finally:
        await edge.close()


# --- the head's deadline ---------------------------------------------------------------------------------------


async def read_until_closed(reader: asyncio.StreamReader, seconds: float) -> bytes:
    data = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def test_a_head_sent_a_byte_at_a_time_gets_408_at_its_deadline(
    directory: TestDirectory, alpha: Upstream, tmp_path: Path
) -> None:
    edge = await started(directory, tmp_path, head_timeout=2.0, keepalive_timeout=30.0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
        # A first request completes; the next head then trickles, a byte every 0.3 s (each byte is activity).
        writer.write(GET)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readexactly(len(b"hello from m-1"))
        began = time.monotonic()

        async def trickle() -> None:
            for byte in GET:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.3)

        dripping = asyncio.create_task(trickle())
        response = await read_until_closed(reader, 2.0 + 3.0)
        dripping.cancel()
        assert status(response) == 408, response
        assert time.monotonic() - began < 2.0 + 2.5
        writer.close()
        assert alpha.requests == 1
    finally:
        await edge.close()


async def test_a_partial_head_then_silence_is_closed_by_the_keepalive_timeout(
    directory: TestDirectory, alpha: Upstream, tmp_path: Path
) -> None:
    edge = await started(directory, tmp_path, head_timeout=30.0, keepalive_timeout=1.5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
        writer.write(b"GET / HTTP/1.1\r\nhost: alph")
        began = time.monotonic()
        response = await read_until_closed(reader, 1.5 + 3.0)
        assert status(response) == 408
        assert time.monotonic() - began < 1.5 + 2.5
        writer.close()
        assert alpha.connections == 0
    finally:
        await edge.close()


# --- connections ----------------------------------------------------------------------------------------------


async def refused(port: int, local: str = "127.0.0.1", **tls: object) -> bool:
    """Whether the edge closes a new connection from `local` at once, without answering."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0), **tls)  # type: ignore[arg-type]
    except (ConnectionError, ssl.SSLError):
        return True
    try:
        writer.write(GET)
        async with asyncio.timeout(5):
            return await reader.read(-1) == b""
    except ConnectionError:
        return True
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def test_connections_per_client_address_and_in_all_are_bounded(
    directory: TestDirectory, alpha: Upstream, tmp_path: Path
) -> None:
    edge = await started(directory, tmp_path, max_connections_per_ip=3, max_connections=5)
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
            writer.write(GET)
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            held.append(writer)
        assert await refused(edge.http_port)  # a fourth from the same address
        assert await refused(edge.https_port)  # on the TLS listener too, before any handshake
        _, other = await asyncio.open_connection("127.0.0.1", edge.http_port, local_addr=("127.0.0.2", 0))
        held.append(other)
        _, third = await asyncio.open_connection("127.0.0.1", edge.http_port, local_addr=("127.0.0.3", 0))
        held.append(third)
        await eventually(lambda: edge.context.admitted == 5)
        assert await refused(edge.http_port, "127.0.0.4")  # five in all
        held.pop(0).close()
        await eventually(lambda: edge.context.admitted == 4)
        assert status(await exchange(edge.http_port, GET.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))) == 200
    finally:
        for writer in held:
            writer.close()
        await edge.close()
    assert edge.context.admitted == 0


# --- TLS -------------------------------------------------------------------------------------------------------


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def handshake(port: int, server_name: str, context: ssl.SSLContext) -> x509.Certificate:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_name)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


async def test_an_unknown_sni_name_gets_no_certificate_and_nothing_is_written(
    edge: Edge, alpha: Upstream, tmp_path: Path
) -> None:
    before = files_under(tmp_path)
    for name in ("nope.localhost", "www.example.com", "alpha.localhost.evil.test"):
        served = await handshake(edge.https_port, name, insecure())
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name not in names.get_values_for_type(x509.DNSName)
    assert files_under(tmp_path) == before
    raw = b"GET / HTTP/1.1\r\nhost: nope.localhost\r\nconnection: close\r\n\r\n"
    assert status(await exchange(edge.https_port, raw, ssl=insecure(), server_hostname="nope.localhost")) == 404


async def test_an_sni_flood_writes_nothing_and_memory_stays_bounded(
    edge: Edge, alpha: Upstream, tmp_path: Path
) -> None:
    before, contexts = files_under(tmp_path), len(edge.certificates._contexts)
    context = insecure()
    names = [f"{secrets.token_hex(8)}.localhost" for _ in range(1000)]
    gate = asyncio.Semaphore(32)

    async def one(name: str) -> None:
        async with gate:
            await handshake(edge.https_port, name, context)

    await asyncio.gather(*(one(name) for name in names))
    assert files_under(tmp_path) == before
    assert len(edge.certificates._contexts) == contexts
    await eventually(lambda: edge.context.admitted == 0)


async def test_issued_certificates_are_bounded_on_disk_and_in_memory(directory: TestDirectory, tmp_path: Path) -> None:
    for app in ("a1", "a2", "a3", "a4", "a5"):
        await directory.add_machine(app, f"m-{app}")
    edge = await started(directory, tmp_path, max_certificates=3)
    try:
        trust = ssl.create_default_context(cadata=edge.ca_pem().decode())
        for app in ("a1", "a2", "a3", "a4", "a5"):
            await handshake(edge.https_port, f"{app}.localhost", trust)
        leaves = sorted(path.name for path in (tmp_path / "tls" / "certs").glob("*.pem"))
        assert len(leaves) <= 3 and "a5.localhost.pem" in leaves
        assert len(edge.certificates._contexts) <= 3
    finally:
        await edge.close()


async def test_legitimate_tls_to_an_app_still_works(edge: Edge, alpha: Upstream) -> None:
    trust = ssl.create_default_context(cadata=edge.ca_pem().decode())
    raw = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: close\r\n\r\n"
    data = await exchange(edge.https_port, raw, ssl=trust, server_hostname="alpha.localhost")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello from m-1")
    headers = await exchange(
        edge.https_port,
        b"GET /headers HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: close\r\n\r\n",
        ssl=trust,
        server_hostname="alpha.localhost",
    )
    assert b'"x-forwarded-proto": "https"' in headers


def test_legitimate_tls_works_on_uvloop(tmp_path: Path) -> None:
    """`aerodrome serve` runs on uvloop, whose TLS protocol takes the ClientHello the edge read first."""
    import uvloop

    async def scenario() -> bytes:
        directory = TestDirectory()
        await directory.add_machine("alpha", "m-1")
        edge = await started(directory, tmp_path)
        try:
            trust = ssl.create_default_context(cadata=edge.ca_pem().decode())
            raw = b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: close\r\n\r\n"
            return await exchange(edge.https_port, raw, ssl=trust, server_hostname="alpha.localhost")
        finally:
            await edge.close()
            await directory.close()

    assert uvloop.run(scenario()).endswith(b"hello from m-1")


async def test_the_ca_carries_name_constraints(edge: Edge) -> None:
    ca = x509.load_pem_x509_certificates(edge.ca_path.read_bytes())[0]
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees or []
    assert [n.value for n in permitted if isinstance(n, x509.DNSName)] == ["localhost"]
    networks = {str(n.value) for n in permitted if isinstance(n, x509.IPAddress)}
    assert networks == {"127.0.0.0/8", "::1/128", "fc00::/7"}


async def test_custom_hostnames_take_certificates_from_a_ca_of_their_own(edge: Edge, tmp_path: Path) -> None:
    bundle_before = edge.ca_pem()
    leaf, _ = edge.certificates.hostname_authority.issue("www.example.com")
    issuer = x509.load_pem_x509_certificate(leaf).issuer
    own = x509.load_pem_x509_certificates(bundle_before)[0]
    assert issuer != own.subject
    bundle = x509.load_pem_x509_certificates(edge.ca_pem())
    assert len(bundle) == 2 and bundle[0] == own and bundle[1].subject == issuer
    with pytest.raises(x509.ExtensionNotFound):
        bundle[1].extensions.get_extension_for_class(x509.NameConstraints)


async def test_a_ca_made_for_another_domain_is_kept_with_a_warning(
    directory: TestDirectory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aerodrome.proxy import CertificateAuthority

    CertificateAuthority(tmp_path / "tls" / "ca", "example.test")
    edge = await started(directory, tmp_path)
    await edge.close()
    assert edge.certificates.ca.permits("www.example.test") and not edge.certificates.ca.permits("a.localhost")
    assert "made for another domain" in caplog.text and "under localhost" in caplog.text


async def test_an_old_ca_without_constraints_is_kept(directory: TestDirectory, tmp_path: Path) -> None:
    from aerodrome.proxy import CertificateAuthority

    old = CertificateAuthority(tmp_path / "tls" / "ca")  # as made before the CA was constrained
    pem = old.pem()
    edge = await started(directory, tmp_path)
    try:
        assert edge.ca_pem() == pem and not edge.certificates.ca.constrained
        assert edge.certificates.hostname_authority is edge.certificates.ca
    finally:
        await edge.close()
    assert os.stat(tmp_path / "tls" / "ca" / "ca-key.pem").st_mode & 0o077 == 0


async def test_what_is_not_a_client_hello_is_closed_on_the_tls_listener(edge: Edge) -> None:
    assert await exchange(edge.https_port, GET) == b""
    assert await exchange(edge.https_port, b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00") == b""  # not a ClientHello
    await eventually(lambda: edge.context.admitted == 0)


# --- the settings -----------------------------------------------------------------------------------------------


def test_serve_takes_the_limits_and_refuses_bad_ones(tmp_path: Path) -> None:
    import subprocess
    import sys

    from aerodrome.cli.config import Layout
    from aerodrome.cli.serve import ServeOptions, edge_settings

    options = ServeOptions(
        data_dir=tmp_path, edge_timeouts={"head": 4.0}, edge_limits={"head-bytes": 8192, "connections-per-ip": 7}
    )
    chosen = edge_settings(options, Layout(tmp_path))
    assert (chosen.head_timeout, chosen.max_head_bytes, chosen.max_connections_per_ip) == (4.0, 8192, 7)
    assert chosen.max_headers == 100 and chosen.domain == "localhost"
    for value, complaint in (
        ("sockets=5", "NAME one of head-bytes"),
        ("headers=0", "at least 1"),
        ("headers=x", "whole"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "aerodrome", "serve", "--data-dir", str(tmp_path), "--edge-limit", value],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert complaint in " ".join(result.stderr.replace("│", " ").split())
