"""The behaviour every `aerodrome.core.HostAgent` must show, written against the Protocol alone.

A test module subclasses `AgentConformance` and provides an `agent_harness` fixture (see `AgentHarness`);
`tests/agent/harnesses.py` builds one per implementation, and `tests/agent/test_agents.py` runs them all.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from aerodrome.core import (
    AGENT_PROTOCOL_VERSION,
    AlreadyExistsError,
    Deadline,
    FailedPreconditionError,
    HostAgent,
    HostEventKind,
    HostState,
    MachineVersionSpec,
    NotFoundError,
    OutputCursor,
    VolumeAttachment,
    WaitTimeoutError,
    machine_id,
    snapshot_id,
    ulid,
    volume_id,
)

WAIT = 15.0  # an upper bound for things that take milliseconds; never a measurement
SLEEPER = ("sleep", "1000")
MIB = 1024 * 1024


@dataclass
class AgentHarness:
    agent: HostAgent
    image: str  # a reference the host can pull
    missing_image: str  # one it cannot: the registry has no such repository
    volume_bytes: int = 64 * MIB  # a volume size the host can make quickly

    def spec(self, machine: str | None = None, version: str | None = None, **fields: Any) -> MachineVersionSpec:
        return MachineVersionSpec(
            machine_id=machine or machine_id(),
            version=version or ulid(),
            app_name="conformance",
            org_network_id=1,
            image=fields.pop("image", self.image),
            init_exec=fields.pop("init_exec", SLEEPER),
            **fields,
        )


def key() -> str:
    return ulid()


def soon() -> Deadline:
    return Deadline.after(WAIT)


async def running(h: AgentHarness, **fields: Any) -> MachineVersionSpec:
    spec = h.spec(**fields)
    await h.agent.prepare(spec, key=key(), deadline=soon())
    await h.agent.start(spec.machine_id, spec.version, key=key(), deadline=soon())
    return spec


async def stop(h: AgentHarness, machine: str, *, stop_key: str | None = None) -> Any:
    return await h.agent.stop(machine, signal=15, timeout=5, key=stop_key or key(), deadline=soon())


class AgentConformance:
    async def test_info_names_the_host_and_its_protocol(self, agent_harness: AgentHarness) -> None:
        info = await agent_harness.agent.info()
        assert info.name and info.region
        assert info.protocol == AGENT_PROTOCOL_VERSION

    async def test_a_version_is_prepared_run_stopped_and_destroyed(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = h.spec()
        prepared = await h.agent.prepare(spec, key=key(), deadline=soon())
        assert prepared.version == spec.version and prepared.private_ip and prepared.private_ipv4
        assert prepared.image_ref["digest"].startswith("sha256:")
        held = await h.agent.status(spec.machine_id)
        assert (held.state, held.version) == (HostState.CREATED, spec.version)
        assert held in await h.agent.machines()
        await h.agent.start(spec.machine_id, spec.version, key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).state == HostState.RUNNING
        exit_info = await stop(h, spec.machine_id)
        assert exit_info is not None and exit_info.requested_stop
        assert (await h.agent.status(spec.machine_id)).state == HostState.STOPPED
        await h.agent.destroy(spec.machine_id, key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).state == HostState.ABSENT
        assert spec.machine_id not in {m.machine_id for m in await h.agent.machines()}

    async def test_a_key_sent_again_returns_the_first_reply(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec, prepare_key, start_key, stop_key = h.spec(), key(), key(), key()
        first = await h.agent.prepare(spec, key=prepare_key, deadline=soon())
        assert await h.agent.prepare(spec, key=prepare_key, deadline=soon()) == first
        await h.agent.start(spec.machine_id, spec.version, key=start_key, deadline=soon())
        await h.agent.start(spec.machine_id, spec.version, key=start_key, deadline=soon())
        exit_info = await stop(h, spec.machine_id, stop_key=stop_key)
        assert exit_info is not None
        assert await stop(h, spec.machine_id, stop_key=stop_key) == exit_info
        assert await stop(h, spec.machine_id) is None  # a new key: a new stop, of a machine that runs no more
        exits = [e for e in await h.agent.events(0) if e.machine_id == spec.machine_id and e.kind is HostEventKind.EXIT]
        assert len(exits) == 1  # one stop acted, whatever else the agent reports of its own

    async def test_start_needs_the_version_the_host_holds(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = h.spec()
        with pytest.raises(NotFoundError):
            await h.agent.start(spec.machine_id, spec.version, key=key(), deadline=soon())
        await h.agent.prepare(spec, key=key(), deadline=soon())
        with pytest.raises(FailedPreconditionError):
            await h.agent.start(spec.machine_id, ulid(), key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).state == HostState.CREATED

    async def test_the_next_version_replaces_a_stopped_one_not_a_running_one(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = await running(h)
        following = h.spec(spec.machine_id, env={"GENERATION": "2"})
        with pytest.raises(FailedPreconditionError):
            await h.agent.prepare(following, key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).version == spec.version
        await stop(h, spec.machine_id)
        await h.agent.prepare(following, key=key(), deadline=soon())
        held = await h.agent.status(spec.machine_id)
        assert (held.state, held.version) == (HostState.STOPPED, following.version)  # it rests as it was
        await h.agent.start(spec.machine_id, following.version, key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).state == HostState.RUNNING
        await h.agent.destroy(spec.machine_id, key=key(), deadline=soon())

    async def test_a_suspended_machine_resumes_on_start(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = await running(h)
        await h.agent.suspend(spec.machine_id, key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).state == HostState.PAUSED
        await h.agent.start(spec.machine_id, spec.version, key=key(), deadline=soon())
        assert (await h.agent.status(spec.machine_id)).state == HostState.RUNNING
        await h.agent.destroy(spec.machine_id, key=key(), deadline=soon())

    async def test_a_machine_never_started_stops_as_nothing(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = h.spec()
        await h.agent.prepare(spec, key=key(), deadline=soon())
        assert await stop(h, spec.machine_id) is None
        with pytest.raises(NotFoundError):
            await stop(h, machine_id())
        assert (await h.agent.status(machine_id())).state == HostState.ABSENT
        await h.agent.destroy(machine_id(), key=key(), deadline=soon())  # nothing there: nothing to do

    async def test_a_deadline_already_past_does_nothing(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec, past = h.spec(), Deadline(time.time() - 1)
        with pytest.raises(WaitTimeoutError):
            await h.agent.prepare(spec, key=key(), deadline=past)
        assert (await h.agent.status(spec.machine_id)).state == HostState.ABSENT
        with pytest.raises(WaitTimeoutError):
            await h.agent.create_volume(volume := volume_id(), h.volume_bytes, "ext4", key=key(), deadline=past)
        assert volume not in (await h.agent.stored_volumes())[0]

    async def test_prepare_refuses_a_missing_image_or_volume(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        with pytest.raises(NotFoundError):
            await h.agent.prepare(h.spec(image=h.missing_image), key=key(), deadline=soon())
        mounts = (VolumeAttachment(volume_id(), "/data"),)
        with pytest.raises(NotFoundError):
            await h.agent.prepare(h.spec(mounts=mounts), key=key(), deadline=soon())

    async def test_an_image_resolves_to_its_digest_before_anything_is_made(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        image_ref = await h.agent.resolve_image(h.image, None, deadline=soon())
        assert image_ref["digest"].startswith("sha256:") and image_ref["repository"]
        with pytest.raises(NotFoundError):
            await h.agent.resolve_image(h.missing_image, None, deadline=soon())
        with pytest.raises(WaitTimeoutError):
            await h.agent.resolve_image(h.image, None, deadline=Deadline(time.time() - 1))

    async def test_events_are_read_from_any_cursor(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        start = max([e.cursor for e in await h.agent.events(0, limit=10_000)], default=0)
        first, second = await running(h), await running(h)
        await stop(h, first.machine_id)
        await stop(h, second.machine_id)
        events = await h.agent.events(start)
        assert [(e.machine_id, e.version, e.kind) for e in events] == [
            (first.machine_id, first.version, HostEventKind.EXIT),
            (second.machine_id, second.version, HostEventKind.EXIT),
        ]
        assert events[0].cursor < events[1].cursor and events[0].exit is not None
        assert events[1].state == HostState.STOPPED
        assert await h.agent.events(events[0].cursor) == events[1:]
        await h.agent.acknowledge(events[0].cursor)
        assert await h.agent.events(events[0].cursor) == events[1:]
        assert await h.agent.events(events[1].cursor) == []

    async def test_a_long_poll_returns_with_the_next_event(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = await running(h)
        last = max([e.cursor for e in await h.agent.events(0, limit=10_000)], default=0)
        waiting = asyncio.ensure_future(h.agent.events(last, wait=WAIT))
        await asyncio.sleep(0)
        await stop(h, spec.machine_id)
        events = await asyncio.wait_for(waiting, WAIT)
        assert [(e.machine_id, e.kind) for e in events] == [(spec.machine_id, HostEventKind.EXIT)]

    async def test_exec_ps_and_memory_reach_a_running_machine(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        spec = await running(h)
        result = await h.agent.exec(spec.machine_id, ["echo", "hello"], None, 10, deadline=soon())
        assert (result.exit_code, result.stdout) == (0, b"hello\n")
        binary = bytes(range(256))
        assert (await h.agent.exec(spec.machine_id, ["cat"], binary, 10, deadline=soon())).stdout == binary
        assert any("sleep" in process.command for process in await h.agent.ps(spec.machine_id))
        await h.agent.set_memory(spec.machine_id, 512, deadline=soon())
        assert await h.agent.memory_usage(spec.machine_id) > 0
        assert await h.agent.reclaim_memory(spec.machine_id, 1, deadline=soon()) >= 0
        usage = await h.agent.machine_usage(spec.machine_id)
        assert usage is not None and usage.memory_bytes > 0 and usage.cpu_seconds >= 0
        chunk = await h.agent.read_output(spec.machine_id, OutputCursor(), 4096)
        again = await h.agent.read_output(spec.machine_id, chunk.cursor, 4096)
        assert again.data == b"" and again.cursor == chunk.cursor  # `sleep` writes nothing more
        await stop(h, spec.machine_id)
        assert await h.agent.machine_usage(spec.machine_id) is None
        with pytest.raises(FailedPreconditionError):
            await h.agent.exec(spec.machine_id, ["true"], None, 10, deadline=soon())
        with pytest.raises(NotFoundError):
            await h.agent.exec(machine_id(), ["true"], None, 10, deadline=soon())
        await h.agent.destroy(spec.machine_id, key=key(), deadline=soon())

    async def test_volumes_are_made_copied_measured_and_deleted(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        size, create_key = h.volume_bytes, key()
        original, copy, snap = volume_id(), volume_id(), snapshot_id()
        await h.agent.create_volume(original, size, "ext4", key=create_key, deadline=soon())
        await h.agent.create_volume(original, size, "ext4", key=create_key, deadline=soon())
        with pytest.raises(AlreadyExistsError):
            await h.agent.create_volume(original, size, "ext4", key=key(), deadline=soon())
        usage = await h.agent.volume_usage(original)
        assert 0 < usage.bytes_total <= size and usage.bytes_used < usage.bytes_total
        assert isinstance(await h.agent.extend_volume(original, 2 * size, key=key(), deadline=soon()), bool)
        snapshot = await h.agent.snapshot_volume(original, snap, key=key(), deadline=soon())
        assert snapshot.digest and snapshot.size >= 0
        await h.agent.create_volume(copy, 2 * size, "ext4", from_snapshot=snap, key=key(), deadline=soon())
        volumes, snapshots = await h.agent.stored_volumes()
        assert {original, copy} <= set(volumes) and snap in snapshots
        await h.agent.delete_snapshot(snap, key=key(), deadline=soon())
        for volume in (original, copy):
            await h.agent.delete_volume(volume, key=key(), deadline=soon())
        volumes, snapshots = await h.agent.stored_volumes()
        assert not {original, copy} & set(volumes) and snap not in snapshots
        with pytest.raises(NotFoundError):
            await h.agent.volume_usage(original)

    async def test_a_volume_a_machine_holds_is_not_deleted(self, agent_harness: AgentHarness) -> None:
        h = agent_harness
        held = volume_id()
        await h.agent.create_volume(held, h.volume_bytes, "ext4", key=key(), deadline=soon())
        spec = h.spec(mounts=(VolumeAttachment(held, "/data"),))
        await h.agent.prepare(spec, key=key(), deadline=soon())
        with pytest.raises(FailedPreconditionError):
            await h.agent.delete_volume(held, key=key(), deadline=soon())
        await h.agent.destroy(spec.machine_id, key=key(), deadline=soon())
        await h.agent.delete_volume(held, key=key(), deadline=soon())
        with pytest.raises(NotFoundError):
            await h.agent.snapshot_volume(held, snapshot_id(), key=key(), deadline=soon())
