"""`aerodrome mcp proxy --stream`: relay stdio JSON-RPC to a Streamable HTTP MCP endpoint, message for message.

flyctl's `--stream` mirrors the remote's tools, prompts and resources into a local server of its own; relaying the
messages verbatim instead keeps every method, notification and server request working, including ones the bridge
has never heard of. The `initialize` request is sent alone, since its reply carries the `Mcp-Session-Id` every later
request needs; after it, each message is POSTed concurrently (a long tool call must not hold up a cancellation or a
ping), and a GET stream carries the messages the server starts on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from aerodrome.mcp.bridge import BridgeOptions, auth_headers, stdin_lines, write_stdout

__all__ = ["Relay", "run_relay"]

ACCEPT = "application/json, text/event-stream"


def error_reply(request_id: object, message: str) -> bytes:
    """A JSON-RPC error response line for a request the server did not answer."""
    reply = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": message}}
    return json.dumps(reply).encode() + b"\n"


async def events(response: httpx.Response) -> AsyncIterator[str]:
    """Yield the data of each server-sent event: one JSON-RPC message each."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield "\n".join(data)
            data.clear()


class Relay:
    """One Streamable HTTP session on behalf of the stdio client."""

    def __init__(self, options: BridgeOptions, client: httpx.AsyncClient) -> None:
        self.options = options
        self.client = client
        self.session_id = ""
        self.protocol_version = ""
        self.tasks: set[asyncio.Task[None]] = set()
        self.listener: asyncio.Task[None] | None = None

    def headers(self) -> dict[str, str]:
        """Auth plus the session's id and negotiated protocol version, once known."""
        headers = auth_headers(self.options)
        headers["User-Agent"] = "aerodrome-mcp-relay"  # not the passthru agent: wrap must see a session client
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    async def send(self, line: bytes) -> None:
        """POST one message and copy the reply, JSON or an event stream, to stdout."""
        try:
            message: Any = json.loads(line)
        except ValueError:
            write_stdout(error_reply(None, "Parse error"))
            return
        request_id = message.get("id") if isinstance(message, dict) and "method" in message else None
        headers = {**self.headers(), "Content-Type": "application/json", "Accept": ACCEPT}
        try:
            async with self.client.stream("POST", self.options.url, content=line, headers=headers) as response:
                await self.copy_reply(response, message, request_id)
        except httpx.HTTPError as exc:
            if request_id is not None:
                write_stdout(error_reply(request_id, f"Failed to send to server: {exc!r}"))

    async def copy_reply(self, response: httpx.Response, message: Any, request_id: object) -> None:
        """Handle one POST's response: remember the session, relay the body, turn failures into errors."""
        if response.status_code >= 400:
            body = (await response.aread()).decode(errors="replace")
            if request_id is not None:
                write_stdout(error_reply(request_id, f"Server returned {response.status_code}: {body.strip()}"))
            return
        if session_id := response.headers.get("mcp-session-id"):
            self.session_id = session_id
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            async for data in events(response):
                self.note_version(message, data)
                write_stdout(data.encode() + b"\n")
        elif content_type.startswith("application/json"):
            body = (await response.aread()).decode()
            self.note_version(message, body)
            write_stdout(body.strip().encode() + b"\n")
        if isinstance(message, dict) and message.get("method") == "initialize" and self.listener is None:
            self.listener = asyncio.create_task(self.listen())

    def note_version(self, message: Any, body: str) -> None:
        """Remember the protocol version an initialize reply settled on."""
        if isinstance(message, dict) and message.get("method") == "initialize":
            with contextlib.suppress(ValueError, AttributeError):
                self.protocol_version = json.loads(body)["result"]["protocolVersion"]

    async def listen(self) -> None:
        """Copy the session's GET stream to stdout; a server without one answers 405."""
        headers = {**self.headers(), "Accept": "text/event-stream"}
        with contextlib.suppress(httpx.HTTPError):
            async with self.client.stream("GET", self.options.url, headers=headers) as response:
                if response.status_code == 200:
                    async for data in events(response):
                        write_stdout(data.encode() + b"\n")

    def spawn(self, line: bytes) -> None:
        """Send a message without waiting for its reply."""
        task = asyncio.create_task(self.send(line))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Let the POSTs in flight finish, then end the session."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener
        if self.session_id:
            with contextlib.suppress(httpx.HTTPError):
                await self.client.delete(self.options.url, headers=self.headers())


async def run_relay(options: BridgeOptions) -> None:
    """Relay stdio to a Streamable HTTP endpoint until stdin ends."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client:
        relay = Relay(options, client)
        try:
            async for line in stdin_lines():
                if not line.strip():
                    continue
                if relay.session_id:
                    relay.spawn(line.strip())
                else:
                    await relay.send(line.strip())  # initialize: its reply names the session
        finally:
            await relay.close()
