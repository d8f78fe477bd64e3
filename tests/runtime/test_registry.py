"""The embedded registry: a real docker-registry process on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aerodrome.core import UnavailableError
from aerodrome.runtime.process import run
from aerodrome.runtime.registry import EmbeddedRegistry
from tests.support.images import build_busybox_image
from tests.support.registry import free_loopback_port, running_registry


async def _answers(url: str) -> bool:
    done = await run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{url}/none:none"], check=False)
    return b"connection refused" not in done.stderr


async def test_start_answers_and_stop_reaps(tmp_path: Path) -> None:
    async with EmbeddedRegistry(tmp_path, listen=f"127.0.0.1:{free_loopback_port()}") as registry:
        assert registry.running
        assert await _answers(registry.url)
    assert not registry.running
    assert not await _answers(registry.url)
    assert (tmp_path / "config.yml").is_file()


async def test_taken_port_is_a_clear_unavailable_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(UnavailableError, match="taken"):
            await EmbeddedRegistry(tmp_path, listen=f"127.0.0.1:{port}").start()


async def test_missing_binary_is_unavailable(tmp_path: Path) -> None:
    registry = EmbeddedRegistry(tmp_path, listen=f"127.0.0.1:{free_loopback_port()}", binary="no-such-registry")
    with pytest.raises(UnavailableError, match="not installed"):
        await registry.start()


async def test_images_survive_a_restart(tmp_path: Path) -> None:
    async with running_registry(tmp_path) as registry:
        reference = await build_busybox_image(registry.url, "kept")
    async with running_registry(tmp_path) as registry:
        moved = reference.replace(reference.split("/")[0], registry.url)
        done = await run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{moved}"])
        assert b"layers" in done.stdout


def test_session_fixture_serves_the_busybox_image(registry: EmbeddedRegistry, busybox_image: str) -> None:
    assert registry.running
    assert busybox_image == f"{registry.url}/busybox:latest"
