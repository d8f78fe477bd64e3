"""The host agent conformance suite, against every implementation in `tests/agent/harnesses.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import pytest

from tests.agent.conformance import AgentConformance, AgentHarness
from tests.agent.harnesses import HARNESSES, HarnessFactory
from tests.runtime.runc_fixtures import image_store_root

__all__ = ["image_store_root"]  # a fixture the local harnesses use, by name


@pytest.fixture(params=HARNESSES)
def harness_of(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[AgentHarness]:
    """The implementation's harness, made outside the test's event loop (session fixtures run their own)."""
    factory: HarnessFactory = request.param
    return factory(request)


@pytest.fixture
async def agent_harness(harness_of: AbstractAsyncContextManager[AgentHarness]) -> AsyncIterator[AgentHarness]:
    async with harness_of as harness:
        yield harness


class TestAgentConformance(AgentConformance):
    pass
