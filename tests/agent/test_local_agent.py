"""LocalAgent on this host: real runc, the test registry's busybox, real loop-device volumes, its own journal."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aerodrome.agent import LocalAgent
from aerodrome.core import (
    Deadline,
    FailedPreconditionError,
    GuestFile,
    HostEvent,
    HostEventKind,
    HostState,
    ImageInfo,
    InvalidArgumentError,
    MachineVersionSpec,
    VolumeAttachment,
    WaitTimeoutError,
    machine_id,
    ulid,
)
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.registry import EmbeddedRegistry
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.volumes import LoopVolumeBackend
from tests.runtime.conformance import eventually
from tests.runtime.runc_fixtures import (
    host_leftovers,
    image_store_root,
    needs_root,
    network_leftovers,
    runtime_pool,
)

pytestmark = [
    pytest.mark.root,
    needs_root,
    pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="needs loop devices"),
]
__all__ = ["image_store_root"]  # a fixture, used by name
MIB = 1 << 20
SLEEPER = ("sleep", "1000")


def later() -> Deadline:
    return Deadline.after(60)


@dataclass
class Host:
    root: Path
    image: ImageInfo
    reference: str
    open: Callable[[], Awaitable[LocalAgent]]
    agents: list[LocalAgent] = field(default_factory=list)

    @property
    def agent(self) -> LocalAgent:
        return self.agents[-1]

    def spec(self, argv: tuple[str, ...] = SLEEPER, **fields: object) -> MachineVersionSpec:
        values: dict[str, object] = {
            "machine_id": machine_id(),
            "version": ulid(),
            "app_name": "agent-test",
            "org_network_id": 1,
            "image": self.reference,
            "image_digest": self.image.digest,
            "init_exec": argv,
            **fields,
        }
        return MachineVersionSpec(**values)  # type: ignore[arg-type]

    async def reopen(self) -> LocalAgent:
        await self.agent.close()
        return await self.open()


@pytest.fixture
async def host(
    tmp_path: Path, registry: EmbeddedRegistry, busybox_image: str, image_store_root: tuple[Path, ImageInfo]
) -> AsyncIterator[Host]:
    """A LocalAgent under `tmp_path`; afterwards every machine and volume is gone and the host is checked clean."""
    store_root, image = image_store_root
    root = tmp_path / "host"

    async def open_agent() -> LocalAgent:
        images = ImageStore(store_root, registries=(registry.url,))
        runtime = RuncRuntime(root / "runtime", images, ipv4_pool=runtime_pool(), egress=False)
        agent = await LocalAgent.open(runtime, LoopVolumeBackend(root / "volumes"), root / "runtime")
        state.agents.append(agent)
        return agent

    state = Host(root, image, busybox_image, open_agent)
    await open_agent()
    try:
        yield state
    finally:
        agent = await state.reopen()
        machine_ids = [m.machine_id for m in await agent.machines()]
        for mid in machine_ids:
            await agent.destroy(mid, key=ulid(), deadline=later())
        volume_ids, snapshot_ids = await agent.stored_volumes()
        for volume_id in volume_ids:
            await agent.delete_volume(volume_id, key=ulid(), deadline=later())
        for snap_id in snapshot_ids:
            await agent.delete_snapshot(snap_id, key=ulid(), deadline=later())
        await agent.close()
        leftovers = await host_leftovers(root / "runtime", ["", *machine_ids]) + await network_leftovers(machine_ids)
        assert leftovers + await host_leftovers(root / "volumes", [""]) == []


async def run_in(agent: LocalAgent, mid: str, script: str) -> str:
    result = await agent.exec(mid, ["sh", "-c", script], None, 10, deadline=later())
    assert result.exit_code == 0, result
    return result.stdout.decode()


async def exit_event(agent: LocalAgent, mid: str, after: int = 0) -> HostEvent:
    found: list[HostEvent] = []

    async def seen() -> bool:
        found[:] = [e for e in await agent.events(after, wait=0.5) if e.machine_id == mid]
        return bool(found)

    await eventually(seen, f"the exit event of {mid}")
    return found[0]


async def test_a_version_is_prepared_started_suspended_stopped_and_destroyed(host: Host) -> None:
    agent, spec = host.agent, host.spec(env={"GREETING": "hello"})
    prepared = await agent.prepare(spec, key=ulid(), deadline=later())
    assert prepared.version == spec.version and prepared.private_ipv4 and prepared.private_ip
    assert prepared.image_ref["digest"] == host.image.digest
    assert await agent.status(spec.machine_id) == (await agent.machines())[0]
    assert (await agent.status(spec.machine_id)).state is HostState.CREATED
    assert (await agent.status(spec.machine_id)).version == spec.version

    await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())
    assert (await agent.status(spec.machine_id)).state is HostState.RUNNING
    env = await run_in(agent, spec.machine_id, "env")
    assert "GREETING=hello\n" in env and "PATH=" in env  # the version's env over the image's

    await agent.suspend(spec.machine_id, key=ulid(), deadline=later())
    assert (await agent.status(spec.machine_id)).state is HostState.PAUSED
    await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())  # resumes
    assert (await agent.status(spec.machine_id)).state is HostState.RUNNING
    await agent.suspend(spec.machine_id, key=ulid(), deadline=later())

    exit = await agent.stop(spec.machine_id, signal=15, timeout=5, key=ulid(), deadline=later())  # thaws first
    assert exit is not None and exit.requested_stop
    assert (await agent.status(spec.machine_id)).state is HostState.STOPPED
    assert await agent.stop(spec.machine_id, signal=15, timeout=5, key=ulid(), deadline=later()) is None

    await agent.destroy(spec.machine_id, key=ulid(), deadline=later())
    assert (await agent.status(spec.machine_id)).state is HostState.ABSENT
    assert (await agent.status(spec.machine_id)).version == ""
    assert await agent.machines() == []


async def test_the_next_version_replaces_the_one_the_host_holds(host: Host) -> None:
    agent, first = host.agent, host.spec()
    await agent.prepare(first, key=ulid(), deadline=later())
    second = host.spec(machine_id=first.machine_id, init_exec=("sh", "-c", "echo two > /tmp/v; exec sleep 1000"))
    await agent.prepare(second, key=ulid(), deadline=later())
    assert (await agent.status(first.machine_id)).version == second.version
    with pytest.raises(FailedPreconditionError, match="holds version"):
        await agent.start(first.machine_id, first.version, key=ulid(), deadline=later())
    await agent.start(first.machine_id, second.version, key=ulid(), deadline=later())
    await eventually(lambda: _file_is(agent, first.machine_id, "/tmp/v", "two\n"), "the second version's program")
    with pytest.raises(FailedPreconditionError):
        await agent.prepare(host.spec(machine_id=first.machine_id), key=ulid(), deadline=later())  # it runs


async def _file_is(agent: LocalAgent, mid: str, path: str, content: str) -> bool:
    result = await agent.exec(mid, ["cat", path], None, 10, deadline=later())
    return result.stdout.decode() == content


async def test_exits_are_events_that_outlive_the_agent_until_acknowledged(host: Host) -> None:
    agent, spec = host.agent, host.spec(("sh", "-c", "exit 3"))
    await agent.prepare(spec, key=ulid(), deadline=later())
    await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())
    event = await exit_event(agent, spec.machine_id)
    assert event.kind is HostEventKind.EXIT and event.version == spec.version
    assert event.exit is not None and event.exit.exit_code == 3 and not event.exit.requested_stop

    # one that exits while no agent watches is reported by the next one
    late = host.spec(("sh", "-c", "sleep 1; exit 4"))
    await agent.prepare(late, key=ulid(), deadline=later())
    await agent.start(late.machine_id, late.version, key=ulid(), deadline=later())
    agent = await host.reopen()
    assert [e.cursor for e in await agent.events(0) if e.machine_id == spec.machine_id] == [event.cursor]
    reported = await exit_event(agent, late.machine_id, after=event.cursor)
    assert reported.exit is not None and reported.exit.exit_code == 4 and reported.cursor > event.cursor

    await agent.acknowledge(event.cursor)
    assert [e.cursor for e in await agent.events(0)] == [reported.cursor]
    agent = await host.reopen()
    assert [e.cursor for e in await agent.events(0)] == [reported.cursor]
    assert await agent.events(reported.cursor, wait=0.05) == []


async def test_a_repeated_key_returns_the_first_result_without_acting_again(host: Host) -> None:
    agent, spec = host.agent, host.spec()
    key = ulid()
    prepared = await agent.prepare(spec, key=key, deadline=later())
    assert await agent.prepare(spec, key=key, deadline=later()) == prepared
    start_key = ulid()
    await agent.start(spec.machine_id, spec.version, key=start_key, deadline=later())
    agent = await host.reopen()  # the keys are durable
    await agent.start(spec.machine_id, spec.version, key=start_key, deadline=later())  # not a second start
    with pytest.raises(FailedPreconditionError):
        await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())  # a new key acts
    stop_key = ulid()
    exit = await agent.stop(spec.machine_id, signal=15, timeout=5, key=stop_key, deadline=later())
    assert exit is not None
    assert await agent.stop(spec.machine_id, signal=15, timeout=5, key=stop_key, deadline=later()) == exit


async def test_a_request_past_its_deadline_does_nothing(host: Host) -> None:
    agent, spec = host.agent, host.spec()
    with pytest.raises(WaitTimeoutError):
        await agent.prepare(spec, key=ulid(), deadline=Deadline.after(-1))
    assert (await agent.status(spec.machine_id)).state is HostState.ABSENT


async def test_volumes_are_attached_by_id_and_detached_by_destroy(host: Host) -> None:
    agent = host.agent
    await agent.create_volume("vol_agenttest0001", 16 * MIB, "ext4", key=ulid(), deadline=later())
    spec = host.spec(mounts=(VolumeAttachment("vol_agenttest0001", "/data"),))
    await agent.prepare(spec, key=ulid(), deadline=later())
    await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())
    await run_in(agent, spec.machine_id, "echo kept > /data/file && sync")
    assert await agent.extend_volume("vol_agenttest0001", 32 * MIB, key=ulid(), deadline=later()) in (True, False)
    await agent.stop(spec.machine_id, signal=15, timeout=5, key=ulid(), deadline=later())
    await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())  # grown by now if it was not
    assert (await agent.volume_usage("vol_agenttest0001")).bytes_total > 16 * MIB
    await agent.stop(spec.machine_id, signal=15, timeout=5, key=ulid(), deadline=later())
    await agent.destroy(spec.machine_id, key=ulid(), deadline=later())
    assert await host_leftovers(host.root / "volumes", [""]) == []  # unmounted, loop device detached
    assert (await agent.stored_volumes())[0] == ["vol_agenttest0001"]

    again = host.spec(mounts=(VolumeAttachment("vol_agenttest0001", "/data"),))
    await agent.prepare(again, key=ulid(), deadline=later())
    await agent.start(again.machine_id, again.version, key=ulid(), deadline=later())
    assert await run_in(agent, again.machine_id, "cat /data/file") == "kept\n"


async def test_a_failed_prepare_of_a_new_machine_leaves_its_volumes_detached(host: Host) -> None:
    agent = host.agent
    await agent.create_volume("vol_agenttest0002", 16 * MIB, "ext4", key=ulid(), deadline=later())
    mounts = (VolumeAttachment("vol_agenttest0002", "/data"),)
    spec = host.spec(mounts=mounts, files=(GuestFile("../escape", b"x"),))  # refused by the runtime, after mounting
    with pytest.raises(InvalidArgumentError, match="guest_path"):
        await agent.prepare(spec, key=ulid(), deadline=later())
    assert await agent.machines() == []
    assert await host_leftovers(host.root / "volumes", [""]) == []
