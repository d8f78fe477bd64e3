"""A framing fuzzer: valid pipelines, mutated at random, through a real edge to a machine that records them.

A strict parser (h11) is the reference: what the client's bytes mean is the requests it reads from them before it
stops (at an error, a close or an upgrade). The machine may get fewer of them (the edge answers some itself, a 404
for a Host it does not serve), never more and never others: its requests are always a subsequence of the
reference's, with the same methods, targets and bodies, and each is framed so that h11 reads it. h11 knows no
HTTP/1.0 keep-alive: after such a request the reference says nothing. Seeded, so a failure names its case;
AERODROME_FUZZ_CASES runs more of them, and AERODROME_FUZZ_SEED others.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import h11

from tests.hostile.recorder import Meaning, Recorder, converse, edge_before, forwarded, framing_is_plain, head

CASES = int(os.environ.get("AERODROME_FUZZ_CASES", "80"))
SEED = int(os.environ.get("AERODROME_FUZZ_SEED", "12"))

BASES = [
    head(b"content-length: 5", b"") + b"hello" + head(b"", method=b"GET", target=b"/two"),
    head(b"transfer-encoding: chunked", b"") + b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n" + head(b"", method=b"GET"),
    head(b"content-length: 2", b"x-a: 1", b"") + b"hi" + head(b"transfer-encoding: chunked", b"") + b"0\r\n\r\n",
    head(b"connection: keep-alive", b"content-length: 1", b"", version=b"HTTP/1.0") + b"z" + head(b"", method=b"GET"),
]
BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b";", b"0", b"f", b"-", b"+", b"\x7f", b"\x80"]
LINES = [
    b"content-length: 3",
    b"content-length: 0",
    b"content-length: 99",
    b"transfer-encoding: chunked",
    b"transfer-encoding: gzip",
    b"transfer-encoding: identity",
    b"connection: close",
    b"connection: content-length",
    b"connection: upgrade",
    b"upgrade: websocket",
    b"host: beta.localhost",
    b"expect: 100-continue",
    b" folded",
]


def strict_reading(raw: bytes) -> tuple[Meaning, bool]:
    """The requests h11 reads from `raw` before it stops, and whether it stopped where HTTP/1.0 keep-alive (which
    it does not implement) would go on."""
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(raw)
    requests: Meaning = []
    method, target, body, kept_alive = b"", b"", b"", False
    try:
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return requests, False
            if isinstance(event, h11.Request):
                method, target, body = event.method, event.target, b""
                connection = dict(event.headers).get(b"connection", b"").lower()
                kept_alive = event.http_version == b"1.0" and b"keep-alive" in connection
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                requests.append((method, target, body))
                parser.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                parser.send(h11.EndOfMessage())
                if parser.our_state is h11.MUST_CLOSE:
                    return requests, kept_alive
                parser.start_next_cycle()
    except h11.RemoteProtocolError:
        return requests, False


def within(got: Meaning, reference: Meaning, open_ended: bool) -> bool:
    """Whether `got` is `reference` less some of its requests, in order; or, open-ended, all of it and then more."""
    if len(got) > len(reference):
        return open_ended and got[: len(reference)] == reference
    rest = iter(reference)
    return all(any(request == candidate for candidate in rest) for request in got)


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """One random change that a smuggler would try: a stray byte, a lost one, a digit, a framing line. Host lines
    are left whole: h11 stops at a request without one, where the edge answers it a 404 and reads on."""
    hosts = [match.span() for match in re.finditer(rb"host: alpha\.localhost\r\n", raw, re.IGNORECASE)]
    where = rng.choice([i for i in range(len(raw)) if not any(start <= i < end for start, end in hosts)])
    mutations: list[Callable[[], bytes]] = [
        lambda: raw[:where] + rng.choice(BYTES) + raw[where:],
        lambda: raw[:where] + raw[where + 1 :],
        lambda: raw[:where] + str(rng.randrange(10)).encode() + raw[where + 1 :],
        lambda: raw.replace(b"\r\n", b"\r\n" + rng.choice(LINES) + b"\r\n", 1 + rng.randrange(2)),
        lambda: raw.replace(b"\r\n", b"\n", rng.randrange(1, 6)),
        lambda: raw[:where] + raw[where:].upper(),
    ]
    return rng.choice(mutations)()


def cases() -> list[bytes]:
    rng = random.Random(SEED)
    found = []
    for _ in range(CASES):
        raw = rng.choice(BASES)
        for _ in range(rng.randint(1, 3)):
            raw = mutate(raw, rng)
        found.append(raw)
    return found


async def test_the_machine_never_gets_more_than_a_strict_reading(tmp_path: Path) -> None:
    failures = []
    for number, raw in enumerate(cases()):
        recorder = Recorder()
        async with edge_before(recorder, tmp_path / str(number)) as edge:
            await converse(edge.http_port, raw, quiet=0.3)
        (reference, open_ended), got = strict_reading(raw), forwarded(recorder)
        if recorder.malformed or not within(got, reference, open_ended):
            failures.append(f"case {number}: {raw!r}\n  machine got {got}\n  strictly {reference}")
            continue
        for received in recorder.requests:
            framing_is_plain(received)
    assert not failures, "\n".join(failures)
