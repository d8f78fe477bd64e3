"""`aerodrome mcp proxy` as a subprocess, in front of wrap, driven by the `mcp` SDK's stdio client or by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import TextContent

from tests.mcp.harness import RunningWrap, running_wrap

GUARD = 30.0  # seconds; a guard against hanging, not a measurement
PROXY = [sys.executable, "-m", "aerodrome", "mcp", "proxy"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


async def initialize_list_and_call(arguments: Sequence[str]) -> str:
    """Launch the proxy as a desktop client would, and go through initialize, tools/list and a call."""
    parameters = StdioServerParameters(command=PROXY[0], args=[*PROXY[1:], *arguments], env=dict(os.environ))
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        info = await asyncio.wait_for(session.initialize(), GUARD)
        assert info.server_info.name == "fs-test"
        assert "read_file" in {tool.name for tool in (await session.list_tools()).tools}
        content = (await session.call_tool("read_file", {"path": "hello.txt"})).content[0]
        assert isinstance(content, TextContent)
        return content.text


async def test_passthru_proxy_carries_an_sdk_session(wrapped: RunningWrap) -> None:
    assert await initialize_list_and_call(["--url", wrapped.url, "--bearer-token", "tok"]) == "hello"


async def test_stream_proxy_carries_an_sdk_session(wrapped: RunningWrap) -> None:
    assert await initialize_list_and_call(["--url", wrapped.url, "--bearer-token", "tok", "--stream"]) == "hello"


async def test_basic_auth_through_the_proxy(root: Path) -> None:
    async with running_wrap(root, ["--user", "ann", "--password", "pw"]) as wrap:
        arguments = ["--url", wrap.url, "--user", "ann", "--password", "pw"]
        assert await initialize_list_and_call(arguments) == "hello"


@contextlib.asynccontextmanager
async def raw_proxy(arguments: Sequence[str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """The proxy with its stdin and stdout in the test's hands; stdin is closed (ending it) afterwards."""
    process = await asyncio.create_subprocess_exec(
        *PROXY, *arguments, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        yield process
    finally:
        process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), GUARD)
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.read()


async def exchange(process: asyncio.subprocess.Process, message: dict[str, object]) -> dict[str, object]:
    """Write one line to the proxy and read one line back."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    await process.stdin.drain()
    reply: dict[str, object] = json.loads(await asyncio.wait_for(process.stdout.readline(), GUARD))
    return reply


async def test_a_refused_post_is_reported_on_stdout(wrapped: RunningWrap) -> None:
    async with raw_proxy(["--url", wrapped.url, "--bearer-token", "tok"]) as proxy:
        assert "result" in await exchange(proxy, INITIALIZE)
        os.kill(wrapped.passthru_pid, signal.SIGKILL)  # wrap can no longer deliver: it answers 500
        await wrapped.wait_for_log("output stream closed")
        error = await exchange(proxy, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert error["type"] == "error"
        assert str(error["content"]).startswith("Failed to send to server: Error writing to program")


async def test_wrong_token_makes_the_proxy_give_up(wrapped: RunningWrap) -> None:
    async with raw_proxy(["--url", wrapped.url, "--bearer-token", "wrong"]) as proxy:
        assert await asyncio.wait_for(proxy.wait(), GUARD) == 1


async def test_the_proxy_waits_for_the_server_and_reconnects_after_a_restart(root: Path, unused_port: int) -> None:
    arguments = ["--url", f"http://127.0.0.1:{unused_port}/", "--reconnect-interval", "0.1"]
    async with raw_proxy(arguments) as proxy:
        async with running_wrap(root, port=unused_port):  # started after the proxy: it keeps knocking
            assert "result" in await exchange(proxy, INITIALIZE)
        async with running_wrap(root, port=unused_port):  # a machine stopped and started again
            assert "result" in await exchange(proxy, INITIALIZE)


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
