"""One request as the client sent it: the head fields the edge acts on, and body bytes held until a machine is ready."""

from __future__ import annotations

from aerodrome.proxy import messages

# Request headers the edge reads; only names of these lengths are lowercased to check.
_NOTED = frozenset(
    {
        b"host",
        b"fly-force-instance-id",
        b"x-forwarded-for",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        b"connection",
        b"te",
    }
)
_NOTED_LENGTHS = frozenset(len(name) for name in _NOTED)


class PendingRequest:
    """A parsed request head, the flags derived from it, and body bytes not yet forwarded."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "chunked",
        "complete",
        "connection_listed",
        "content_length",
        "dropped",
        "force_instance",
        "headers",
        "host",
        "hosts",
        "http10",
        "keep_alive",
        "method",
        "request_id",
        "target",
        "trailers",
        "trailers_accepted",
        "transfer_codings",
        "upgrade",
        "x_forwarded_for",
    )

    def __init__(self) -> None:
        self.method = b"GET"
        self.target = b""
        self.headers: messages.Headers = []
        self.trailers: messages.Headers | None = None  # a list once the head is complete and the body is chunked
        self.dropped = messages.REQUEST_DROPPED  # what is not forwarded: hop-by-hop, and the edge's own headers
        self.host: str | None = None  # the Host header, lowercased, port included
        self.hosts = 0  # Host fields sent: more than one is refused
        self.transfer_codings = b""  # the Transfer-Encoding fields, joined
        self.force_instance: str | None = None  # Fly-Force-Instance-Id
        self.x_forwarded_for: bytes | None = None
        self.upgrade: bytes | None = None  # the Upgrade header's value
        self.trailers_accepted = False  # TE: trailers
        self.chunked = False
        self.content_length = 0
        self.keep_alive = True
        self.http10 = False  # an HTTP/1.0 client: no chunked framing, no 1xx, keep-alive only when asked for
        self.complete = False
        self.connection_listed = False  # a Connection field was sent
        self.request_id = b""
        self._buffer: list[bytes] = []
        self._buffered = 0

    def add_header(self, name: bytes, value: bytes) -> None:
        """Keep a header field (a trailer field, once the head is complete); note the few the edge acts on."""
        if self.trailers is not None:
            self.trailers.append((name, value))
            return
        self.headers.append((name, value))
        if len(name) in _NOTED_LENGTHS:
            lowered = name.lower()
            if lowered == b"host":  # in every request: no call for it
                self.host = value.decode("latin-1").lower()
                self.hosts += 1
            elif lowered in _NOTED:
                self._note(lowered, value)

    def _note(self, lowered: bytes, value: bytes) -> None:
        if lowered == b"fly-force-instance-id":
            self.force_instance = value.decode("latin-1").strip() or None
        elif lowered == b"x-forwarded-for":
            self.x_forwarded_for = value if self.x_forwarded_for is None else self.x_forwarded_for + b", " + value
        elif lowered == b"transfer-encoding":
            self.transfer_codings += b", " + value if self.transfer_codings else value
            self.chunked = b"chunked" in value.lower()
        elif lowered == b"content-length":
            self.content_length = int(value) if value.strip().isdigit() else 0
        elif lowered == b"upgrade":
            self.upgrade = value
        elif lowered == b"connection":
            self.connection_listed = True
            self.dropped = self.dropped.adding(value)
        elif lowered == b"te":
            self.trailers_accepted = b"trailers" in value.lower()

    def head_complete(self) -> None:
        """The head is parsed: header fields from now on are trailer fields."""
        if self.chunked:
            self.trailers = []

    def refusal(self) -> bytes:
        """Why a parsed head is refused (`<status> <reason>`), or nothing. The parser has already refused what it
        cannot frame; these are heads it frames one way and a machine behind the edge could read another."""
        if self.hosts > 1:
            return b"400 a request has one Host field"
        if self.transfer_codings and self.transfer_codings.strip().lower() != b"chunked":
            return b"501 transfer codings other than chunked are not implemented"
        if self.upgrade is not None and (self.chunked or self.content_length):
            return b"400 an Upgrade request has no body"  # the parser takes what follows the head as the tunnel's
        if self.method == b"CONNECT":
            return b"405 CONNECT is not served"
        target = self.target
        if target[:1] != b"/" and target != b"*":  # absolute-form: its authority, not Host, names the server
            authority = target.partition(b"://")[2].partition(b"/")[0].partition(b"?")[0].lower()
            if _without_port(authority.decode("latin-1")) != self.host_name:
                return b"400 the request target names another host than the Host field"
        return b""

    @property
    def host_name(self) -> str:
        """The Host without its port."""
        return _without_port(self.host or "")

    @property
    def replayable(self) -> bool:
        """Safe to send again on another connection: no body, nothing of it was consumed."""
        return not self.chunked and self.content_length == 0 and self.upgrade is None

    def head(self, forwarded: bytes, client_ip: bytes) -> bytes:
        """The head sent to the machine: the client's fields, less hop-by-hop ones, plus the edge's own.
        `forwarded` holds the lines that depend only on the connection."""
        parts = [self.method, b" ", self.target, b" HTTP/1.1\r\n"]
        messages.header_lines(parts, self.headers, self.dropped)
        parts += (forwarded, b"fly-request-id: ", self.request_id, b"\r\nx-forwarded-for: ")
        if self.x_forwarded_for is not None:
            parts += (self.x_forwarded_for, b", ")  # appended to what earlier proxies said
        parts += (client_ip, b"\r\n")
        if self.chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        if self.trailers_accepted:  # the edge relays trailers, so the client's TE holds for the machine too
            parts.append(b"te: trailers\r\n")
        if self.upgrade is not None:
            te = b", te" if self.trailers_accepted else b""
            parts += (b"connection: upgrade", te, b"\r\nupgrade: ", self.upgrade, b"\r\n")
        elif self.trailers_accepted:
            parts.append(b"connection: te\r\n")  # TE is hop-by-hop: its sender lists it (RFC 9110 §10.1.4)
        parts.append(b"\r\n")
        return b"".join(parts)

    def buffer(self, data: bytes) -> int:
        """Hold body bytes until a machine is ready; returns how many are held."""
        self._buffer.append(data)
        self._buffered += len(data)
        return self._buffered

    def take_buffer(self) -> bytes:
        if not self._buffer:
            return b""
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        return data


def _without_port(host: str) -> str:
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]
