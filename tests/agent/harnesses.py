"""One `AgentHarness` per `HostAgent` implementation, for the conformance suite, and the agent served on loopback.

To add an implementation, write an async context manager yielding its harness and list it in `HARNESSES`;
`over_http(inner)` gives the same agent behind `aerodrome agent`'s server and a `RemoteAgent`. The in-process
agent goes in as `local` (marked `root`) and `remote-local` = `over_http(local_harness())`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from aerodrome.agent import RemoteAgent
from tests.agent.conformance import AgentHarness
from tests.support.agent_server import serving
from tests.support.fake_agent import FakeAgent

HarnessFactory = Callable[[], AbstractAsyncContextManager[AgentHarness]]
FAKE_IMAGE = "registry.local/conformance/busybox:latest"
FAKE_MISSING_IMAGE = "registry.local/conformance/nothing-here:latest"


@asynccontextmanager
async def fake_harness() -> AsyncIterator[AgentHarness]:
    agent = FakeAgent(missing_images=frozenset({FAKE_MISSING_IMAGE}))
    yield AgentHarness(agent, FAKE_IMAGE, FAKE_MISSING_IMAGE)
    await agent.close()


@asynccontextmanager
async def over_http(inner: AbstractAsyncContextManager[AgentHarness], **client: Any) -> AsyncIterator[AgentHarness]:
    """`inner`'s agent behind the agent's HTTP server on loopback, driven by a `RemoteAgent`."""
    token = secrets.token_urlsafe(32)
    async with inner as harness, serving(harness.agent, token) as url:
        remote = RemoteAgent(url, token, **client)
        try:
            yield AgentHarness(remote, harness.image, harness.missing_image, harness.volume_bytes)
        finally:
            await remote.close()


HARNESSES: list[Any] = [
    pytest.param(fake_harness, id="fake"),
    pytest.param(lambda: over_http(fake_harness()), id="remote-fake"),
]
