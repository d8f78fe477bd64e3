"""The machine side of the HTTP data path: one protocol per backend connection, and a keep-alive pool per backend.

An `UpstreamConnection` serves one request at a time for a `ResponseSink` (the client's connection): it parses
the response with httptools and hands the sink each piece as it arrives, so bodies are never buffered. After a
101 it stops parsing and passes bytes straight through.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol, cast

import httptools

from aerodrome.proxy.messages import RESPONSE_DROPPED, Dropped, Headers

BackendKey = tuple[str, int]  # (address, port)
# Response header names that say how the body is framed or what is hop-by-hop; the usual spellings are found
# at once, others by length first (so most names are never lowercased).
#: How long a connection attempt to a machine waits for its handshake before another is made, at first and at most.
_SYN_WAIT = 0.1
_SYN_WAIT_MAX = 1.0
_FRAMING = (b"connection", b"content-length", b"transfer-encoding")
_FRAMING_SPELLINGS = {spelling: name for name in _FRAMING for spelling in (name, name.title())}
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING)


class ResponseSink(Protocol):
    """What an upstream connection reports to the client connection it is serving.

    Within one read from the machine the sink may hold what it writes to the client, so that a head and the
    body after it leave in one write; `flush` closes each read.
    """

    def on_response_head(
        self, status: int, reason: bytes, headers: Headers, dropped: Dropped, chunked: bool, until_close: bool
    ) -> None:
        """A final response head arrived; `dropped`: the hop-by-hop names not to relay; `until_close`: the body
        runs until the machine closes."""

    def on_interim(self, status: int, reason: bytes, headers: Headers) -> None:
        """A 1xx response other than 101 (100 Continue, 103 Early Hints)."""

    def on_upgrade(self, status: int, reason: bytes, headers: Headers, rest: bytes) -> None:
        """A 101: from now on bytes pass through both ways; `rest` already followed the head."""

    def on_response_body(self, data: bytes) -> None:
        """Body bytes (chunked framing already removed), or raw bytes after an upgrade."""

    def on_response_end(self, connection: UpstreamConnection, reusable: bool, trailers: Headers | None) -> None:
        """The response ended, with its trailer fields if it was chunked and had some; `reusable`: the machine
        keeps the connection open for another request."""

    def on_upstream_lost(self, connection: UpstreamConnection) -> None:
        """The connection closed before the response ended (or, after an upgrade, at all)."""

    def flush(self) -> None:
        """The end of one read from the machine: write to the client what it produced."""

    def pause_client_reading(self) -> None:
        """The machine reads the request body slower than the client sends it."""

    def resume_client_reading(self) -> None:
        """The machine caught up."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a machine; carries one exchange at a time."""

    def __init__(self, key: BackendKey, pool: UpstreamPool) -> None:
        self.key = key
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.reused = False
        self.got_response = False  # any byte of the current response arrived
        self.idle_since = 0.0
        self.reading_paused = False
        self._parser = httptools.HttpResponseParser(self)
        self._parser_clean = True  # the parser ended its last message, so it can frame the next one
        self._tunnel = False
        self._head_only = False
        self._status = 0
        self._reason = b""
        self._headers: Headers = []
        self._trailers: Headers | None = None  # a list while a chunked body is parsed
        self._dropped = RESPONSE_DROPPED
        self._chunked = False
        self._has_length = False
        self._until_close = False
        self._head_seen = False

    # --- used by the client connection ----------------------------------------------------------------

    def begin(self, sink: ResponseSink, head_only: bool) -> None:
        """Take a new exchange; `head_only` for HEAD requests, whose responses have no body."""
        self.sink = sink
        if not self._parser_clean:
            # A HEAD response leaves the parser waiting for the body its Content-Length announced.
            self._parser = httptools.HttpResponseParser(self)
        self._parser_clean = False
        self._head_only = head_only
        self._status = 0
        self.got_response = self._until_close = self._head_seen = False
        self._start_message()

    def _start_message(self) -> None:
        """Forget the head of the last message: a new exchange, or the final response after a 1xx."""
        self._headers = []
        self._trailers = None
        self._dropped = RESPONSE_DROPPED
        self._reason = b""
        self._chunked = self._has_length = False

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    def abandon(self) -> None:
        """Close without reporting back: the client side already gave up on the exchange."""
        self.sink = None
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            self.close()  # bytes on an idle connection: nothing can be framed from here on
            return
        self.got_response = True
        if self._tunnel:
            sink.on_response_body(data)
        else:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                self._upgrade(data[exc.args[0] :])
            except httptools.HttpParserError:
                self.close()
        sink.flush()

    def eof_received(self) -> bool | None:
        return None  # close: a response without framing ends here, and an idle connection is dead

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if self._until_close and self._head_seen and not self._tunnel:
            sink.on_response_end(self, False, None)
        else:
            sink.on_upstream_lost(self)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.pause_client_reading()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.resume_client_reading()

    # --- httptools callbacks ----------------------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._trailers is not None:
            self._trailers.append((name, value))
            return
        self._headers.append((name, value))
        framing = _FRAMING_SPELLINGS.get(name)
        if framing == b"content-length":  # the usual framing, noted without a call
            self._has_length = True
        elif framing is not None:
            self._note_framing(framing, value)
        elif len(name) in _FRAMING_LENGTHS:
            self._note_framing(name.lower(), value)

    def _note_framing(self, lowered: bytes, value: bytes) -> None:
        if lowered == b"transfer-encoding":
            self._chunked = self._chunked or b"chunked" in value.lower()
        elif lowered == b"content-length":
            self._has_length = True
        elif lowered == b"connection":
            self._dropped = self._dropped.adding(value)

    def on_headers_complete(self) -> None:
        assert self.sink is not None
        status = self._status = self._parser.get_status_code()
        if status == 101:
            return  # reported with the bytes that follow, from data_received
        if status < 200:
            self.sink.on_interim(status, self._reason, self._headers)
            self._start_message()
            return
        no_body = self._head_only or status in (204, 304)
        self._until_close = not (self._chunked or self._has_length or no_body)
        self._head_seen = True
        chunked = self._chunked and not no_body
        if chunked:
            self._trailers = []
        self.sink.on_response_head(status, self._reason, self._headers, self._dropped, chunked, self._until_close)
        if self._head_only:
            self._end()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_response_body(body)

    def on_message_complete(self) -> None:
        if self._status >= 200:
            self._parser_clean = True
            if self.sink is not None:
                self._end()

    def _end(self) -> None:
        sink, self.sink = self.sink, None
        assert sink is not None
        sink.on_response_end(self, self._parser.should_keep_alive() and not self._until_close, self._trailers)

    def _upgrade(self, rest: bytes) -> None:
        if self._status != 101 or self.sink is None:
            self.close()
            return
        self._tunnel = True
        self.sink.on_upgrade(self._status, self._reason, self._headers, rest)


