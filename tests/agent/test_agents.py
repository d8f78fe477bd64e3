"""The host agent conformance suite, against every implementation in `tests/agent/harnesses.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.agent.conformance import AgentConformance, AgentHarness
from tests.agent.harnesses import HARNESSES, HarnessFactory


@pytest.fixture(params=HARNESSES)
async def agent_harness(request: pytest.FixtureRequest) -> AsyncIterator[AgentHarness]:
    factory: HarnessFactory = request.param
    async with factory() as harness:
        yield harness


class TestAgentConformance(AgentConformance):
    pass
