"""Serve a stdio MCP program over HTTP: `fly mcp wrap`'s wire protocol plus the Streamable HTTP transport.

Run as `python3 wrap.py [--port 8080] [--bearer-token T | --user U --password P] [--private] -- CMD ARGS…`.
This one file is copied into machine images that carry neither aerodrome nor any pip package, so it uses the
standard library only and imports nothing from aerodrome; `aerodrome mcp wrap` calls `main()` here.

Why asyncio streams rather than `http.server` with threads: a wrapped server holds long-lived event streams (the
passthru listener, one GET stream per Streamable HTTP session) next to child-process pipes. One event loop
multiplexes all of them without a thread per stream, notices a client hanging up by reading EOF, and pipes the
children through non-blocking asyncio subprocesses. The HTTP/1.1 subset needed here (Content-Length and chunked
bodies, keep-alive, chunked streaming replies, `Expect: 100-continue`) is small.

Two protocols share the port; a request goes the Streamable HTTP way when
  * it carries an `Mcp-Session-Id` header (an unknown id gets 404, so the client initializes again), or
  * it is a POST whose `Accept` includes `text/event-stream`, whose `User-Agent` is not `mcp-bridge-client` (the
    passthru client `fly mcp proxy` and `aerodrome mcp proxy` send that, with the same Accept), and whose body is
    one JSON-RPC `initialize` request: that opens a session served by its own child process.
Everything else is Fly's passthru protocol to the one child started at launch: GET is the single listener that
receives every stdout line verbatim, POST feeds the body to stdin and answers 202. A plain
`curl -X POST -H "Content-Type: application/json" -d '<three lines>'` sends `Accept: */*`, so it stays passthru.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WrapConfig", "WrapServer", "main", "parse_args", "serve"]

log = logging.getLogger("aerodrome.mcp.wrap")

LINE_LIMIT = 10 * 1024 * 1024  # longest stdout line read from a program, as in flyctl
BODY_LIMIT = 64 * 1024 * 1024  # largest request body accepted
BRIDGE_USER_AGENT = "mcp-bridge-client"
KEEPALIVE_SECONDS = 25.0  # SSE comment on idle session streams, so intermediaries keep them open
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
REASONS |= {405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}
REASONS |= {503: "Service Unavailable"}


@dataclass(frozen=True)
class WrapConfig:
    """Settings of one wrap server; `command` is the stdio MCP program and its arguments."""

    command: Sequence[str]
    port: int = 8080
    host: str = ""  # "" = every interface, IPv6 and IPv4 on one dual-stack socket where the host has IPv6
    bearer_token: str = ""
    user: str = ""
    password: str = ""
    private: bool = False
    session_timeout: float = 300.0
    max_sessions: int = 64
    spare_sessions: int = 1


# --- HTTP/1.1 ---------------------------------------------------------------------------------------------


class HttpError(Exception):
    """A request that cannot be read; answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One parsed request; header names are lower-case."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str:
        """Return a header's value, or "" when absent."""
        return self.headers.get(name, "")

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this one."""
        connection = self.header("connection").lower()
        return self.version == "HTTP/1.1" and "close" not in connection


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """Read a request head and its body; None on a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "Incomplete request") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise HttpError(400, "Request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(400, "Malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    request = Request(parts[0].upper(), parts[1], parts[2], headers)
    if "100-continue" in request.header("expect").lower():
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.body = await read_body(reader, headers)
    return request


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """Read a Content-Length or chunked body, refusing more than BODY_LIMIT bytes."""
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                if sum(map(len, chunks)) + size > BODY_LIMIT:
                    raise HttpError(413, "Request body too large")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        length = int(headers.get("content-length", "0") or "0")
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise HttpError(400, "Malformed request body") from exc
    if length > BODY_LIMIT:
        raise HttpError(413, "Request body too large")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise HttpError(400, "Incomplete request body") from exc


def response_head(status: int, headers: dict[str, str]) -> bytes:
    """Serialise a status line and headers."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def respond(writer: asyncio.StreamWriter, status: int, body: bytes = b"", content_type: str = "") -> None:
    """Write a whole response with a Content-Length."""
    headers = {"Content-Length": str(len(body))}
    if content_type:
        headers = {"Content-Type": content_type, **headers}
    writer.write(response_head(status, headers) + body)
    await writer.drain()


async def respond_text(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    """Answer as Go's `http.Error` does: the message and a newline, as plain text."""
    await respond(writer, status, (message + "\n").encode(), "text/plain; charset=utf-8")


class ChunkedStream:
    """A streaming response body: chunked on HTTP/1.1, raw bytes until close on HTTP/1.0."""

    def __init__(self, writer: asyncio.StreamWriter, chunked: bool) -> None:
        self.writer = writer
        self.chunked = chunked

    async def start(self, headers: dict[str, str]) -> None:
        """Send the 200 head."""
        extra = {"Transfer-Encoding": "chunked"} if self.chunked else {}
        self.writer.write(response_head(200, {**headers, **extra}))
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        """Send and flush one piece of the body."""
        self.writer.write(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)
        await self.writer.drain()

    async def finish(self) -> None:
        """End the body, leaving the connection usable for the next request."""
        if self.chunked:
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()


async def wait_for_hangup(reader: asyncio.StreamReader) -> None:
    """Return when the client closes its side of a streaming connection."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


# --- child programs ---------------------------------------------------------------------------------------


class Program:
    """One running copy of the wrapped stdio program."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stdin_lock = asyncio.Lock()  # one request body at a time, so messages never interleave

    @classmethod
    async def spawn(cls, command: Sequence[str]) -> Program:
        """Start the program with piped stdin/stdout; its stderr is ours."""
        # A process group of its own, so stopping reaches grandchildren too (npx → node) and a terminal's
        # Ctrl-C reaches only wrap, which then stops its programs in order.
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            start_new_session=True,
        )
        log.info("started %s (pid %d)", command[0], process.pid)
        return cls(process)

    async def write(self, data: bytes) -> None:
        """Write bytes to stdin, ending them with a newline; ConnectionError once the program has gone."""
        assert self.process.stdin is not None
        if self.process.returncode is not None or self.process.stdin.is_closing():
            raise ConnectionError("the program has exited")
        if not data:
            return  # an empty POST (a proxy probing for the server) feeds the program nothing
        async with self.stdin_lock:
            self.process.stdin.write(data if data.endswith(b"\n") else data + b"\n")
            await self.process.stdin.drain()

    async def pump(self, deliver: Callable[[bytes], Awaitable[None]]) -> None:
        """Hand each stdout line (without its newline) to `deliver` until the program closes stdout."""
        assert self.process.stdout is not None
        while True:
            try:
                line = await self.process.stdout.readline()
            except ValueError:
                log.warning("dropped a stdout line longer than %d bytes", LINE_LIMIT)
                continue
            if not line:
                break
            await deliver(line.rstrip(b"\r\n"))
        log.info("program output stream closed (pid %d)", self.process.pid)
        if self.process.stdin is not None:
            self.process.stdin.close()  # as flyctl does: later writes fail, so POSTs get 500 rather than 202

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def stop(self) -> None:
        """Close stdin, then terminate and finally kill the program, reaping it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 3.0)
        except TimeoutError:
            self._signal_group(signal.SIGKILL)
            await self.process.wait()
        self._signal_group(signal.SIGKILL)  # whatever the program left behind in its group
        if self.process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                await self.process.stdin.wait_closed()


# --- Fly's passthru protocol ------------------------------------------------------------------------------


class Passthru:
    """The program started at launch, with at most one GET listener receiving its stdout."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.listener: ChunkedStream | None = None

    async def deliver(self, line: bytes) -> None:
        """Forward a stdout line to the listener, or drop it when none is attached."""
        listener = self.listener
        if listener is None:
            log.info("No client waiting")
            return
        try:
            await listener.send(line + b"\n")
        except ConnectionError:
            log.info("listener went away; line dropped")

    async def listen(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve a GET as the single listener until the client disconnects."""
        if self.listener is not None:
            await respond_text(writer, 409, "Another client is already connected")
            return
        stream = ChunkedStream(writer, request.version == "HTTP/1.1")
        self.listener = stream
        try:
            headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "keep-alive"}
            await stream.start(headers)
            await wait_for_hangup(reader)
        finally:
            self.listener = None

    async def post(self, request: Request, writer: asyncio.StreamWriter) -> None:
        """Feed a POST body to the program's stdin and answer 202."""
        try:
            await self.program.write(request.body)
        except (ConnectionError, RuntimeError) as exc:
            await respond_text(writer, 500, f"Error writing to program: {exc}")
            return
        await respond(writer, 202)


# --- Streamable HTTP sessions -----------------------------------------------------------------------------


def message_key(message_id: object) -> str:
    """A dictionary key for a JSON-RPC id that keeps 1 and "1" apart."""
    return json.dumps(message_id)


def sse_event(line: bytes) -> bytes:
    """Frame one JSON-RPC message as a server-sent event."""
    return b"event: message\ndata: " + line + b"\n\n"


def json_error(message: str, code: int = -32600) -> bytes:
    """A JSON-RPC error object without an id, for requests refused before they reach a program."""
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


@dataclass
class Exchange:
    """A POST waiting for the responses to its requests; SSE exchanges also carry the program's other messages."""

    waiting: set[str]
    sse: bool
    queue: asyncio.Queue[tuple[bytes, str | None] | None] = field(default_factory=asyncio.Queue)


class Session:
    """One Streamable HTTP client, served by its own copy of the program."""

    def __init__(self, session_id: str, program: Program) -> None:
        self.id = session_id
        self.program = program
        self.exchanges: list[Exchange] = []
        self.by_request: dict[str, Exchange] = {}
        self.stream: ChunkedStream | None = None
        self.backlog: deque[bytes] = deque(maxlen=1000)  # messages for a GET stream not yet attached
        self.last_used = time.monotonic()
        self.closed = asyncio.Event()

    @property
    def idle(self) -> bool:
        """Whether no request and no GET stream is using the session."""
        return not self.exchanges and self.stream is None

    async def deliver(self, line: bytes) -> None:
        """Route a stdout line: a response to the POST that asked, anything else to the newest SSE POST or GET."""
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("session %s: dropped a stdout line that is not JSON", self.id)
            return
        for item in message if isinstance(message, list) else [message]:
            data = line if not isinstance(message, list) else json.dumps(item).encode()
            await self._route(item, data)

    async def _route(self, message: Any, data: bytes) -> None:
        if isinstance(message, dict) and "method" not in message and "id" in message:
            key = message_key(message["id"])
            exchange = self.by_request.pop(key, None)
            if exchange is not None:
                exchange.queue.put_nowait((data, key))
                return
        streaming = [exchange for exchange in self.exchanges if exchange.sse]
        if streaming:
            streaming[-1].queue.put_nowait((data, None))
        elif self.stream is not None:
            try:
                await self.stream.send(sse_event(data))
            except ConnectionError:
                self.backlog.append(data)
        else:
            self.backlog.append(data)

    async def exchange(self, request: Request, writer: asyncio.StreamWriter, messages: list[Any]) -> None:
        """Send a POST's messages to the program and answer with its responses (SSE or JSON), or 202."""
        keys = [message_key(m["id"]) for m in messages if isinstance(m, dict) and "method" in m and "id" in m]
        if not keys:
            await self.program.write(self.as_lines(request.body, messages))
            await respond(writer, 202, b"", "")
            return
        exchange = Exchange(set(keys), "text/event-stream" in request.header("accept"))
        self.exchanges.append(exchange)
        self.by_request.update(dict.fromkeys(keys, exchange))
        try:
            await self.program.write(self.as_lines(request.body, messages))
            if exchange.sse:
                await self._stream_replies(exchange, writer, request.version == "HTTP/1.1")
            else:
                await self._json_replies(exchange, writer, batch=isinstance(json.loads(request.body), list))
        finally:
            self.exchanges.remove(exchange)
            for key in keys:
                self.by_request.pop(key, None)
            self.last_used = time.monotonic()

    @staticmethod
    def as_lines(body: bytes, messages: list[Any]) -> bytes:
        """A batch goes to the program one message per line: stdio servers after 2025-03-26 reject batches."""
        if not body.lstrip().startswith(b"["):
            return body
        return b"\n".join(json.dumps(message).encode() for message in messages)

    async def _stream_replies(self, exchange: Exchange, writer: asyncio.StreamWriter, chunked: bool) -> None:
        stream = ChunkedStream(writer, chunked)
        await stream.start(
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Mcp-Session-Id": self.id}
        )
        while exchange.waiting and (item := await exchange.queue.get()) is not None:
            data, key = item
            await stream.send(sse_event(data))
            exchange.waiting.discard(key or "")
        await stream.finish()

    async def _json_replies(self, exchange: Exchange, writer: asyncio.StreamWriter, batch: bool) -> None:
        replies: list[bytes] = []
        while exchange.waiting and (item := await exchange.queue.get()) is not None:
            data, key = item
            if key is not None:
                replies.append(data)
                exchange.waiting.discard(key)
        if exchange.waiting:
            await respond(writer, 500, json_error("The MCP program exited", -32603), "application/json")
            return
        body = b"[" + b",".join(replies) + b"]" if batch else replies[0]
        writer.write(
            response_head(
                200, {"Content-Type": "application/json", "Mcp-Session-Id": self.id, "Content-Length": str(len(body))}
            )
            + body
        )
        await writer.drain()

    async def listen(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve the session's GET stream of server-initiated messages until hangup or session end."""
        if self.stream is not None:
            await respond_text(writer, 409, "Another stream is already open for this session")
            return
        stream = ChunkedStream(writer, request.version == "HTTP/1.1")
        await stream.start(
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Mcp-Session-Id": self.id}
        )
        self.stream = stream
        hangup = asyncio.ensure_future(wait_for_hangup(reader))
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            while self.backlog:
                await stream.send(sse_event(self.backlog.popleft()))
            while not (await asyncio.wait({hangup, closed}, timeout=KEEPALIVE_SECONDS))[0]:
                await stream.send(b": keepalive\n\n")
            if closed.done():
                await stream.finish()
        except ConnectionError:
            pass
        finally:
            self.stream = None
            self.last_used = time.monotonic()
            hangup.cancel()
            closed.cancel()

    def end(self) -> None:
        """Release every waiting POST and GET once the program's output has ended."""
        self.closed.set()
        for exchange in self.exchanges:
            exchange.queue.put_nowait(None)


class Sessions:
    """The live Streamable HTTP sessions, a few warm spare programs, and the reaping of idle sessions."""

    def __init__(self, config: WrapConfig) -> None:
        self.config = config
        self.sessions: dict[str, Session] = {}
        self.spares: list[Program] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_use = False  # spares are kept only once Streamable HTTP has been used
        self.topping_up = False

    def get(self, session_id: str) -> Session | None:
        """Find a live session."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.last_used = time.monotonic()
        return session

    async def open(self) -> Session:
        """Start a session on a spare program (or a new one) and keep the spares topped up."""
        if len(self.sessions) >= self.config.max_sessions:
            raise HttpError(503, "Too many sessions")
        self.in_use = True
        program = await self._take_spare() or await Program.spawn(self.config.command)
        session = Session(secrets.token_hex(16), program)
        self.sessions[session.id] = session
        self._start(self._run(session))
        self._start(self._top_up())
        log.info("session %s opened (pid %d)", session.id, program.process.pid)
        return session

    async def _take_spare(self) -> Program | None:
        while self.spares:
            program = self.spares.pop()
            if program.process.returncode is None:
                return program
            await program.stop()
        return None

    async def _top_up(self) -> None:
        if self.topping_up:
            return
        self.topping_up = True
        try:
            while len(self.spares) < self.config.spare_sessions:
                self.spares.append(await Program.spawn(self.config.command))
        finally:
            self.topping_up = False

    async def _run(self, session: Session) -> None:
        await session.program.pump(session.deliver)
        session.end()
        await self.close(session)

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, session: Session) -> None:
        """End a session and its program."""
        if self.sessions.pop(session.id, None) is not None:
            log.info("session %s closed", session.id)
        session.end()
        await session.program.stop()

    async def reap(self) -> None:
        """Close sessions idle for longer than the timeout, checking a few times per timeout."""
        while True:
            await asyncio.sleep(max(0.05, min(self.config.session_timeout / 4, 30.0)))
            deadline = time.monotonic() - self.config.session_timeout
            for session in [s for s in self.sessions.values() if s.idle and s.last_used < deadline]:
                log.info("session %s idle; reaping", session.id)
                await self.close(session)

    async def close_all(self) -> None:
        """Stop every session and spare program; the session tasks end as their programs' output ends."""
        for session in list(self.sessions.values()):
            await self.close(session)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5.0)
        for program in self.spares:
            await program.stop()
        self.spares.clear()


# --- the server -------------------------------------------------------------------------------------------


def opens_session(request: Request) -> bool:
    """Whether a POST without a session id is a Streamable HTTP client's initialize (see the module docstring)."""
    if "text/event-stream" not in request.header("accept"):
        return False
    if request.header("user-agent").startswith(BRIDGE_USER_AGENT):
        return False
    try:
        message = json.loads(request.body)
    except ValueError:
        return False  # several newline-separated messages, or not JSON: passthru
    return isinstance(message, dict) and message.get("method") == "initialize" and "id" in message


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket: one dual-stack socket for every interface, as Go's `:port` does."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server((host or "0.0.0.0", port))


class WrapServer:
    """The HTTP server: access checks, then the passthru program or a Streamable HTTP session."""

    def __init__(self, config: WrapConfig) -> None:
        self.config = config
        self.sessions = Sessions(config)
        self.passthru: Passthru | None = None
        self.server: asyncio.Server | None = None
        self.background: list[asyncio.Task[None]] = []
        self.connections: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start the passthru program, then listen."""
        program = await Program.spawn(self.config.command)
        self.passthru = Passthru(program)
        self.background.append(asyncio.ensure_future(program.pump(self.passthru.deliver)))
        self.background.append(asyncio.ensure_future(self.sessions.reap()))
        sock = listen_socket(self.config.host, self.config.port)
        self.server = await asyncio.start_server(self.handle_connection, sock=sock, limit=LINE_LIMIT)
        log.info("listening on port %d, forwarding to stdio MCP: %s", self.port, " ".join(self.config.command))

    async def close(self) -> None:
        """Stop listening, end every connection, and stop every program."""
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.close()  # streaming connections would otherwise outlive the server
        await self.sessions.close_all()
        if self.passthru is not None:
            await self.passthru.program.stop()
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one connection until the client closes it or a stream ends it."""
        self.connections.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets TCP_NODELAY only when the listening socket's proto is IPPROTO_TCP, which
            # socket.create_server's is not; without it an event written after a reply head waits for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while (request := await read_request(reader, writer)) is not None:
                if not await self.dispatch(request, reader, writer) or not request.keep_alive:
                    break
        except HttpError as exc:
            with contextlib.suppress(ConnectionError):
                await respond_text(writer, exc.status, str(exc))
        except ConnectionError:
            pass
        finally:
            self.connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def refusal(self, request: Request) -> tuple[int, str] | None:
        """Check `--private`, then the bearer token or basic credentials, in flyctl's order."""
        client_ip = request.header("fly-client-ip")
        if self.config.private and client_ip and not client_ip.startswith("fdaa:"):
            return 403, "Forbidden"
        authorization = request.header("authorization")
        if self.config.bearer_token:
            scheme, _, token = authorization.partition(" ")
            if scheme != "Bearer" or not secrets.compare_digest(token.strip(), self.config.bearer_token):
                return 401, "Unauthorized"
        elif self.config.user and not self.basic_auth_ok(authorization):
            return 401, "Unauthorized"
        return None

    def basic_auth_ok(self, authorization: str) -> bool:
        """Compare HTTP Basic credentials with the configured user and password."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = f"{self.config.user}:{self.config.password}"
        return bool(sep) and secrets.compare_digest(f"{user}:{password}".encode(), expected.encode())

    async def dispatch(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must not be reused."""
        assert self.passthru is not None
        if (refused := self.refusal(request)) is not None:
            await respond_text(writer, *refused)
            return True
        if session_id := request.header("mcp-session-id"):
            return await self.serve_session(session_id, request, reader, writer)
        if request.method == "GET":
            accept = request.header("accept")
            if "html" in accept and "json" not in accept:
                await respond(writer, 200, b"MCP Server", "text/plain; charset=utf-8")
                return True
            await self.passthru.listen(request, reader, writer)
            return False
        if request.method == "POST" and opens_session(request):
            session = await self.sessions.open()
            await session.exchange(request, writer, [json.loads(request.body)])
            return True
        if request.method == "POST":
            await self.passthru.post(request, writer)
            return True
        await respond_text(writer, 405, "Method not allowed")
        return True

    async def serve_session(
        self, session_id: str, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer a Streamable HTTP request within an existing session."""
        session = self.sessions.get(session_id)
        if session is None:
            await respond(writer, 404, json_error("Session not found", -32001), "application/json")
            return True
        if request.method == "GET":
            await session.listen(request, reader, writer)
            return False
        if request.method == "DELETE":
            await self.sessions.close(session)
            await respond(writer, 200)
            return True
        if request.method != "POST":
            await respond_text(writer, 405, "Method not allowed")
            return True
        try:
            parsed = json.loads(request.body)
        except ValueError:
            await respond(writer, 400, json_error("Parse error", -32700), "application/json")
            return True
        await session.exchange(request, writer, parsed if isinstance(parsed, list) else [parsed])
        return True


# --- command line -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> WrapConfig:
    """Parse `[options] -- CMD ARGS…`; FLY_MCP_* environment variables take precedence over the flags."""
    argv = list(argv)
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="wrap", description="Serve a stdio MCP program over HTTP.")
    parser.add_argument("-p", "--port", type=int, default=8080, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="", help="address to bind (default: every interface)")
    parser.add_argument("-m", "--mcp", default="", help="path of the stdio MCP program (else the command)")
    parser.add_argument("--bearer-token", default="", help="require this bearer token")
    parser.add_argument("--user", default="", help="require HTTP basic auth with this user")
    parser.add_argument("--password", default="", help="the basic auth password")
    parser.add_argument("--private", action="store_true", help="refuse requests from outside the private network")
    parser.add_argument("--session-timeout", type=float, default=300.0, help="seconds before an idle session ends")
    parser.add_argument("--max-sessions", type=int, default=64, help="most concurrent Streamable HTTP sessions")
    parser.add_argument("--spare-sessions", type=int, default=1, help="warm programs kept for new sessions")
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(options)
    command = ([args.mcp] if args.mcp else []) + (command or args.rest)
    if not command:
        parser.error("no command specified: wrap [options] -- CMD ARGS…")
    return WrapConfig(
        command=command,
        port=args.port,
        host=args.host,
        bearer_token=os.environ.get("FLY_MCP_BEARER_TOKEN") or args.bearer_token,
        user=os.environ.get("FLY_MCP_USER") or args.user,
        password=os.environ.get("FLY_MCP_PASSWORD") or args.password,
        private=args.private or "FLY_MCP_PRIVATE" in os.environ,
        session_timeout=args.session_timeout,
        max_sessions=args.max_sessions,
        spare_sessions=args.spare_sessions,
    )


async def serve(config: WrapConfig) -> None:
    """Run a wrap server until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = WrapServer(config)
    await server.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python3 wrap.py` and `aerodrome mcp wrap`."""
    config = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s wrap: %(message)s")
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
