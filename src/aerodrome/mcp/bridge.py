"""The local stdio bridge that desktop MCP clients launch: `aerodrome mcp proxy`, like `fly mcp proxy`.

Passthru mode pairs with wrap: one long-lived GET copies the server's output to stdout, and every non-empty stdin
line is POSTed once that GET is connected. Before anything else it POSTs an empty body, backing off while the
connection is refused, because the machine behind the URL may still be starting; the GET reconnects when dropped,
because the machine may have been stopped and started again. `--stream` mode (`relay.py`) speaks the standard
Streamable HTTP transport instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

__all__ = ["BridgeError", "BridgeOptions", "auth_headers", "run_bridge", "run_passthru", "stdin_lines", "write_stdout"]

USER_AGENT = "mcp-bridge-client"  # wrap recognises passthru clients by this, as flyctl's bridge sends it
FIRST_BACKOFF = 0.1
BACKOFF_LIMIT = 60.0


class BridgeError(Exception):
    """The server refused the bridge outright."""


@dataclass(frozen=True)
class BridgeOptions:
    """Where the remote MCP server is and how to reach it."""

    url: str
    bearer_token: str = ""
    user: str = ""
    password: str = ""
    instance: str = ""
    stream: bool = False
    reconnect_interval: float = 10.0  # least time between two GET attempts, as in flyctl


def auth_headers(options: BridgeOptions) -> dict[str, str]:
    """Authorization (bearer, else basic) and instance pinning headers."""
    headers: dict[str, str] = {"User-Agent": USER_AGENT}
    if options.bearer_token:
        headers["Authorization"] = f"Bearer {options.bearer_token}"
    elif options.user:
        credentials = base64.b64encode(f"{options.user}:{options.password}".encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    if options.instance:
        headers["Fly-Force-Instance-Id"] = options.instance
    return headers


def write_stdout(data: bytes) -> None:
    """Write and flush at once: the client on the other end of the pipe is waiting for each message."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


async def stdin_lines() -> AsyncIterator[bytes]:
    """Yield stdin's lines; a pipe is read by the event loop, anything else (a file) through a thread."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    except (ValueError, OSError):
        while line := await asyncio.to_thread(sys.stdin.buffer.readline):
            yield line
        return
    while line := await reader.readline():
        yield line


class Passthru:
    """Fly's passthru client: a GET stream to stdout, stdin lines as POSTs."""

    def __init__(self, options: BridgeOptions, client: httpx.AsyncClient) -> None:
        self.options = options
        self.client = client
        self.headers = auth_headers(options)
        self.connected = asyncio.Event()

    async def post(self, body: bytes) -> httpx.Response:
        """POST one message as flyctl does."""
        headers = {**self.headers, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        return await self.client.post(self.options.url, content=body, headers=headers)

    async def wait_for_server(self) -> None:
        """POST an empty body until the server stops refusing connections, doubling the pause up to a minute."""
        delay = FIRST_BACKOFF
        while True:
            try:
                response = await self.post(b"")
                break
            except httpx.ConnectError:
                if delay >= BACKOFF_LIMIT:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
        if response.status_code != 202:  # wrong credentials, or not a wrap server: give up, as flyctl does
            raise BridgeError(f"server returned {response.status_code}: {response.text.strip()}")

    async def follow(self) -> None:
        """Keep a GET open and copy its body to stdout, reconnecting at most once per reconnect interval."""
        loop = asyncio.get_running_loop()
        headers = {**self.headers, "Accept": "application/json"}
        while True:
            started = loop.time()
            try:
                async with self.client.stream("GET", self.options.url, headers=headers) as response:
                    if response.status_code == 200:
                        self.connected.set()
                        async for chunk in response.aiter_raw():
                            write_stdout(chunk)
                    else:
                        print(f"GET {self.options.url}: status {response.status_code}", file=sys.stderr)
            except httpx.HTTPError as exc:
                print(f"GET {self.options.url}: {exc!r}", file=sys.stderr)
            self.connected.clear()
            await asyncio.sleep(max(0.0, self.options.reconnect_interval - (loop.time() - started)))

    async def send(self, line: bytes) -> None:
        """POST a stdin line once the GET is connected; report a refusal on stdout as flyctl does."""
        await self.connected.wait()
        try:
            response = await self.post(line)
            failure = "" if response.status_code == 202 else f"{response.text} (status {response.status_code})"
        except httpx.HTTPError as exc:
            failure = f"error sending request: {exc!r}"
        if failure:
            message = {"type": "error", "content": f"Failed to send to server: {failure}"}
            write_stdout(json.dumps(message).encode() + b"\n")


async def run_passthru(options: BridgeOptions) -> None:
    """Bridge stdio to a wrap server until stdin ends."""
    timeout = httpx.Timeout(30.0, read=None)  # the GET stream is silent for as long as the server is
    async with httpx.AsyncClient(timeout=timeout) as client:
        bridge = Passthru(options, client)
        await bridge.wait_for_server()
        follower = asyncio.create_task(bridge.follow())
        try:
            async for line in stdin_lines():
                if line.strip():
                    await bridge.send(line if line.endswith(b"\n") else line + b"\n")
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower


async def run_bridge(options: BridgeOptions) -> None:
    """Run the bridge in the mode the options ask for."""
    if options.stream:
        from aerodrome.mcp.relay import run_relay

        await run_relay(options)
    else:
        await run_passthru(options)
