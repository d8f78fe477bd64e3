"""The client side of the HTTP data path: parse requests, pick a machine, relay the exchange, keep alive.

One `HttpConnection` per client connection, driven by a `ConnState`. The common case (a cached route, a
machine under its soft limit, an idle pooled connection) is handled synchronously in the parser callback;
anything that must wait — the directory, a start, a new connection — runs as one task per request.

A request head is bounded while it is parsed, before anything of it is forwarded: its size (the target and
header fields, counted as the parser hands them over, and the reads a head spans while incomplete, so that a
field the parser still holds counts too), its header fields, and the time from its first byte to its end.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import time
from typing import cast

import httptools

from aerodrome.proxy import messages, statics
from aerodrome.proxy.balancer import NoMachineError
from aerodrome.proxy.context import EdgeContext
from aerodrome.proxy.directory import AppRoute, Backend
from aerodrome.proxy.exchange import PendingRequest
from aerodrome.proxy.statics import StaticFile
from aerodrome.proxy.traffic import AppTraffic
from aerodrome.proxy.upstream import UpstreamConnection

_BUFFER_LIMIT = 256 * 1024  # request body held while no machine is ready, before reading pauses
_LINGER = 2.0  # seconds a refused head's connection is read (and dropped) after the reply, before it closes
# Reasons client reading is paused; it resumes when none is left.
_PAUSE_UPSTREAM, _PAUSE_QUEUE, _PAUSE_BUFFER = 1, 2, 4
_UNROUTED = AppTraffic()  # counts for requests no app answers: never read, it spares a check per count


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a head the edge refuses (`HttpConnection._refusal` says why)."""


class ConnState(enum.Enum):
    IDLE = "idle"  # waiting for a request head
    ROUTING = "routing"  # head parsed, choosing or starting a machine
    PROXYING = "proxying"  # request forwarded; the response is awaited or streaming
    TUNNEL = "tunnel"  # after a 101: bytes pass through both ways
    CLOSED = "closed"


