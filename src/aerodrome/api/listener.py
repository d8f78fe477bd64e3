"""The API's HTTP/1.1 listener: uvicorn's httptools protocol, with the bounds uvicorn does not set.

uvicorn with httptools reads a request head of any size and any number of header fields into memory
(`h11_max_incomplete_event_size` exists for h11 only), gives a head unlimited time (its keep-alive timer is
armed only after a reply and cancelled by any byte, so a head sent a byte at a time never ends) and admits any
number of connections (`limit_concurrency` answers 503 in plain text, per request, to everyone alike); nor does
it bound a body's pauses. This subclass counts a head's bytes and fields as they arrive, gives each head a
deadline and each body a longest silence, and admits a bounded number of connections in all and per client
address; each refusal is Fly's `{"error": …}` and a close.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aerodrome.api.limits import ApiLimits
from aerodrome.api.responses import encode


class Admission:
    """Open connections of one listener, in all and per client address."""

    def __init__(self, limits: ApiLimits) -> None:
        self.limits = limits
        self.total = 0
        self.by_address: dict[str, int] = {}

    def admit(self, address: str) -> str | None:
        """None, and the connection is counted; or why it is refused."""
        if self.total >= self.limits.connections:
            return f"too many connections to the API (at most {self.limits.connections})"
        if self.by_address.get(address, 0) >= self.limits.connections_per_address:
            return f"too many connections from {address} (at most {self.limits.connections_per_address})"
        self.total += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        left = self.by_address.pop(address) - 1
        if left:
            self.by_address[address] = left


class HeadRefusedError(Exception):
    """Raised inside a parser callback to stop parsing a head that is over a limit."""


class QuietParser:
    """The parser, for uvicorn, except that a head refused by a callback (answered already) is not then logged
    as an invalid request and answered 400 by uvicorn."""

    def __init__(self, parser: httptools.HttpRequestParser, protocol: GuardedProtocol) -> None:
        self._parser = parser
        self._protocol = protocol

    def feed_data(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self._protocol.refused is None:  # a malformed request, not a refusal of ours
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def reply(status: int, error: str) -> bytes:
    body = encode({"error": error})
    return (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[ApiLimits]
    admission: ClassVar[Admission]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parser = QuietParser(self.parser, self)  # type: ignore[assignment]
        self._address: str | None = None  # set while the connection is counted
        self.refused: tuple[int, str] | None = None  # the answer, once one was given
        self._in_head = True  # the parser is between two requests' bodies: what arrives is a head
        self._heads = 0  # heads completed, to tell a read that was all head
        self._head_bytes = 0  # bytes of reads that were all head
        self._head_parts = 0  # bytes of the URL and complete fields, as the parser hands them over
        self._fields = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_data = False  # a byte came since the head timer was armed
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        reason = self.admission.admit(address)
        if reason is not None:
            self._refuse(503, reason)
            return
        self._address = address
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            self.admission.release(self._address)
            self._address = None
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused is not None:
            return
        self._head_data = True
        self._last_data = self.loop.time()
        all_head, heads = self._in_head, self._heads
        super().data_received(data)
        if all_head and self._in_head and heads == self._heads and self.refused is None:
            self._head_bytes += len(data)  # the parser holds these until a field is complete
            if self._head_bytes > self.limits.head_bytes:
                self._refuse(431, self._too_large())

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_parts = self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.limits.headers:
            self._refuse(431, f"too many header fields: at most {self.limits.headers}")
            raise HeadRefusedError
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        self._disarm_head_timer()
        super().on_headers_complete()
        # disarmed by on_message_complete, at once when there is no body
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_silent)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._disarm_body_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_head and not self.pipeline and not self.transport.is_closing():
            self._arm_head_timer()

    # Limits

    def _count(self, size: int) -> None:
        self._head_parts += size
        if self._head_parts > self.limits.head_bytes:
            self._refuse(431, self._too_large())
            raise HeadRefusedError

    def _too_large(self) -> str:
        return f"request header fields too large: the head is limited to {self.limits.head_bytes} bytes"

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_data = False
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._head_data:  # an idle connection: nothing to answer
            self.refused = (408, "")
            self.transport.close()
            return
        self._refuse(408, f"request head not received within {self.limits.head_timeout:g} seconds")

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_silent(self) -> None:
        # Silence is the client's only while the daemon reads: not while reading is paused for a handler that
        # has not taken what came, nor while a client that expects `100 Continue` waits for it.
        waiting = self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)
        remaining = self.limits.body_timeout - (self.loop.time() - self._last_data)
        if waiting or remaining > 0:
            delay = self.limits.body_timeout if waiting else remaining
            self._body_timer = self.loop.call_later(delay, self._body_silent)
            return
        self._body_timer = None
        self._refuse(408, f"request body not received: {self.limits.body_timeout:g} seconds without data")

    def _refuse(self, status: int, error: str) -> None:
        """Answer `status` and close; a reply already started is cut short instead."""
        self.refused = (status, error)
        self._disarm_head_timer()
        self._disarm_body_timer()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(reply(status, error))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # as connection_lost will say: the handler's reads and writes end here
            cycle.message_event.set()
        self.transport.close()


def guarded_protocol(limits: ApiLimits) -> type[GuardedProtocol]:
    """The protocol class for one listener: its connections share one count."""

    class Listener(GuardedProtocol):
        pass

    Listener.limits = limits
    Listener.admission = Admission(limits)
    return Listener
