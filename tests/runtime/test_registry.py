"""The embedded registry: a real docker-registry process on loopback."""

from __future__ import annotations

import asyncio
import socket
import sys
from asyncio.subprocess import DEVNULL
from pathlib import Path

import httpx
import pytest

from aerodrome.core import UnavailableError
from aerodrome.runtime.process import run
from aerodrome.runtime.registry import EmbeddedRegistry
from tests.support.images import build_busybox_image
from tests.support.registry import free_loopback_port, running_registry


async def _answers(url: str) -> bool:
    """True when the registry answers its API's version check (200 on /v2/), False when nothing listens."""
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            response = await client.get(f"http://{url}/v2/")
        except httpx.ConnectError:
            return False
    assert response.status_code == 200, response.text
    return True


async def test_start_answers_and_stop_reaps(tmp_path: Path) -> None:
    async with EmbeddedRegistry(tmp_path, listen=f"127.0.0.1:{free_loopback_port()}") as registry:
        assert registry.running
        assert await _answers(registry.url)
    assert not registry.running
    assert not await _answers(registry.url)
    assert (tmp_path / "config.yml").is_file()


async def test_port_zero_takes_a_free_port_and_keeps_it_across_a_restart(tmp_path: Path) -> None:
    registry = EmbeddedRegistry(tmp_path, listen="127.0.0.1:0")
    async with registry:
        taken = registry.url
        assert taken.startswith("127.0.0.1:") and int(taken.rpartition(":")[2]) > 0
        assert await _answers(taken)
        assert registry._proc is not None
        registry._proc.kill()  # a death: the next start serves the port the clients already know
        registry._proc.wait()
        await registry.start()
        assert registry.url == taken
        assert await _answers(taken)


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


_CHILD = """
import asyncio, sys, time
from asyncio.subprocess import DEVNULL
from pathlib import Path
from aerodrome.runtime.registry import EmbeddedRegistry

registry = EmbeddedRegistry(Path(sys.argv[1]), listen=sys.argv[2])
asyncio.run(registry.start())
print(registry.pid_path.read_text(), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


async def _gone(pid: int) -> bool:
    for _ in range(500):  # a bounded wait for the kernel to deliver the signal
        if not _running(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_registry_dies_with_its_parent(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_loopback_port()}"
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(tmp_path), listen, stdout=asyncio.subprocess.PIPE
    )
    try:
        registry_pid = int(await asyncio.wait_for(parent.stdout.readline(), 15) if parent.stdout else b"0")
    finally:
        parent.kill()
        await parent.communicate()
    assert registry_pid > 0 and await _gone(registry_pid)


async def test_start_stops_a_registry_left_on_its_data_dir(tmp_path: Path) -> None:
    registry = EmbeddedRegistry(tmp_path, listen=f"127.0.0.1:{free_loopback_port()}")
    async with registry:
        pass
    # A registry whose parent vanished without stopping it, still serving the same directory and port.
    leftover = await asyncio.create_subprocess_exec(
        "docker-registry", "serve", str(tmp_path / "config.yml"), stdout=DEVNULL, stderr=DEVNULL
    )
    try:
        registry.pid_path.write_text(str(leftover.pid))
        async with registry:
            assert await _answers(registry.url)
            assert not _running(leftover.pid)
    finally:
        if leftover.returncode is None and _running(leftover.pid):
            leftover.kill()
        await leftover.wait()


def test_session_fixture_serves_the_busybox_image(registry: EmbeddedRegistry, busybox_image: str) -> None:
    assert registry.running
    assert busybox_image == f"{registry.url}/busybox:latest"
