"""Request framing as a smuggler writes it, against a real edge with a machine that records exactly what it got.

Each case is raw bytes from a client and what they mean to a strict reader (RFC 9112): the requests, each with
its method, target and body. The edge either refuses the bytes with a 4xx and forwards nothing of them, or the
machine receives requests identical in meaning: as many, in order, with the same bodies, framed so that a strict
parser (h11) reads them without doubt. Never two requests where the client sent one. Ambiguous framing (two
lengths, a length and chunks, an obfuscated Transfer-Encoding) has no meaning and must be refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aerodrome.proxy import Edge
from tests.hostile.recorder import (
    SMUGGLED,
    Meaning,
    Recorder,
    converse,
    edge_before,
    forwarded,
    framing_is_plain,
    head,
    statuses,
)
from tests.proxy.support import eventually


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def edge(recorder: Recorder, tmp_path: Path) -> AsyncIterator[Edge]:
    async with edge_before(recorder, tmp_path) as running:
        yield running


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
    ("an unknown version", head(b"", method=b"GET", version=b"HTTP/1.7"), REFUSE, []),
    ("HTTP/2 on HTTP/1", head(b"", method=b"GET", version=b"HTTP/2.0"), REFUSE, []),
    ("no version", b"GET /HTTP/1.1\r\nhost: alpha.localhost\r\n\r\n", REFUSE, []),
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
        assert answered[0] in (*range(400, 500), 501, 505), f"{case}: answered {answered}: {response[:300]!r}"
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
