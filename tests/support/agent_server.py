"""`aerodrome agent`'s server (or another ASGI app) run in the test's own event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from aerodrome.agent import AgentLimits, agent_server
from aerodrome.core import HostAgent


@asynccontextmanager
async def serving(
    agent: HostAgent, token: str | None, limits: AgentLimits | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """`agent` served by `aerodrome agent`'s server on a free loopback port, for the block; yields its URL
    (https:// with `tls`, the agent's mutual TLS context)."""
    async with running(agent_server(agent, token, limits=limits, tls=tls)) as url:
        yield url if tls is None else url.replace("http://", "https://", 1)


@asynccontextmanager
async def serving_app(app: Any) -> AsyncIterator[str]:
    """Any ASGI app on a free loopback port (a peer that is not an agent)."""
    config = uvicorn.Config(app, http="h11", lifespan="off", access_log=False, log_level="warning")
    async with running(uvicorn.Server(config)) as url:
        yield url


@asynccontextmanager
async def running(server: uvicorn.Server) -> AsyncIterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # for TCP_NODELAY
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    task = asyncio.ensure_future(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        listener.close()
