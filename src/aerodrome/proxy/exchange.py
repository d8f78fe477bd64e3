"""One request as the client sent it: the head fields the edge acts on, and body bytes held until a machine is ready."""

from __future__ import annotations

from aerodrome.proxy import messages


class PendingRequest:
    """A parsed request head, the flags derived from it, and body bytes not yet forwarded."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_request_id",
        "chunked",
        "complete",
        "content_length",
        "force_instance",
        "headers",
        "host",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "x_forwarded_for",
    )

    def __init__(self) -> None:
        self.method = b"GET"
        self.target = b""
        self.headers: messages.Headers = []
        self.host: str | None = None  # the Host header, lowercased, port included
        self.force_instance: str | None = None  # Fly-Force-Instance-Id
        self.x_forwarded_for: bytes | None = None
        self.upgrade: bytes | None = None  # the Upgrade header's value
        self.chunked = False
        self.content_length = 0
        self.keep_alive = True
        self.complete = False
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._request_id: bytes | None = None

    def add_header(self, name: bytes, value: bytes) -> None:
        """Keep a header; note the few the edge itself acts on."""
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"host":
            self.host = value.decode("latin-1").lower()
        elif lowered == b"fly-force-instance-id":
            self.force_instance = value.decode("latin-1").strip() or None
        elif lowered == b"x-forwarded-for":
            self.x_forwarded_for = value if self.x_forwarded_for is None else self.x_forwarded_for + b", " + value
        elif lowered == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()
        elif lowered == b"content-length":
            self.content_length = int(value) if value.strip().isdigit() else 0
        elif lowered == b"upgrade":
            self.upgrade = value

    @property
    def host_name(self) -> str:
        """The Host without its port."""
        host = self.host or ""
        if host.startswith("["):
            return host.partition("]")[0] + "]"
        return host.partition(":")[0]

    @property
    def replayable(self) -> bool:
        """Safe to send again on another connection: no body, nothing of it was consumed."""
        return not self.chunked and self.content_length == 0 and self.upgrade is None

    def request_id(self, region: str) -> bytes:
        if self._request_id is None:
            self._request_id = messages.request_id(region)
        return self._request_id

    def forwarded_for(self, client_ip: str) -> bytes:
        """X-Forwarded-For with the client appended to what earlier proxies said."""
        if self.x_forwarded_for is None:
            return client_ip.encode()
        return self.x_forwarded_for + b", " + client_ip.encode()

    def buffer(self, data: bytes) -> int:
        """Hold body bytes until a machine is ready; returns how many are held."""
        self._buffer.append(data)
        self._buffered += len(data)
        return self._buffered

    def take_buffer(self) -> bytes:
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        return data
