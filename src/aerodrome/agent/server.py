"""`aerodrome agent`'s HTTP server: any `HostAgent`, one route per method, behind a bearer token.

Each request is checked in one order before the agent sees it: its head's size (431), the token (401), the
protocol version (412), the path's ids, the body's size (413) and shape (400). A mutating call runs under its
`Deadline`: one already past is refused without acting, one that runs out is cut off and answered
`WaitTimeoutError` (the caller re-sends it with the same key). Every refusal and failure is an error of the
wire format, never a bare 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import secrets
import ssl
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.agent import routes
from aerodrome.agent.wire import PROTOCOL, PROTOCOL_HEADER, check_protocol, error_body, error_status
from aerodrome.core import (
    AerodromeError,
    Deadline,
    HostAgent,
    InvalidArgumentError,
    NotFoundError,
    RuntimeFailureError,
    UnauthenticatedError,
    WaitTimeoutError,
)

log = logging.getLogger("aerodrome.agent")
KIB, MIB = 1024, 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_HEADERS = {PROTOCOL_HEADER: PROTOCOL}


@dataclass(frozen=True, slots=True)
class AgentLimits:
    body_bytes: int = 16 * MIB  # a spec's `files` (8 MiB as the API takes them) in base64, or an exec's stdin
    head_bytes: int = 64 * KIB
    connections: int = 256  # control planes keep a pool each: a few connections per control plane
    keep_alive: float = 30.0  # longer than the client's pool keeps an idle connection, so it closes first
    event_wait: float = 30.0  # the longest long-poll of `events`
    event_limit: int = 1000


class Refusal(Exception):
    """An error answered with its own HTTP status (a body too large is an InvalidArgumentError, 413)."""

    def __init__(self, status: int, error: AerodromeError) -> None:
        super().__init__(error.message)
        self.status, self.error = status, error


Handler = Callable[["Call"], Awaitable[BaseModel]]


@dataclass(slots=True)
class Call:
    """One authenticated request, for a route's handler: the agent, the path's ids, the query and the body."""

    agent: HostAgent
    request: Request
    body: bytes
    limits: AgentLimits

    def id(self, name: str = "id") -> str:
        value = str(self.request.path_params[name])
        if not _ID.fullmatch(value):
            raise InvalidArgumentError(f"{value[:64]!r} is not an id")
        return value

    def query_int(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        raw = self.request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or len(raw) > 19:
            raise InvalidArgumentError(f"{name}: {raw[:32]!r} is not a whole number")
        value = int(raw)
        if value < low:
            raise InvalidArgumentError(f"{name}: at least {low}")
        return value if high is None else min(value, high)

    def query_float(self, name: str, default: float) -> float:
        raw = self.request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise InvalidArgumentError(f"{name}: {raw[:32]!r} is not seconds") from None
        if not 0 <= value < float("inf"):
            raise InvalidArgumentError(f"{name}: seconds, 0 or more")
        return value

    async def within(self, deadline: Deadline, work: Awaitable[Any]) -> Any:
        """`work` under the caller's deadline; refused without running when it has passed already."""
        remaining = deadline.remaining()
        if remaining <= 0:
            if asyncio.iscoroutine(work):
                work.close()
            raise WaitTimeoutError("the request's deadline had passed when it reached the agent")
        try:
            async with asyncio.timeout(remaining):
                return await work
        except TimeoutError:
            raise WaitTimeoutError("the request's deadline passed while the agent worked on it") from None


def build_agent_app(agent: HostAgent, token: str | None, limits: AgentLimits | None = None) -> Starlette:
    """The agent's HTTP API, for uvicorn; `token` is the bearer credential every request must carry (None over
    mutual TLS, where the client's certificate is the credential, checked in the handshake)."""
    limits = limits or AgentLimits()
    expected = f"Bearer {token}".encode() if token is not None else None

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                check_head(request, limits.head_bytes)
                if expected is not None:
                    authenticate(request, expected)
                check_protocol(request.headers.get(PROTOCOL_HEADER), "control plane")
                body = await read_body(request, limits.body_bytes)
                reply = await handler(Call(agent, request, body, limits))
                return Response(reply.__pydantic_serializer__.to_json(reply), 200, _HEADERS, "application/json")
            except Refusal as refusal:
                return error_response(refusal.error, refusal.status)
            except AerodromeError as error:
                return error_response(error, error_status(error))
            except TimeoutError:
                return error_response(WaitTimeoutError("the agent timed out"), 408)
            except Exception as exc:  # a bug or an unmapped host failure: logged here, a kind on the wire
                log.exception("agent call %s %s failed", request.method, request.url.path)
                failure = RuntimeFailureError(f"the agent failed: {type(exc).__name__}: {exc}")
                return error_response(failure, 500)

        return run

    return Starlette(
        routes=[Route(path, endpoint(handler), methods=[method]) for method, path, handler in routes.ROUTES],
        exception_handlers={HTTPException: unrouted},  # type: ignore[dict-item]
    )


def check_head(request: Request, limit: int) -> None:
    """h11 bounds a head that arrives in several reads; this bounds one that came in a single read too."""
    if sum(len(name) + len(value) for name, value in request.scope["headers"]) > limit:
        raise Refusal(431, InvalidArgumentError(f"the request's headers are over {limit} bytes"))


def authenticate(request: Request, expected: bytes) -> None:
    given = request.headers.get("authorization", "").encode("latin-1", "replace")
    if not hmac.compare_digest(given, expected):
        raise UnauthenticatedError("the agent's token is missing or wrong (see DIR/agent.token on its host)")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) once past `limit`: from its Content-Length, or as it arrives when chunked."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refusal(413, InvalidArgumentError(f"the request body is over {limit} bytes"))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, InvalidArgumentError(f"the request body is over {limit} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(error: AerodromeError, status: int) -> Response:
    headers = dict(_HEADERS)
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    return Response(error_body(error), status, headers, "application/json")


async def unrouted(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(NotFoundError(f"the agent has no route {request.url.path[:200]}"), 404)
    return error_response(InvalidArgumentError(f"{request.method} {request.url.path[:200]}: {exc.detail}"), 405)


def ensure_token(path: Path) -> str:
    """The agent's bearer token: read from `path`, or made there on first start (0600, root's alone)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def _read_token(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as source:
        mode = os.fstat(source.fileno()).st_mode
        if not stat.S_ISREG(mode) or mode & 0o077:
            raise InvalidArgumentError(f"{path} must be a regular file readable by its owner only (chmod 600)")
        token = source.read(4096).strip()
    if len(token) < 32:
        raise InvalidArgumentError(f"{path} holds no token (delete it to have a new one made)")
    return token


def agent_server(
    agent: HostAgent,
    token: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: AgentLimits | None = None,
    tls: ssl.SSLContext | None = None,
) -> uvicorn.Server:
    """A uvicorn server of `agent` on host:port (its `serve()` runs it until signalled, or `should_exit`).
    uvicorn's h11 protocol, for the bound it sets on a request head's size. With `tls` (the agent's mutual TLS
    context) it answers HTTPS only, and `token` may be None."""
    limits = limits or AgentLimits()
    config = uvicorn.Config(
        build_agent_app(agent, token, limits),
        host=host,
        port=port,
        http="h11",
        h11_max_incomplete_event_size=limits.head_bytes,
        limit_concurrency=limits.connections,
        timeout_keep_alive=int(limits.keep_alive),
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    if tls is not None:
        config.load()
        config.ssl = tls  # a context made in memory, where uvicorn's own options take files
    return uvicorn.Server(config)
