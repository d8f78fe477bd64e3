"""Request framing as a smuggler writes it, against a real edge with a machine that records exactly what it got.

Each case is raw bytes from a client and what they mean to a strict reader (RFC 9112): the requests, each with
its method, target and body. The edge either refuses the bytes with a 4xx and forwards nothing of them, or the
machine receives requests identical in meaning: as many, in order, with the same bodies, framed so that a strict
parser (h11) reads them without doubt. Never two requests where the client sent one. Ambiguous framing (two
lengths, a length and chunks, an obfuscated Transfer-Encoding) has no meaning and must be refused.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from aerodrome.core import MachineState
from aerodrome.proxy import Edge
from tests.proxy.conftest import settings
from tests.proxy.support import TestDirectory, eventually

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


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    found = Recorder()
    yield found
    await found.close()


@pytest.fixture
async def edge(recorder: Recorder, tmp_path: Path) -> AsyncIterator[Edge]:
    directory = TestDirectory()
    machine = await directory.add_machine("alpha", "m-1", running=False, state=MachineState.STARTED)
    recorder.port = machine.service.internal_port
    await recorder.start()
    running = Edge(directory, settings(tmp_path, keepalive_timeout=5.0))
    await running.start()
    yield running
    await running.close()
    await directory.close()


async def converse(port: int, raw: bytes, then: bytes = b"") -> bytes:
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
                piece = await asyncio.wait_for(reader.read(65536), 1.5)
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
REFUSE, FORWARD, EITHER = "refuse", "forward", "either"

CASES: list[tuple[str, bytes, str, Meaning]] = [
    # --- ambiguous lengths: no meaning, refused ---
    ("CL.TE", head(b"content-length: 6", b"transfer-encoding: chunked", b"") + b"0\r\n\r\n" + SMUGGLED, REFUSE, []),
    ("TE.CL", head(b"transfer-encoding: chunked", b"content-length: 4", b"") + b"5c\r\n" + SMUGGLED, REFUSE, []),
    ("two lengths", head(b"content-length: 5", b"content-length: 40", b"") + b"hello" + SMUGGLED, REFUSE, []),
    ("a length list", head(b"content-length: 5, 40", b"") + b"hello" + SMUGGLED, REFUSE, []),
    ("a signed length", head(b"content-length: +5", b"") + b"hello", REFUSE, []),
    ("a hex length", head(b"content-length: 0x5", b"") + b"hello", REFUSE, []),
    ("a negative length", head(b"content-length: -1", b"") + SMUGGLED, REFUSE, []),
    ("a length past 64 bits", head(b"content-length: 99999999999999999999999", b"") + b"x", REFUSE, []),
    ("TE.TE twice", head(b"transfer-encoding: chunked", b"transfer-encoding: x", b"") + b"0\r\n\r\n", REFUSE, []),
    ("TE xchunked", head(b"transfer-encoding: xchunked", b"content-length: 5", b"") + b"hello", REFUSE, []),
    ("TE chunked then identity", head(b"transfer-encoding: chunked, identity", b"") + b"0\r\n\r\n", REFUSE, []),
    ("TE space before colon", head(b"transfer-encoding : chunked", b"") + b"0\r\n\r\n", REFUSE, []),
    ("TE folded", head(b"transfer-encoding:", b" chunked", b"") + b"0\r\n\r\n", REFUSE, []),
    ("TE with a coding", head(b"transfer-encoding: gzip, chunked", b"") + b"5\r\nhello\r\n0\r\n\r\n", REFUSE, []),
    ("TE on HTTP/1.0", head(b"transfer-encoding: chunked", b"", version=b"HTTP/1.0") + b"0\r\n\r\n", EITHER,
     [(b"POST", b"/", b"")]),
    # --- chunks ---
    ("a chunk size past 64 bits", head(b"transfer-encoding: chunked", b"") + b"fffffffffffffffffff\r\nx", REFUSE, []),
    ("a chunk size that is not hex", head(b"transfer-encoding: chunked", b"") + b"zz\r\nhello\r\n0\r\n\r\n", REFUSE,
     []),
    ("a negative chunk size", head(b"transfer-encoding: chunked", b"") + b"-5\r\nhello\r\n0\r\n\r\n", REFUSE, []),
    ("a 0x chunk size", head(b"transfer-encoding: chunked", b"") + b"0x5\r\nhello\r\n0\r\n\r\n", REFUSE, []),
    ("a chunk longer than its size", head(b"transfer-encoding: chunked", b"") + b"3\r\nhello\r\n0\r\n\r\n", REFUSE,
     []),
    ("chunk extensions", head(b"transfer-encoding: chunked", b"") + b"5;name=value;q=\"x\"\r\nhello\r\n0;end\r\n\r\n",
     FORWARD, [(b"POST", b"/", b"hello")]),
    ("a chunk extension with a bare LF", head(b"transfer-encoding: chunked", b"") + b"5;a\nb\r\nhello\r\n0\r\n\r\n",
     REFUSE, []),
    ("a chunk ending with a bare LF", head(b"transfer-encoding: chunked", b"") + b"5\r\nhello\n0\r\n\r\n" + SMUGGLED,
     EITHER, [(b"POST", b"/", b"hello"), (b"GET", b"/smuggled", b"")]),
    ("upper-case chunk sizes", head(b"transfer-encoding: CHUNKED", b"") + b"A\r\n0123456789\r\n0\r\n\r\n", FORWARD,
     [(b"POST", b"/", b"0123456789")]),
    ("trailers that frame", head(b"transfer-encoding: chunked", b"")
     + b"5\r\nhello\r\n0\r\ncontent-length: 40\r\ntransfer-encoding: chunked\r\nhost: beta.localhost\r\n\r\n"
     + SMUGGLED,
     EITHER, [(b"POST", b"/", b"hello"), (b"GET", b"/smuggled", b"")]),
    # --- lines and bytes ---
    ("obs-fold", head(b"x-folded: a", b" b", b"content-length: 0", b""), REFUSE, []),
    ("bare LF lines", b"GET / HTTP/1.1\nhost: alpha.localhost\ncontent-length: 0\n\n", EITHER, [(b"GET", b"/", b"")]),
    ("a bare CR in a value", head(b"x-a: 1\r2", b"content-length: 0", b""), REFUSE, []),
    ("NUL in a field name", head(b"x-a\x00b: 1", b"content-length: 0", b""), REFUSE, []),
    ("NUL in a field value", head(b"x-a: 1\x002", b"content-length: 0", b""), REFUSE, []),
    ("a CTL in a field value", head(b"x-a: 1\x012", b"content-length: 0", b""), REFUSE, []),
    ("DEL in a field value", head(b"x-a: 1\x7f2", b"content-length: 0", b""), REFUSE, []),
    ("a space in a field name", head(b"x a: 1", b"content-length: 0", b""), REFUSE, []),
    ("NUL in the target", head(b"", method=b"GET", target=b"/a\x00b"), REFUSE, []),
    ("a space in the target", head(b"", method=b"GET", target=b"/a b"), REFUSE, []),
    ("an unknown version", head(b"", method=b"GET", version=b"HTTP/1.7"), EITHER, [(b"GET", b"/", b"")]),
    ("HTTP/2 on HTTP/1", head(b"", method=b"GET", version=b"HTTP/2.0"), EITHER, [(b"GET", b"/", b"")]),
    ("two Host fields", head(b"host: beta.localhost", b"content-length: 0", b""), REFUSE, []),
    ("no Host on HTTP/1.1", b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", REFUSE, []),
    # --- targets ---
    ("absolute-form", head(b"content-length: 0", b"", method=b"GET", target=b"http://alpha.localhost/x?y"), EITHER,
     [(b"GET", b"http://alpha.localhost/x?y", b"")]),
    ("absolute-form naming another host", head(b"", method=b"GET", target=b"http://beta.localhost/x"), REFUSE, []),
    ("asterisk-form", head(b"content-length: 0", b"", method=b"OPTIONS", target=b"*"), EITHER,
     [(b"OPTIONS", b"*", b"")]),
    ("CONNECT", b"CONNECT alpha.localhost:80 HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n" + SMUGGLED, REFUSE, []),
    # --- persistence and pipelining ---
    ("pipelined", head(b"content-length: 5", b"") + b"hello" + head(b"", method=b"GET", target=b"/2") + SMUGGLED,
     FORWARD, [(b"POST", b"/", b"hello"), (b"GET", b"/2", b""), (b"GET", b"/smuggled", b"")]),
    ("a body that reads as a request", head(b"content-length: %d" % len(SMUGGLED), b"") + SMUGGLED, FORWARD,
     [(b"POST", b"/", SMUGGLED)]),
    ("Connection naming Content-Length", head(b"content-length: %d" % len(SMUGGLED), b"connection: content-length", b"")
     + SMUGGLED, EITHER, [(b"POST", b"/", SMUGGLED)]),
    ("Connection naming Host", head(b"connection: host", b"content-length: 0", b""), EITHER, [(b"POST", b"/", b"")]),
    ("Connection naming Transfer-Encoding", head(b"transfer-encoding: chunked", b"connection: transfer-encoding", b"")
     + b"5\r\nhello\r\n0\r\n\r\n", EITHER, [(b"POST", b"/", b"hello")]),
    ("HTTP/1.0 keep-alive", head(b"connection: keep-alive", b"content-length: 2", b"", version=b"HTTP/1.0") + b"hi"
     + head(b"", method=b"GET", version=b"HTTP/1.0"), FORWARD, [(b"POST", b"/", b"hi"), (b"GET", b"/", b"")]),
    ("HTTP/1.0 without keep-alive", head(b"content-length: 0", b"", version=b"HTTP/1.0") + SMUGGLED, FORWARD,
     [(b"POST", b"/", b"")]),
    ("close then more", head(b"connection: close", b"content-length: 0", b"") + SMUGGLED, FORWARD,
     [(b"POST", b"/", b"")]),
    # --- upgrades the machine does not take ---
    ("an Upgrade answered 200", head(b"connection: upgrade", b"upgrade: websocket", b"", method=b"GET") + SMUGGLED,
     FORWARD, [(b"GET", b"/", b"")]),
    ("h2c upgrade", head(b"connection: upgrade, http2-settings", b"upgrade: h2c", b"http2-settings: AAMAAABkAAQAAP__",
                         b"", method=b"GET") + SMUGGLED, FORWARD, [(b"GET", b"/", b"")]),
    ("Upgrade without Connection", head(b"upgrade: websocket", b"", method=b"GET") + SMUGGLED, FORWARD,
     [(b"GET", b"/", b""), (b"GET", b"/smuggled", b"")]),
    ("an Upgrade with a body", head(b"connection: upgrade", b"upgrade: websocket",
                                    b"content-length: %d" % len(SMUGGLED), b"") + SMUGGLED, REFUSE, []),
]  # fmt: skip


def forwarded(recorder: Recorder) -> Meaning:
    return [(r.method, r.target, r.body) for r in recorder.requests]


def framing_is_plain(received: Received) -> None:
    """What the machine got has one way to read it: one Host, and at most one framing field."""
    names = [name.lower() for name, _ in received.headers]
    assert names.count(b"host") == 1 and dict(received.headers)[b"host"] == HOST, received.headers
    assert names.count(b"content-length") + names.count(b"transfer-encoding") <= 1, received.headers


@pytest.mark.parametrize(("case", "raw", "policy", "meaning"), CASES, ids=[case[0] for case in CASES])
async def test_framing_is_refused_or_forwarded_with_its_meaning(
    edge: Edge, recorder: Recorder, case: str, raw: bytes, policy: str, meaning: Meaning
) -> None:
    response = await converse(edge.http_port, raw)
    answered = statuses(response)
    assert answered, f"{case}: no answer at all: {response[:300]!r}"
    assert not recorder.malformed, f"{case}: the machine could not parse what the edge sent: {recorder.malformed}"
    if recorder.requests:
        assert policy != REFUSE, f"{case}: forwarded {forwarded(recorder)} instead of a refusal {answered}"
        assert forwarded(recorder) == meaning, f"{case}: the machine got {forwarded(recorder)}, not {meaning}"
        for received in recorder.requests:
            framing_is_plain(received)
        assert answered[: len(meaning)] == [200] * len(meaning), answered
        assert all(status < 500 for status in answered), answered
    else:
        assert policy != FORWARD, f"{case}: nothing forwarded; answered {answered}"
        assert answered[0] in (*range(400, 500), 501), f"{case}: answered {answered}: {response[:300]!r}"
        assert all(not data for data in recorder.raw), f"{case}: bytes reached the machine: {recorder.raw}"


async def test_a_request_after_an_upgrade_the_machine_refused_is_not_forwarded(edge: Edge, recorder: Recorder) -> None:
    """Sent once the 200 is back: the connection was an upgrade attempt, whatever follows is not parsed as HTTP."""
    upgrade = head(b"connection: upgrade", b"upgrade: websocket", b"", method=b"GET")
    answered = statuses(await converse(edge.http_port, upgrade, then=SMUGGLED))
    assert answered == [200] and forwarded(recorder) == [(b"GET", b"/", b"")]


async def test_pipelined_requests_in_single_bytes_are_each_forwarded_once(edge: Edge, recorder: Recorder) -> None:
    """The same pipeline, one byte per write: framing does not depend on where reads split."""
    raw = head(b"transfer-encoding: chunked", b"") + b"5;x=y\r\nhello\r\n0\r\n\r\n" + head(b"content-length: 2", b"")
    raw += b"hi" + SMUGGLED
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    for byte in raw:
        writer.write(bytes([byte]))
        await writer.drain()
    response = b""
    while statuses(response).count(200) < 3:
        response += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert forwarded(recorder) == [(b"POST", b"/", b"hello"), (b"POST", b"/", b"hi"), (b"GET", b"/smuggled", b"")]


async def test_a_body_that_goes_wrong_after_its_head_was_forwarded_never_completes(
    edge: Edge, recorder: Recorder
) -> None:
    """The head went on to the machine; the chunks then break: the client gets a 400, and the machine's connection
    is cut before the request ends, so the machine never acts on it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
    writer.write(head(b"transfer-encoding: chunked", b"") + b"5\r\nhello\r\n")
    await eventually(lambda: any(recorder.raw))
    writer.write(b"zz\r\n" + SMUGGLED)
    response = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    assert statuses(response) == [400] and b"malformed HTTP request body" in response
    await eventually(lambda: not recorder.writers)  # the machine's side of the connection is closed
    assert recorder.requests == [] and b"hello" in recorder.raw[0] and b"smuggled" not in b"".join(recorder.raw)


async def test_a_malformed_request_after_a_good_one_ends_the_connection_after_its_answer(
    edge: Edge, recorder: Recorder
) -> None:
    raw = head(b"content-length: 2", b"") + b"hi" + b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nx-a: \x00\r\n\r\n"
    response = await converse(edge.http_port, raw)
    assert statuses(response) == [200] and forwarded(recorder) == [(b"POST", b"/", b"hi")]
