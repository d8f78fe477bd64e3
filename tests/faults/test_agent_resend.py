"""A keyed call whose agent dies under it gets the operation's real result once the agent is back: `aerodrome
agent` (real runc) killed by SIGKILL in the middle of a `start` and of a `prepare` (AERODROME_FAULT_KILL_AT),
started again while the call waits; `RemoteAgent` sends the call again with the same key, the agent's step
runner resumes it, and the one call answers as if nothing happened, its journal showing each step once."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aerodrome.agent import RemoteAgent
from aerodrome.agent.operations import OPERATION_STEPS
from aerodrome.cli.daemon import release_pool, unrouted_pool
from aerodrome.core import Deadline, HostState, UnavailableError, ulid
from aerodrome.runtime import host_leftovers
from aerodrome.runtime.registry import EmbeddedRegistry
from tests.faults.test_agent_kill_steps import AgentProcess, Host, pytestmark  # noqa: F401 (root and runc)

DEADLINE = 120.0  # an upper bound, never a measurement


@pytest.fixture
def host(registry: EmbeddedRegistry, busybox_image: str) -> Iterator[Host]:
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-agent-resend-"))
    data = workdir / "data"
    data.mkdir(mode=0o700)
    pool = unrouted_pool()
    state = Host(AgentProcess(data, registry.url, pool), busybox_image)
    try:
        state.agent.start()
        yield state
        if state.agent.process is None or state.agent.process.poll() is not None:
            state.agent.start()
        for mid in state.machine_ids:
            state.agent.call(lambda agent, mid=mid: agent.destroy(mid, key=ulid(), deadline=Deadline.after(60)))
    finally:
        state.agent.stop()
    found = asyncio.run(host_leftovers(data, data / "runtime", sorted(state.machine_ids), pool4=pool))
    release_pool(pool)
    assert found == [], "left on the host:\n  " + "\n  ".join(found)
    shutil.rmtree(workdir)


def remote_of(agent: AgentProcess, *, resend_for: float) -> RemoteAgent:
    token = (agent.data_dir / "agent.token").read_text().strip()
    return RemoteAgent(f"http://127.0.0.1:{agent.port}", token, resend_for=resend_for)


def restart_when_killed(agent: AgentProcess) -> threading.Thread:
    """The operator's restart: as soon as the agent died at its fault, it is started again (no fault)."""

    def restart() -> None:
        assert agent.wait_killed() == -signal.SIGKILL
        agent.start()

    thread = threading.Thread(target=restart, name="restart the agent", daemon=True)
    thread.start()
    return thread


def journal_steps(host: Host, key: str, kind: str) -> None:
    status, rows = host.journal(key)
    assert status == "done"
    assert rows == [(s, p) for s in OPERATION_STEPS[kind] for p in ("START", "COMPLETE")]  # each once, in order


@pytest.mark.parametrize("kind", ["prepare", "start"])
def test_a_call_cut_off_by_the_agent_s_death_answers_once_it_is_back(host: Host, kind: str) -> None:
    spec = host.spec()
    if kind == "start":
        host.agent.call(lambda agent: agent.prepare(spec, key=ulid(), deadline=Deadline.after(DEADLINE)))
    step = f"agent.{kind}.{OPERATION_STEPS[kind][-1]}"  # dies after the last step acted, before it is written
    host.agent.stop()
    host.agent.start(fault=step)
    restarted = restart_when_killed(host.agent)
    key = ulid()

    async def cut_off(agent: RemoteAgent) -> object:  # the one call, sent once by the caller
        deadline = Deadline.after(DEADLINE)
        if kind == "prepare":
            return await agent.prepare(spec, key=key, deadline=deadline)
        return await agent.start(spec.machine_id, spec.version, key=key, deadline=deadline)

    async def once() -> object:
        remote = remote_of(host.agent, resend_for=DEADLINE)
        try:
            return await cut_off(remote)
        finally:
            await remote.close()

    result = asyncio.run(once())
    restarted.join(DEADLINE)
    assert f"killed at step {step}\n" in host.agent.log()
    journal_steps(host, key, kind)
    held = host.agent.call(lambda agent: agent.status(spec.machine_id))
    if kind == "prepare":
        assert result is not None and held.state is HostState.CREATED and held.version == spec.version
    else:
        assert held.state is HostState.RUNNING and held.version == spec.version


def test_without_a_resend_window_the_outcome_is_unknown(host: Host) -> None:
    spec = host.spec()
    step = f"agent.prepare.{OPERATION_STEPS['prepare'][-1]}"
    host.agent.stop()
    host.agent.start(fault=step)

    async def cut_off() -> None:
        remote = remote_of(host.agent, resend_for=0)
        try:
            with pytest.raises(UnavailableError, match="its outcome is unknown; send it again with the same key"):
                await remote.prepare(spec, key=ulid(), deadline=Deadline.after(DEADLINE))
        finally:
            await remote.close()

    asyncio.run(cut_off())
    assert host.agent.wait_killed() == -signal.SIGKILL
