"""One daemon for the command-line tests, and the command run against it with a config file of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.runner import Cli
from tests.support.server import Server, running_server


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    return Cli(server.api_url, server.token, tmp_path / "aerodrome" / "config.toml")


@pytest.fixture
def app_name(cli: Cli) -> Iterator[str]:
    """A fresh app, destroyed after the test: every test's machines are its own."""
    name = f"cli-{uuid.uuid4().hex[:10]}"
    assert cli.json("apps", "create", name)["name"] == name
    yield name
    cli.run("apps", "destroy", name, "--yes")
