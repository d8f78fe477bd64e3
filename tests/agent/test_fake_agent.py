"""What `FakeAgent` adds to the contract for the control plane's tests: a host's own doings, driven by the test."""

from __future__ import annotations

import pytest

from aerodrome.core import (
    Deadline,
    HostEventKind,
    HostState,
    InsufficientStorageError,
    InvalidArgumentError,
    MachineVersionSpec,
    OutputCursor,
    UnavailableError,
    machine_id,
    ulid,
)
from tests.support.fake_agent import FakeAgent


def later() -> Deadline:
    return Deadline.after(10)


async def running(agent: FakeAgent) -> MachineVersionSpec:
    spec = MachineVersionSpec(machine_id(), ulid(), "fake", 1, "registry.local/fake/app:1")
    await agent.prepare(spec, key=ulid(), deadline=later())
    await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())
    return spec


async def test_an_exit_of_its_own_is_an_event() -> None:
    agent = FakeAgent()
    spec = await running(agent)
    info = agent.exit(spec.machine_id, 3)
    assert (await agent.status(spec.machine_id)).state == HostState.STOPPED
    [event] = await agent.events(0)
    assert (event.kind, event.exit, event.version) == (HostEventKind.EXIT, info, spec.version)
    assert not info.requested_stop and info.exit_code == 3


async def test_a_key_sent_with_another_request_is_refused() -> None:
    agent = FakeAgent()
    spec = await running(agent)
    await agent.stop(spec.machine_id, signal=15, timeout=1, key="k", deadline=later())
    with pytest.raises(InvalidArgumentError, match="another request"):
        await agent.destroy(spec.machine_id, key="k", deadline=later())
    assert agent.calls == {"prepare": 1, "start": 1, "stop": 1}


async def test_output_is_read_from_a_cursor() -> None:
    agent = FakeAgent()
    spec = await running(agent)
    agent.write_output(spec.machine_id, b"one\ntwo\n")
    first = await agent.read_output(spec.machine_id, OutputCursor(), 4)
    second = await agent.read_output(spec.machine_id, first.cursor, 100)
    assert (first.data, second.data) == (b"one\n", b"two\n")


async def test_volumes_are_byte_counts_within_the_capacity() -> None:
    agent = FakeAgent(capacity_bytes=100 * 4096)
    await agent.create_volume("vol_a", 60 * 4096, "ext4", key=ulid(), deadline=later())
    agent.fill("vol_a", 10 * 4096)
    assert (await agent.volume_usage("vol_a")).bytes_used == 10 * 4096
    with pytest.raises(InsufficientStorageError):
        await agent.create_volume("vol_b", 60 * 4096, "ext4", key=ulid(), deadline=later())
    with pytest.raises(InvalidArgumentError):
        await agent.create_volume("vol_c", 4096, "zfs", key=ulid(), deadline=later())


async def test_an_unreachable_agent_answers_nothing() -> None:
    agent = FakeAgent()
    agent.reachable = False
    with pytest.raises(UnavailableError):
        await agent.status(machine_id())
    with pytest.raises(UnavailableError):
        await agent.events(0)
