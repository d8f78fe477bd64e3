"""HTTP/1.1 heads the edge writes: the request it forwards, the response it relays, its own error replies."""

from __future__ import annotations

import itertools
import os

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the edge sets itself; dropped from what is forwarded.
_REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"fly-client-ip",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"fly-request-id",
        b"x-forwarded-for",
    }
)
_RESPONSE_DROP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"trailer", b"upgrade"}
)
_REASONS = {
    301: b"Moved Permanently",
    400: b"Bad Request",
    404: b"Not Found",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}
_request_ids = itertools.count(1)
_REQUEST_ID_PREFIX = os.urandom(6).hex()

Headers = list[tuple[bytes, bytes]]


_CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})


def _dropped(headers: Headers, always: frozenset[bytes]) -> frozenset[bytes]:
    """`always`, plus the headers a `Connection` header names: they are hop-by-hop too (RFC 9110 §7.6.1)."""
    listed = [
        token.strip().lower() for name, value in headers if name.lower() == b"connection" for token in value.split(b",")
    ]
    named = {token for token in listed if token and token not in _CONNECTION_OPTIONS}
    return always | named if named else always


def request_id(region: str) -> bytes:
    """A unique id per request, shaped like Fly's (`<hex>-<region>`), cheap enough for every request."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_ids):010x}-{region}".encode()


def request_head(
    method: bytes,
    target: bytes,
    headers: Headers,
    forwarded: bytes,
    forwarded_for: bytes | None,
    chunked: bool,
    upgrade: bytes | None,
) -> bytes:
    """The head sent to the machine. `forwarded` holds the edge's own header lines, already encoded."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    drop = _dropped(headers, _REQUEST_DROP)
    for name, value in headers:
        if name.lower() not in drop:
            lines += (name, b": ", value, b"\r\n")
    lines.append(forwarded)
    if forwarded_for is not None:
        lines += (b"x-forwarded-for: ", forwarded_for, b"\r\n")
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    if upgrade is not None:
        lines += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def response_head(status: int, reason: bytes, headers: Headers, chunked: bool, close: bool, extra: bytes) -> bytes:
    """The head relayed to the client; the edge decides framing and persistence for its own side."""
    lines = [b"HTTP/1.1 %d " % status, reason or _REASONS.get(status, b"Status"), b"\r\n"]
    drop = _dropped(headers, _RESPONSE_DROP)
    for name, value in headers:
        if name.lower() not in drop:
            lines += (name, b": ", value, b"\r\n")
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    if close:
        lines.append(b"connection: close\r\n")
    lines += (extra, b"\r\n")
    return b"".join(lines)


def upgrade_head(status: int, reason: bytes, headers: Headers) -> bytes:
    """A 101 response relayed as is: its Connection and Upgrade headers are the handshake."""
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


LAST_CHUNK = b"0\r\n\r\n"
