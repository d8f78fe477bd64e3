"""Waiting for a machine (or a floor) to answer HTTP, measured from the caller's side of the socket."""

from __future__ import annotations

import socket
import time
from typing import Protocol

import httpx

POLL_SECONDS = 0.0005
ANSWER_TIMEOUT = 30.0


class Server(Protocol):
    """The daemon under test: a fresh `aerodrome serve` on free loopback ports."""

    api_port: int
    edge_http_port: int
    token: str

    @property
    def pid(self) -> int: ...

    def client(self) -> httpx.Client: ...

    def push_image(self, tag: str, marker: str = "") -> str: ...


def http_answer(host: str, port: int, timeout: float = 1.0) -> bytes:
    """One `GET /` over a fresh connection, the reply whole (the server closes it: HTTP/1.0); b"" on no answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
    except OSError:
        return b""


def wait_answer(host: str, port: int, marker: bytes = b"", timeout: float = ANSWER_TIMEOUT) -> None:
    """Until `GET /` answers 200 with `marker` in its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = http_answer(host, port)
        if reply.startswith(b"HTTP/1.") and b" 200 " in reply[:16] and marker in reply:
            return
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{host}:{port} did not answer {marker!r} within {timeout:g}s")


def delete_app(api: httpx.Client, app: str, timeout: float = 1800) -> bool:
    """Delete an app and wait until it is gone: the API answers 202 and takes machines down in the background,
    and a daemon stopped meanwhile would leave them running. Whether it went within `timeout`."""
    api.delete(f"/v1/apps/{app}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(f"/v1/apps/{app}").status_code == 404:
            return True
        time.sleep(0.2)
    return False


def delete_every_app(api: httpx.Client) -> bool:
    """Take down every app of the daemon (what a failed run left too); whether all of them went."""
    listed = api.get("/v1/apps", params={"org_slug": "personal"})
    names = [str(app["name"]) for app in listed.json().get("apps", [])] if listed.status_code == 200 else []
    return all([delete_app(api, name) for name in names])


def elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000