class HttpConnection(asyncio.Protocol):
    """A client's HTTP/1.1 connection to the edge."""

    __slots__ = (
        "_active",
        "_activity",
        "_activity_seen",
        "_admitted",
        "_backend",
        "_client_ip",
        "_close_after",
        "_fields_left",
        "_forwarded",
        "_head_bytes",
        "_head_room",
        "_head_since",
        "_https_port",
        "_incoming",
        "_local",
        "_malformed",
        "_max_head_bytes",
        "_max_headers",
        "_out",
        "_parser",
        "_paused",
        "_phase",
        "_queue",
        "_refusal",
        "_response_chunked",
        "_response_started",
        "_retried",
        "_route",
        "_route_redirects",
        "_sent_at",
        "_swept_phase",
        "_task",
        "_traffic",
        "_tunnel_backlog",
        "_upstream",
        "client_ip",
        "edge",
        "edge_port",
        "last_activity",
        "local_addr",
        "scheme",
        "state",
        "transport",
    )

    def __init__(
        self,
        edge: EdgeContext,
        edge_port: int,
        scheme: str,
        local: tuple[str, int] | None = None,
        *,
        admitted: bool = False,
    ) -> None:
        """`local`: the address the listener is bound to, when it is one address (it spares asking the socket);
        `admitted`: the connection was already counted against the connection limits (by an `Acceptor`)."""
        self.edge = edge
        self._admitted = admitted
        self._local = local
        self.edge_port = edge_port
        self.scheme = scheme
        self.state = ConnState.IDLE
        self.transport: asyncio.Transport | None = None
        self.local_addr = ""
        self.client_ip = ""
        self.last_activity = time.monotonic()  # as of the last sweep that saw traffic: timeouts are in seconds
        self._activity = self._activity_seen = 0  # reads and writes, counted instead of timed on the hot path
        # Dropped when the connection ends: parser and connection refer to each other, and a cycle would wait
        # for the garbage collector, whose passes grow costly with one such cycle per connection.
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        # What follows a request that closes the connection is not a request: read and dropped, not refused.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._malformed = False  # bytes after the request being served could not be parsed: close after it
        self._forwarded = b""  # the edge's header lines that depend only on this connection
        self._client_ip = b""
        self._out: list[bytes] = []  # client writes held until the end of one read from the machine
        self._route: AppRoute | None = None  # the last route seen, and whether it redirects http to https
        self._route_redirects = False
        self._traffic = _UNROUTED  # the counts of the app the current request goes to
        self._incoming: PendingRequest | None = None  # the request the parser is filling
        self._active: PendingRequest | None = None  # the request being served
        self._queue: list[PendingRequest] = []  # pipelined requests behind it
        self._backend: Backend | None = None  # holds one unit of the machine's load while set
        self._upstream: UpstreamConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = 0
        self._sent_at = 0.0
        self._response_started = False
        self._response_chunked = False
        self._close_after = False
        self._retried = False
        self._tunnel_backlog: list[bytes] | None = None  # client bytes after an Upgrade request, before the 101
        self._https_port = 443
        # The head being parsed: room left in its size and field count; bytes of the reads it spanned while
        # incomplete; `_phase` counts heads and bodies ended, so it is even while a head is parsed.
        self._max_head_bytes = self._head_room = edge.settings.max_head_bytes  # copied: read once per request
        self._max_headers = self._fields_left = edge.settings.max_headers
        self._head_bytes = 0
        self._phase = 0
        self._swept_phase = -1  # the phase the sweep last saw, and since when it has seen that head incomplete
        self._head_since = 0.0
        self._refusal = b""

    # --- client transport -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        peer, local = transport.get_extra_info("peername"), self._local or transport.get_extra_info("sockname")
        self.client_ip, self.local_addr = peer[0], local[0]
        if not self._admitted:
            if not self.edge.admit(self.client_ip):
                self.state = ConnState.CLOSED
                self._parser = None
                self.transport.close()  # over a connection limit: closed before a byte is read
                return
            self._admitted = True
        # Reached on the shared HTTP listener, https lives on the shared HTTPS one; on a dedicated address, on 443.
        self._https_port = self.edge.https_port if local[1] == self.edge.http_port else 443
        self._forwarded = _forwarded_lines(self.client_ip, self.scheme, self.edge_port)
        self._client_ip = self.client_ip.encode()
        self.edge.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._activity += 1
        if self.state is ConnState.TUNNEL:
            assert self._upstream is not None
            self._upstream.send(data)
            return
        if self._tunnel_backlog is not None:
            self._tunnel_backlog.append(data)
            self._pause(_PAUSE_BUFFER)
            return
        parser = self._parser
        if parser is None:
            return
        phase = self._phase
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._tunnel_backlog = [data[exc.args[0] :]]
            return
        except httptools.HttpParserError:
            if self._refusal:
                self._refuse_head(int(self._refusal[:3]), self._refusal[4:].decode())
            else:
                self._malformed_request()
            return
        if phase == self._phase and not phase & 1:  # a head was being parsed before this read and still is
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head_bytes:
                self._refuse_head(431, "the request head is too large")

    def _malformed_request(self) -> None:
        """Bytes the parser refused: nothing of them is forwarded. A body that goes wrong midway cuts the machine's
        connection, so it never sees the request end; a bad request after a complete one waits for its answer."""
        self._parser = None
        active = self._active
        if active is None:
            self._refuse_head(400, "malformed HTTP request")
        elif active.complete:
            self._malformed = True  # pipelined after the one being served: answered, then the connection closes
        elif self._response_started:
            self._close()
        else:
            if self._upstream is not None:
                self._upstream.abandon()
                self._upstream = None
            if self._task is not None:
                self._task.cancel()
                self._task = None
            self._reply(400, "malformed HTTP request body", close=True)

    def _refuse_head(self, status: int, message: str) -> None:
        """Answer a request head the edge will not take (431, 414, 408) and close; nothing of it was forwarded."""
        self._parser = None  # nothing more is parsed: what the client still sends is dropped
        transport = self.transport
        if transport is None or self.state is ConnState.CLOSED:
            return
        if self._active is not None:
            self._close()  # a response is under way: it is cut short, as for a malformed request after it
            return
        self._out.append(messages.error_response(status, message, close=True))
        self.flush()
        self.state, self._incoming = ConnState.CLOSED, None  # answered: no sweep answers it again
        if transport.can_write_eof():
            # Closed at once with the client still sending, the socket would be reset and the reply lost with
            # it: the edge stops writing, and reads and drops what comes for a moment before it closes.
            transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER, transport.close)
        else:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = ConnState.CLOSED
        self._parser = None
        self.edge.connections.discard(self)
        if self._admitted:
            self._admitted = False
            self.edge.leave(self.client_ip)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._upstream is not None:
            self._upstream.abandon()
            self._upstream = None
        self._release()

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and self.transport is not None and self.state is not ConnState.CLOSED:
                self.transport.resume_reading()

    def _close(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()

    def flush(self) -> None:
        """Write what the client is owed, in one write: a head and the body after it leave together."""
        out = self._out
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
            self._activity += 1

    # --- httptools callbacks ----------------------------------------------------------------------------

    # No on_message_begin: the first piece of the target begins a request, one callback fewer per request.
    def on_url(self, url: bytes) -> None:
        request = self._incoming
        if request is None:
            request = self._incoming = PendingRequest()
            self._head_room, self._fields_left = self._max_head_bytes, self._max_headers
        request.target += url
        self._head_room -= len(url)
        if self._head_room < 0:
            self._refusal = b"414 the request target is too long"
            raise _HeadRefused

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._incoming is not None
        # Trailer fields spend what the head left: the head and trailers together stay within the limits.
        self._head_room -= len(name) + len(value)
        self._fields_left -= 1
        if self._head_room < 0 or self._fields_left < 0:
            too_many = self._fields_left < 0
            self._refusal = b"431 too many header fields" if too_many else b"431 the request head is too large"
            raise _HeadRefused
        self._incoming.add_header(name, value)

    def on_headers_complete(self) -> None:
        request, parser = self._incoming, self._parser
        assert request is not None and parser is not None
        request.method = parser.get_method()
        if request.upgrade is not None and not parser.should_upgrade():
            request.upgrade = None
        version = parser.get_http_version()  # the parser takes HTTP/0.9 (no version) and any 1.x or 2.x
        refusal = request.refusal() if version == "1.1" or version == "1.0" else b"505 HTTP/1.1 is served here"
        if refusal:
            self._refusal = refusal
            raise _HeadRefused
        self._phase += 1
        self._head_bytes = 0
        request.head_complete()
        request.keep_alive = parser.should_keep_alive()
        request.http10 = version == "1.0"
        if self._active is None:
            self._active = request
            self._dispatch()
        else:
            self._queue.append(request)
            self._pause(_PAUSE_QUEUE)

    def on_body(self, body: bytes) -> None:
        request = self._incoming
        assert request is not None
        self._traffic.bytes_in += len(body)
        data = messages.chunk(body) if request.chunked else body
        if request is self._active and self._upstream is not None:
            self._upstream.send(data)
        elif request.buffer(data) > _BUFFER_LIMIT:
            self._pause(_PAUSE_BUFFER)

    def on_message_complete(self) -> None:
        request, self._incoming = self._incoming, None
        assert request is not None
        self._phase += 1
        request.complete = True
        if request.chunked:
            end = messages.last_chunk(request.trailers)
            if request is self._active and self._upstream is not None:
                self._upstream.send(end)
            else:
                request.buffer(end)

    # --- choosing a machine -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        request = self._active
        assert request is not None
        self.state = ConnState.ROUTING
        fleet = self.edge.fleet
        route = fleet.cached_route(request.host, self.local_addr, self.edge_port)
        if isinstance(route, AppRoute) and request.force_instance is None and not route.statics:
            if route is not self._route:
                self._route, self._route_redirects = route, self._redirects(route)
                self._traffic = fleet.traffic_of(route.app)
            backend = None if self._route_redirects else self.edge.balancer.pick_now(route)
            if backend is not None:
                self._backend = backend
                connection = self.edge.pool.take(backend.endpoint)
                if connection is not None:
                    self._attach(connection)
                    return
        self._task = self.edge.spawn(self._dispatch_slowly(request))

    def _redirects(self, route: AppRoute) -> bool:
        port = route.port_spec()
        return port is not None and port.force_https and self.scheme == "http"

    async def _dispatch_slowly(self, request: PendingRequest) -> None:
        try:
            if self._backend is None:
                route = await self.edge.fleet.route(request.host, self.local_addr, self.edge_port)
                self._route = None  # the fast path picks its route, and counts, again
                if route is None:
                    self._traffic = _UNROUTED
                    self._reply(404, f"no app is served at {request.host_name or self.local_addr}")
                    return
                self._traffic = self.edge.fleet.traffic_of(route.app)
                if self._redirects(route):
                    self._redirect_to_https(request)
                    return
                if route.statics and request.force_instance is None and request.method in (b"GET", b"HEAD"):
                    found = await self.edge.fleet.directory.static_file(route, request.target)
                    if found is not None:
                        self._send_static(found)
                        return
                self._backend = await self.edge.balancer.pick(route, request.force_instance)
            key = self._backend.endpoint
            connection = self.edge.pool.take(key) or await self.edge.pool.connect(key)
        except NoMachineError as refusal:  # each clause names its own: compiled, a name keeps one type
            self._reply(503, refusal.message)
            return
        except (OSError, TimeoutError) as failure:
            machine = self._backend.machine_id if self._backend else "?"
            self._reply(502, f"could not connect to machine {machine}: {str(failure) or type(failure).__name__}")
            return
        finally:
            self._task = None
        self._attach(connection)

    def _redirect_to_https(self, request: PendingRequest) -> None:
        suffix = "" if self._https_port == 443 else f":{self._https_port}"
        location = f"https://{request.host_name}{suffix}{request.target.decode('latin-1')}"
        self._reply(301, f"redirecting to {location}", location=location)

    # --- relaying ------------------------------------------------------------------------------------------

    def _attach(self, connection: UpstreamConnection) -> None:
        request = self._active
        if self.state is ConnState.CLOSED or request is None or self._backend is None:
            connection.abandon()
            return
        self.state = ConnState.PROXYING
        self._upstream = connection
        connection.begin(self, head_only=request.method == b"HEAD")
        self._sent_at = time.monotonic()
        if not request.request_id:  # kept when the request is sent again on a fresh connection
            request.request_id = messages.request_id(self.edge.region_tag)
        head = request.head(self._forwarded, self._client_ip)
        connection.send(head + request.take_buffer())
        if self._paused:
            self._resume(_PAUSE_BUFFER)

    def on_response_head(
        self,
        status: int,
        reason: bytes,
        headers: messages.Headers,
        dropped: messages.Dropped,
        chunked: bool,
        until_close: bool,
    ) -> None:
        request = self._active
        assert request is not None
        self._response_started = True
        self._traffic.respond(status, time.monotonic() - self._sent_at)
        if chunked and request.http10:  # HTTP/1.0 knows no chunks: the body runs until the edge closes
            chunked, until_close = False, True
        self._response_chunked = chunked
        close = self._close_after = until_close or not request.keep_alive or request.upgrade is not None
        extra = b"fly-request-id: " + request.request_id + b"\r\n"
        if request.http10 and not close:
            extra += b"connection: keep-alive\r\n"  # persistence is opt-in for HTTP/1.0, so say it holds
        self._out += messages.response_head(status, reason, headers, dropped, chunked, close, extra)

    def on_interim(self, status: int, reason: bytes, headers: messages.Headers) -> None:
        request = self._active
        if request is None or not request.http10:  # never a 1xx to an HTTP/1.0 client (RFC 9110 §15.2)
            self._out.append(messages.upgrade_head(status, reason, headers))

    def on_upgrade(self, status: int, reason: bytes, headers: messages.Headers, rest: bytes) -> None:
        assert self._upstream is not None
        self.state = ConnState.TUNNEL
        self._response_started = True
        self._response_chunked = False
        self._out += (messages.upgrade_head(status, reason, headers), rest)
        backlog, self._tunnel_backlog = self._tunnel_backlog or [], None
        if backlog:
            self._upstream.send(b"".join(backlog))
        self._resume(_PAUSE_BUFFER)

    def on_response_body(self, data: bytes) -> None:
        self._traffic.bytes_out += len(data)
        if self._response_chunked:
            self._out += (messages.chunk_size(data), data, b"\r\n")
        else:
            self._out.append(data)

    def on_response_end(
        self, connection: UpstreamConnection, reusable: bool, trailers: messages.Headers | None
    ) -> None:
        request = self._active
        assert request is not None
        if self._response_chunked:
            self._out.append(messages.last_chunk(trailers))
        self.flush()
        self._upstream = None
        if reusable and request.complete:
            self.edge.pool.put(connection)
        else:
            connection.abandon()
        self._finish(close=self._close_after or not request.complete)

    def on_upstream_lost(self, connection: UpstreamConnection) -> None:
        self._upstream = None
        request = self._active
        if self.state is ConnState.TUNNEL or request is None or self._response_started:
            self._close()  # the client sees a truncated response or a closed tunnel, never a hang
            return
        if connection.reused and not connection.got_response and request.replayable and not self._retried:
            self._retried = True  # a pooled connection the machine had just closed: try a fresh one once
            self._task = self.edge.spawn(self._dispatch_slowly(request))
            return
        machine = self._backend.machine_id if self._backend else "?"
        self._reply(502, f"machine {machine} closed the connection before responding", close=True)

    def pause_client_reading(self) -> None:
        self._pause(_PAUSE_UPSTREAM)

    def resume_client_reading(self) -> None:
        self._resume(_PAUSE_UPSTREAM)

    # --- ending a request -------------------------------------------------------------------------------

    def _reply(self, status: int, message: str, *, close: bool = False, location: str | None = None) -> None:
        request = self._active
        close = close or request is None or not request.complete or not request.keep_alive
        self._traffic.refuse(status)
        if self.transport is not None and self.state is not ConnState.CLOSED:
            self._out.append(messages.error_response(status, message, close=close, location=location))
            self.flush()
        self._finish(close=close)

    def _send_static(self, found: StaticFile) -> None:
        """A file from the machine's image, answered by the edge itself (the machine is neither woken nor asked)."""
        request = self._active
        close = request is None or not request.complete or not request.keep_alive
        head_only = request is not None and request.method == b"HEAD"
        if self.transport is not None and self.state is not ConnState.CLOSED:
            self._out.append(statics.response(found, head_only=head_only, close=close))
            self.flush()
        self._finish(close=close)

    def _release(self) -> None:
        if self._backend is not None:
            self.edge.fleet.release(self._backend.machine_id)
            self._backend = None

    def _finish(self, *, close: bool) -> None:
        self._release()
        self._active = None
        self._response_started = self._retried = False
        if self._paused:  # checked here first: reading is rarely paused, and this runs once per request
            self._resume(_PAUSE_UPSTREAM)
        if close or self._tunnel_backlog is not None or (self._malformed and not self._queue):
            self._close()
            return
        self.state = ConnState.IDLE
        if self._queue:
            self._active = self._queue.pop(0)
            self._dispatch()
        if not self._queue and self._paused:
            self._resume(_PAUSE_QUEUE)

    # --- timeouts -------------------------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Close what has waited too long: idle keep-alive, a silent machine, a silent stream."""
        if self._activity != self._activity_seen:
            self._activity_seen, self.last_activity = self._activity, now
        settings = self.edge.settings
        if self.state is ConnState.IDLE and self._head_started(now):
            # A head under way: it has its deadline, and silence within it is bounded as between requests.
            if now - self._head_since > settings.head_timeout or now - self.last_activity > settings.keepalive_timeout:
                self._refuse_head(408, "the request head did not arrive in time")
        elif self.state is ConnState.IDLE and now - self.last_activity > settings.keepalive_timeout:
            self._close()
        elif self.state is ConnState.PROXYING and not self._response_started:
            if now - self._sent_at > settings.read_timeout:
                if self._upstream is not None:
                    self._upstream.abandon()
                    self._upstream = None
                self._reply(504, "the machine did not answer in time", close=True)
        elif self.state in (ConnState.PROXYING, ConnState.TUNNEL) and now - self.last_activity > settings.idle_timeout:
            self._close()

    def _head_started(self, now: float) -> bool:
        """Whether part of a request head has arrived; the first sweep to see a head marks when it began."""
        phase = self._phase
        if phase & 1 or (not self._head_bytes and self._incoming is None):
            return False
        if phase != self._swept_phase:
            self._swept_phase, self._head_since = phase, now
        return True

    def shutdown(self) -> None:
        """Close at once: the edge is closing."""
        self._close()


@functools.lru_cache(maxsize=4096)
def _forwarded_lines(client_ip: str, scheme: str, edge_port: int) -> bytes:
    """The edge's own header lines that depend only on the connection; clients reconnect, so they are cached."""
    return messages.forwarded_lines(client_ip, scheme, edge_port)
