"""One `AgentHarness` per `HostAgent` implementation, for the conformance suite, and the agent served on loopback.

To add an implementation, write a function of the test's `pytest.FixtureRequest` (for the fixtures it needs)
returning an async context manager that yields its harness, and list it in `HARNESSES`; `over_http(inner)` gives
the same agent behind `aerodrome agent`'s server and a `RemoteAgent`. The in-process agent is `local` (real
runc, the test registry's busybox, loop-device volumes; root) and `remote-local` is the same over the wire;
both check afterwards that nothing of theirs is left on the host.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aerodrome.agent import LocalAgent, RemoteAgent
from aerodrome.core import Deadline, ulid
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.registry import EmbeddedRegistry
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.volumes import LoopVolumeBackend
from tests.agent.conformance import AgentHarness
from tests.runtime.runc_fixtures import host_leftovers, needs_root, network_leftovers, runtime_pool
from tests.support.agent_server import serving
from tests.support.fake_agent import FakeAgent

HarnessFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[AgentHarness]]
FAKE_IMAGE = "registry.local/conformance/busybox:latest"
FAKE_MISSING_IMAGE = "registry.local/conformance/nothing-here:latest"


def fake_harness(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[AgentHarness]:
    return _fake()


@asynccontextmanager
async def _fake() -> AsyncIterator[AgentHarness]:
    agent = FakeAgent(missing_images=frozenset({FAKE_MISSING_IMAGE}))
    yield AgentHarness(agent, FAKE_IMAGE, FAKE_MISSING_IMAGE)
    await agent.close()


def local_harness(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[AgentHarness]:
    """LocalAgent under the test's tmp_path, over the session's registry and unpacked busybox (fixtures read
    here, before the test's event loop runs, since they start their own)."""
    registry: EmbeddedRegistry = request.getfixturevalue("registry")
    image: str = request.getfixturevalue("busybox_image")
    store_root, _ = request.getfixturevalue("image_store_root")
    root: Path = request.getfixturevalue("tmp_path") / "host"
    return _local(ImageStore(store_root, registries=(registry.url,)), image, f"{registry.url}/conformance/none:1", root)


@asynccontextmanager
async def _local(images: ImageStore, image: str, missing: str, root: Path) -> AsyncIterator[AgentHarness]:
    """Afterwards every machine, volume and snapshot is removed through the agent and the host checked clean."""
    runtime = RuncRuntime(root / "runtime", images, ipv4_pool=runtime_pool(), egress=False)
    agent = await LocalAgent.open(runtime, LoopVolumeBackend(root / "volumes"), root / "runtime")
    try:
        yield AgentHarness(agent, image, missing)
    finally:
        machine_ids = await _remove_everything(agent)
        await agent.close()
    leftovers = await host_leftovers(root / "runtime", ["", *machine_ids]) + await network_leftovers(machine_ids)
    assert leftovers + await host_leftovers(root / "volumes", [""]) == []


async def _remove_everything(agent: LocalAgent) -> list[str]:
    """Destroy what a test left (a failed one leaves machines running): the ids of the machines there were."""
    machine_ids = [m.machine_id for m in await agent.machines()]
    for machine in machine_ids:
        await agent.destroy(machine, key=ulid(), deadline=Deadline.after(60))
    volumes, snapshots = await agent.stored_volumes()
    for volume in volumes:
        await agent.delete_volume(volume, key=ulid(), deadline=Deadline.after(60))
    for snapshot in snapshots:
        await agent.delete_snapshot(snapshot, key=ulid(), deadline=Deadline.after(60))
    return machine_ids


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


ON_THIS_HOST = [
    pytest.mark.root,
    needs_root,
    pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="needs loop devices"),
]
HARNESSES: list[Any] = [
    pytest.param(fake_harness, id="fake"),
    pytest.param(lambda request: over_http(fake_harness(request)), id="remote-fake"),
    pytest.param(local_harness, id="local", marks=ON_THIS_HOST),
    pytest.param(lambda request: over_http(local_harness(request)), id="remote-local", marks=ON_THIS_HOST),
]