class UpstreamPool:
    """Idle keep-alive connections per backend, closed after `idle_timeout` seconds unused."""

    def __init__(self, *, connect_timeout: float, idle_timeout: float = 4.0, max_idle: int = 64) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[BackendKey, list[UpstreamConnection]] = {}
        # The sweep's clock: a connection's idle time is counted from the last sweep before it was put back, so
        # it may close up to one sweep early (never late), without a clock read per request.
        self._now = time.monotonic()

    def take(self, key: BackendKey) -> UpstreamConnection | None:
        """An idle connection to the backend, most recently used first (it is the least likely to be stale)."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    def put(self, connection: UpstreamConnection) -> None:
        connection.sink = None
        if connection.reading_paused:
            connection.resume_reading()
        connection.idle_since = self._now
        idle = self._idle.setdefault(connection.key, [])
        idle.append(connection)
        if len(idle) > self.max_idle:
            idle.pop(0).close()

    async def connect(self, key: BackendKey) -> UpstreamConnection:
        """A new connection to the backend; raises OSError or TimeoutError."""
        opening = asyncio.get_running_loop().create_task(self._open(key))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The caller gave up; a connection that still opens must not be left behind.
            opening.add_done_callback(_close_opened)
            raise

    async def _open(self, key: BackendKey) -> UpstreamConnection:
        """Connect, retrying a refusal until the connect timeout: a machine the API has just started may not
        listen yet (as fly-proxy does, the edge waits for it rather than answering 502 at once).

        An attempt unanswered for `_SYN_WAIT` (doubling, with jitter) is given up and made again: a machine
        whose accept queue is full drops the SYN, and the kernel would send the next one only after a second,
        then three (busybox httpd listens with a backlog of 9: a burst of 100 connections waited 1-7 s)."""
        loop = asyncio.get_running_loop()
        pause, wait = 0.005, _SYN_WAIT
        async with asyncio.timeout(self.connect_timeout):
            while True:
                try:
                    async with asyncio.timeout(wait * (0.75 + random.random() / 2)):
                        _, protocol = await loop.create_connection(
                            lambda: UpstreamConnection(key, self), key[0], key[1]
                        )
                    return protocol
                except ConnectionRefusedError:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
                except TimeoutError:
                    wait = min(wait * 2, _SYN_WAIT_MAX)

    def forget(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than `idle_timeout`."""
        self._now = now
        for idle in self._idle.values():
            while idle and now - idle[0].idle_since > self.idle_timeout:
                idle.pop(0).close()

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _close_opened(opening: asyncio.Task[UpstreamConnection]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
