"""Fixtures shared by the MCP tests: a served directory, and wrap in front of the filesystem server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.mcp.harness import RunningWrap, running_wrap


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The served directory."""
    (tmp_path / "hello.txt").write_text("hello")
    return tmp_path


@pytest.fixture
async def wrapped(root: Path) -> AsyncIterator[RunningWrap]:
    """wrap with a bearer token."""
    async with running_wrap(root, ["--bearer-token", "tok"]) as wrap:
        yield wrap
