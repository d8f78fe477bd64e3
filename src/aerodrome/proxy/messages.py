"""HTTP/1.1 heads the edge writes: the request it forwards, the response it relays, its own error replies."""

from __future__ import annotations

import itertools
import os

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the edge sets itself; dropped from what is forwarded.
# `Trailer` is end-to-end: it announces the trailer fields, which the edge forwards.
REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"fly-client-ip",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"fly-request-id",
        b"x-forwarded-for",
    }
)
RESPONSE_DROP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
# Trailer fields that would say something about framing or routing are never relayed (RFC 9110 §6.5.1).
TRAILER_DROP = REQUEST_DROP | {b"content-length", b"host", b"trailer"}

_REASONS = {
    301: b"Moved Permanently",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    501: b"Not Implemented",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}
_request_ids = itertools.count(1)
_REQUEST_ID_PREFIX = os.urandom(6).hex().encode()
_CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})
# End-to-end fields a `Connection` option never removes: without its length or Host, the machine would read the
# body as the next request (a smuggling trick) or the request as addressed to no one.
_CONNECTION_KEPT = frozenset({b"content-length", b"host"})

LAST_CHUNK = b"0\r\n\r\n"


class Dropped:
    """Names not to relay: a fixed set, plus whatever a `Connection` header names (hop-by-hop too, RFC 9110
    §7.6.1). Header names are compared lowercased, and only those of a length in the set are lowercased."""

    __slots__ = ("lengths", "names")

    def __init__(self, names: frozenset[bytes]) -> None:
        self.names = names
        self.lengths = frozenset(len(name) for name in names)

    def adding(self, connection_value: bytes) -> Dropped:
        """These names plus the options a `Connection` header value lists, other than its own keywords."""
        if connection_value.lower() in _CONNECTION_OPTIONS:
            return self  # the common case, `Connection: keep-alive` or `close`
        named = {token.strip().lower() for token in connection_value.split(b",")}
        named -= _CONNECTION_OPTIONS | _CONNECTION_KEPT | {b""}
        return Dropped(self.names | named) if named - self.names else self


REQUEST_DROPPED = Dropped(REQUEST_DROP)
RESPONSE_DROPPED = Dropped(RESPONSE_DROP)


def request_id(region: bytes) -> bytes:
    """A unique id per request, shaped like Fly's (`<id>-<region>`): a random prefix per process, then a count.
    Concatenated rather than formatted: this runs for every request."""
    return _REQUEST_ID_PREFIX + str(next(_request_ids)).encode() + b"-" + region


def forwarded_lines(client_ip: str, scheme: str, edge_port: int) -> bytes:
    """The edge's own header lines that depend only on the connection."""
    return f"fly-client-ip: {client_ip}\r\nx-forwarded-proto: {scheme}\r\nx-forwarded-port: {edge_port}\r\n".encode()


def header_lines(parts: list[bytes], headers: Headers, dropped: Dropped) -> None:
    """Append `name: value` lines of the headers `dropped` keeps to `parts`."""
    lengths, names = dropped.lengths, dropped.names
    for name, value in headers:
        if len(name) not in lengths or name.lower() not in names:
            parts += (name, b": ", value, b"\r\n")


def response_head(
    status: int, reason: bytes, headers: Headers, dropped: Dropped, chunked: bool, close: bool, extra: bytes
) -> list[bytes]:
    """The head relayed to the client, as pieces to join; the edge decides framing and persistence for its side."""
    parts = [b"HTTP/1.1 %d " % status, reason or _REASONS.get(status, b"Status"), b"\r\n"]
    header_lines(parts, headers, dropped)
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    parts += (extra, b"\r\n")
    return parts


def upgrade_head(status: int, reason: bytes, headers: Headers) -> bytes:
    """A 1xx response relayed as is: a 101's Connection and Upgrade headers are the handshake."""
    lines = [b"HTTP/1.1 %d " % status, reason or b"Switching Protocols", b"\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def error_response(status: int, message: str, *, close: bool = False, location: str | None = None) -> bytes:
    """A short text/plain reply from the edge itself (404, 502, 503…)."""
    body = (message.rstrip("\n") + "\n").encode()
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))]
    head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body))
    if location is not None:
        head.append(b"location: %s\r\n" % location.encode())
    if close:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def chunk_size(data: bytes) -> bytes:
    """The size line that opens a chunk; the data and a CRLF follow."""
    return b"%x\r\n" % len(data)


def last_chunk(trailers: Headers | None) -> bytes:
    """The end of a chunked body, with the trailer fields that may be relayed."""
    if not trailers:
        return LAST_CHUNK
    parts = [b"0\r\n"]
    header_lines(parts, trailers, TRAILER_DROPPED)
    parts.append(b"\r\n")
    return b"".join(parts)


TRAILER_DROPPED = Dropped(TRAILER_DROP)
