"""wrap's Streamable HTTP transport, driven by the `mcp` SDK's own client and by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import TextContent

from tests.mcp.harness import RunningWrap, process_gone, running_wrap

GUARD = 30.0  # seconds; a guard against hanging, not a measurement
STREAMING = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


def sdk_client() -> httpx2.AsyncClient:
    """The SDK's HTTP client, carrying the bearer token."""
    return create_mcp_http_client(headers={"Authorization": "Bearer tok"})


def text_of(result: object) -> str:
    """The text of a tool result's first content block."""
    content = result.content[0]  # type: ignore[attr-defined]
    assert isinstance(content, TextContent)
    return content.text


async def test_sdk_client_initializes_lists_and_calls(wrapped: RunningWrap) -> None:
    async with (
        sdk_client() as http,
        streamable_http_client(wrapped.url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        info = await asyncio.wait_for(session.initialize(), GUARD)
        assert info.server_info.name == "fs-test"
        tools = await session.list_tools()
        assert {"list_directory", "read_file", "write_file", "whoami"} <= {tool.name for tool in tools.tools}
        assert text_of(await session.call_tool("read_file", {"path": "hello.txt"})) == "hello"
        assert "[FILE] hello.txt" in text_of(await session.call_tool("list_directory", {"path": "."}))


async def open_session(stack: contextlib.AsyncExitStack, url: str) -> ClientSession:
    """An initialized SDK session that ends (with a DELETE) when `stack` closes."""
    http = await stack.enter_async_context(sdk_client())
    read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
    session = await stack.enter_async_context(ClientSession(read, write))
    await asyncio.wait_for(session.initialize(), GUARD)
    return session


async def whoami(session: ClientSession) -> int:
    """The pid of the program serving a session."""
    return int(text_of(await session.call_tool("whoami", {})))


async def test_sessions_are_isolated_and_delete_ends_one(wrapped: RunningWrap) -> None:
    async with contextlib.AsyncExitStack() as outer:
        session_b = await open_session(outer, wrapped.url)
        async with contextlib.AsyncExitStack() as inner:
            session_a = await open_session(inner, wrapped.url)
            pid_a, pid_b = await asyncio.gather(whoami(session_a), whoami(session_b))
            assert len({pid_a, pid_b, wrapped.passthru_pid}) == 3
        # leaving the client sent DELETE; wrap stopped that session's program before answering
        assert process_gone(pid_a)
        assert await whoami(session_b) == pid_b


async def test_raw_json_session_lifecycle(wrapped: RunningWrap) -> None:
    auth = {"Authorization": "Bearer tok"}
    async with httpx.AsyncClient(timeout=GUARD, headers=auth) as client:
        opened = await client.post(wrapped.url, json=INITIALIZE, headers=STREAMING)
        assert opened.status_code == 200
        session_id = opened.headers["mcp-session-id"]
        assert "protocolVersion" in opened.text
        json_only = {"Accept": "application/json", "Mcp-Session-Id": session_id}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await client.post(wrapped.url, json=note, headers=json_only)).status_code == 202
        listed = await client.post(
            wrapped.url, json={"jsonrpc": "2.0", "id": "x", "method": "tools/list"}, headers=json_only
        )
        assert listed.headers["content-type"] == "application/json"
        assert listed.json()["id"] == "x"
        batch = [{"jsonrpc": "2.0", "id": n, "method": "ping"} for n in (7, 8)]
        replies = (await client.post(wrapped.url, json=batch, headers=json_only)).json()
        assert sorted(reply["id"] for reply in replies) == [7, 8]
        assert (await client.delete(wrapped.url, headers={"Mcp-Session-Id": session_id})).status_code == 200
        gone = await client.post(wrapped.url, json=note, headers=json_only)
        assert gone.status_code == 404
        assert json.loads(gone.text)["error"]["message"] == "Session not found"


async def test_idle_sessions_are_reaped(root: Path) -> None:
    async with running_wrap(root, ["--session-timeout", "0.2"]) as wrap, httpx.AsyncClient(timeout=GUARD) as client:
        opened = await client.post(wrap.url, json=INITIALIZE, headers=STREAMING)
        session_id = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        headers = {**STREAMING, "Mcp-Session-Id": session_id}
        for _ in range(100):
            await asyncio.sleep(0.5)  # longer than the timeout: each probe counts as use of the session
            if (await client.post(wrap.url, json=ping, headers=headers)).status_code == 404:
                break
        else:
            pytest.fail("the idle session was never reaped")


async def test_stopping_wrap_stops_every_program(root: Path) -> None:
    async with running_wrap(root) as wrap, httpx.AsyncClient(timeout=GUARD) as client:
        opened = await client.post(wrap.url, json=INITIALIZE, headers=STREAMING)
        headers = {**STREAMING, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        reply = await client.post(wrap.url, json=call, headers=headers)
        session_pid = int(json.loads(reply.text.split("data: ")[1])["result"]["content"][0]["text"])
        pids = [session_pid, wrap.passthru_pid]
    assert all(process_gone(pid) for pid in pids)


async def test_a_passthru_client_initialize_stays_passthru(wrapped: RunningWrap) -> None:
    """flyctl's bridge sends the same Accept as Streamable clients; its User-Agent keeps it on the passthru path."""
    headers = {**STREAMING, "User-Agent": "mcp-bridge-client", "Authorization": "Bearer tok"}
    async with httpx.AsyncClient(timeout=GUARD) as client:
        posted = await client.post(wrapped.url, json=INITIALIZE, headers=headers)
        assert (posted.status_code, posted.content) == (202, b"")
        assert "mcp-session-id" not in posted.headers
