"""wrap's Fly passthru protocol, driven the way the seed guide's shell script and flyctl drive it."""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.mcp.harness import WRAP_PY, RunningWrap, running_wrap

GUARD = 30.0  # seconds; a guard against hanging, not a measurement

SEED_BODY = """
{"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"claude-ai","version":"0.1.0"}},"jsonrpc":"2.0","id":0}
{"jsonrpc":"2.0","method":"tools/list","id":1}
{"jsonrpc":"2.0","method":"tools/call","params":{"name":"list_directory","arguments":{"path":"."}},"id":2}
"""


@pytest.fixture
async def wrapped(root: Path) -> AsyncIterator[RunningWrap]:
    """wrap without authentication (the shared fixture has a bearer token)."""
    async with running_wrap(root) as wrap:
        yield wrap


async def read_replies(lines: AsyncIterator[str], count: int) -> dict[int, dict[str, object]]:
    """Collect `count` JSON-RPC replies from the GET stream, by id."""
    replies: dict[int, dict[str, object]] = {}
    while len(replies) < count:
        line = await asyncio.wait_for(anext(lines), GUARD)
        if line.strip():
            message = json.loads(line)
            replies[message["id"]] = message
    return replies


async def test_seed_script_gets_three_replies_on_the_get_stream(wrapped: RunningWrap) -> None:
    async with httpx.AsyncClient(timeout=GUARD) as client, client.stream("GET", wrapped.url) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["connection"] == "keep-alive"
        posted = await client.post(wrapped.url, content=SEED_BODY, headers={"Content-Type": "application/json"})
        assert (posted.status_code, posted.content) == (202, b"")
        replies = await read_replies(stream.aiter_lines(), 3)
    assert replies[0]["result"]["serverInfo"]["name"] == "fs-test"  # type: ignore[index]
    assert "list_directory" in json.dumps(replies[1])
    assert "[FILE] hello.txt" in json.dumps(replies[2])


async def test_a_second_listener_gets_409_and_the_slot_frees_on_disconnect(wrapped: RunningWrap) -> None:
    async with httpx.AsyncClient(timeout=GUARD) as client:
        async with client.stream("GET", wrapped.url) as first:
            assert first.status_code == 200
            second = await client.get(wrapped.url)
            assert (second.status_code, second.text) == (409, "Another client is already connected\n")
        assert await listen_once_free(client, wrapped.url)


async def listen_once_free(client: httpx.AsyncClient, url: str) -> bool:
    """Attach a listener as soon as the server has noticed the previous one leave."""
    for _ in range(1000):
        async with client.stream("GET", url) as stream:
            if stream.status_code == 200:
                return True
        await asyncio.sleep(0.01)
    return False


async def test_browsers_get_a_plain_page_and_other_methods_405(wrapped: RunningWrap) -> None:
    async with httpx.AsyncClient(timeout=GUARD) as client:
        page = await client.get(wrapped.url + "any/path", headers={"Accept": "text/html,application/xhtml+xml"})
        assert (page.status_code, page.text, page.headers["content-type"]) == (
            200,
            "MCP Server",
            "text/plain; charset=utf-8",
        )
        assert (await client.put(wrapped.url)).status_code == 405
        assert (await client.delete(wrapped.url)).status_code == 405


async def test_bearer_token(root: Path) -> None:
    async with running_wrap(root, ["--bearer-token", "s3cret"]) as wrap, httpx.AsyncClient(timeout=GUARD) as client:
        browser = {"Accept": "text/html"}
        missing = await client.get(wrap.url, headers=browser)
        assert (missing.status_code, missing.text) == (401, "Unauthorized\n")
        wrong = await client.get(wrap.url, headers={**browser, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await client.get(wrap.url, headers={**browser, "Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert (await client.post(wrap.url, content=b"")).status_code == 401


async def test_environment_token_takes_precedence_over_the_flag(root: Path) -> None:
    env = {"FLY_MCP_BEARER_TOKEN": "from-env"}
    async with running_wrap(root, ["--bearer-token", "from-flag"], env) as wrap, httpx.AsyncClient() as client:
        headers = {"Accept": "text/html"}
        assert (await client.get(wrap.url, headers={**headers, "Authorization": "Bearer from-flag"})).status_code == 401
        assert (await client.get(wrap.url, headers={**headers, "Authorization": "Bearer from-env"})).status_code == 200


async def test_basic_auth(root: Path) -> None:
    async with running_wrap(root, ["--user", "ann", "--password", "pw"]) as wrap, httpx.AsyncClient() as client:
        headers = {"Accept": "text/html"}
        assert (await client.get(wrap.url, headers=headers)).status_code == 401
        assert (await client.get(wrap.url, headers=headers, auth=("ann", "bad"))).status_code == 401
        assert (await client.get(wrap.url, headers=headers, auth=("ann", "pw"))).status_code == 200
        garbage = {**headers, "Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}
        assert (await client.get(wrap.url, headers=garbage)).status_code == 401


async def test_private_refuses_clients_outside_the_private_network(root: Path) -> None:
    async with running_wrap(root, env={"FLY_MCP_PRIVATE": ""}) as wrap, httpx.AsyncClient() as client:
        headers = {"Accept": "text/html"}
        outside = await client.get(wrap.url, headers={**headers, "Fly-Client-Ip": "203.0.113.9"})
        assert (outside.status_code, outside.text) == (403, "Forbidden\n")
        inside = await client.get(wrap.url, headers={**headers, "Fly-Client-Ip": "fdaa:0:1::3"})
        assert inside.status_code == 200
        assert (await client.get(wrap.url, headers=headers)).status_code == 200  # no header: not via the edge


async def test_chunked_post_bodies_reach_the_program(wrapped: RunningWrap) -> None:
    async def body() -> AsyncIterator[bytes]:
        for line in SEED_BODY.splitlines(keepends=True):
            yield line.encode()

    async with httpx.AsyncClient(timeout=GUARD) as client, client.stream("GET", wrapped.url) as stream:
        posted = await client.post(wrapped.url, content=body(), headers={"Content-Type": "application/json"})
        assert posted.status_code == 202
        assert set(await read_replies(stream.aiter_lines(), 3)) == {0, 1, 2}


def test_wrap_imports_only_the_standard_library() -> None:
    tree = ast.parse(WRAP_PY.read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in modules} <= set(sys.stdlib_module_names) | {"__future__"}
