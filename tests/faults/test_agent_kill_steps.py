"""SIGKILL of `aerodrome agent` at every step of every operation, for real (runc, loop devices, the test registry).

For each step of `HOST_STEPS`, the agent is started with AERODROME_FAULT_KILL_AT at that step, the operation is
sent with a fresh key, and the agent dies right after the step acted and before its COMPLETE was written. The
agent is started again: it resumes the operation from that step, in the background. The test then plays the
control plane's retry (the same key again, which joins the resumed run) and checks that it gets the operation's
result, that the host holds what the operation promised (machine state and version, volumes attached or not,
files), that the journal has each step's START and COMPLETE once and in order, and that a witness machine and
volume acknowledged before any kill are untouched.
Afterwards every machine and volume is removed through the agent and the host is checked clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aerodrome.agent import RemoteAgent
from aerodrome.agent.operations import OPERATION_STEPS
from aerodrome.cli.daemon import release_pool, unrouted_pool
from aerodrome.core import (
    FAULT_ENV,
    HOST_STEPS,
    AerodromeError,
    Deadline,
    ExitInfo,
    HostState,
    MachineVersionSpec,
    SnapshotInfo,
    VolumeAttachment,
    machine_id,
    snapshot_id,
    ulid,
    volume_id,
)
from aerodrome.runtime import host_leftovers
from aerodrome.runtime.registry import EmbeddedRegistry
from tests.support.registry import free_loopback_port

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("runc") is None or not os.path.exists("/dev/loop-control"),
        reason="needs root, runc and loop devices to run aerodrome agent",
    ),
]
START_TIMEOUT = 60.0
KILL_TIMEOUT = 60.0
MIB = 1 << 20
ORG = 4242  # an organisation no other test uses

Call = Callable[[RemoteAgent], Awaitable[Any]]


@dataclass
class AgentProcess:
    """`aerodrome agent` in a subprocess on `data_dir`; `start(fault=step)` arms the kill at that step."""

    data_dir: Path
    registry: str
    pool: str
    port: int = field(default_factory=free_loopback_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "agent.log"

    def start(self, fault: str = "") -> None:
        argv = [sys.executable, "-m", "aerodrome", "agent", "--data-dir", str(self.data_dir), "--no-egress"]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--registry", self.registry, "--machine-ipv4-pool", self.pool]
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | ({FAULT_ENV: fault} if fault else {})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"aerodrome agent exited early:\n{self.log()}")
            with contextlib.suppress(AerodromeError, OSError):
                if (self.data_dir / "agent.token").exists() and self.call(lambda agent: agent.info()):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"aerodrome agent did not answer in time:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-6000:]

    def call(self, call: Call) -> Any:
        return asyncio.run(self._call(call))

    async def _call(self, call: Call) -> Any:
        agent = RemoteAgent(f"http://127.0.0.1:{self.port}", (self.data_dir / "agent.token").read_text().strip())
        try:
            return await call(agent)
        finally:
            await agent.close()

    def wait_killed(self) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(timeout=KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def later() -> Deadline:
    return Deadline.after(120)


@dataclass
class Host:
    agent: AgentProcess
    image: str
    witness: tuple[str, str, str] = ("", "", "")  # (machine, version, volume)
    machine_ids: set[str] = field(default_factory=set)

    def spec(self, mid: str = "", mounts: tuple[VolumeAttachment, ...] = ()) -> MachineVersionSpec:
        mid = mid or machine_id()
        self.machine_ids.add(mid)
        return MachineVersionSpec(
            machine_id=mid,
            version=ulid(),
            app_name="agent-kill",
            org_network_id=ORG,
            image=self.image,
            init_exec=("sleep", "1000"),
            mounts=mounts,
        )

    def journal(self, key: str) -> tuple[str, list[tuple[str, str]]]:
        """The operation's status and its (step, phase) rows, read from the agent's journal file."""
        db = sqlite3.connect(f"file:{self.agent.data_dir / 'runtime' / 'agent.db'}?mode=ro", uri=True)
        try:
            status = db.execute("SELECT status FROM operations WHERE key = ?", (key,)).fetchone()
            rows = db.execute("SELECT step, phase FROM steps WHERE key = ? ORDER BY seq", (key,)).fetchall()
        finally:
            db.close()
        return (status[0] if status else ""), [(step, phase) for step, phase in rows]


@pytest.fixture(scope="module")
def host(registry: EmbeddedRegistry, busybox_image: str) -> Iterator[Host]:
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-agent-kill-"))
    data = workdir / "data"
    data.mkdir(mode=0o700)
    pool = unrouted_pool()
    state = Host(AgentProcess(data, registry.url, pool), busybox_image)
    try:
        state.agent.start()
        state.witness = _make_witness(state)
        yield state
        if state.agent.process is None or state.agent.process.poll() is not None:
            state.agent.start()
        state.agent.call(_remove_everything)
    finally:
        state.agent.stop()
    found = asyncio.run(host_leftovers(data, data / "runtime", sorted(state.machine_ids), pool4=pool))
    release_pool(pool)
    assert found == [], "left on the host:\n  " + "\n  ".join(found)
    shutil.rmtree(workdir)


def _make_witness(host: Host) -> tuple[str, str, str]:
    """A running machine with a volume attached, acknowledged before the first kill."""
    vid = volume_id()
    spec = host.spec(mounts=(VolumeAttachment(vid, "/data"),))

    async def make(agent: RemoteAgent) -> None:
        await agent.create_volume(vid, 16 * MIB, "ext4", key=ulid(), deadline=later())
        await agent.prepare(spec, key=ulid(), deadline=later())
        await agent.start(spec.machine_id, spec.version, key=ulid(), deadline=later())

    host.agent.call(make)
    return spec.machine_id, spec.version, vid


async def _remove_everything(agent: RemoteAgent) -> None:
    for machine in await agent.machines():
        await agent.destroy(machine.machine_id, key=ulid(), deadline=later())
    volumes, snapshots = await agent.stored_volumes()
    for vid in volumes:
        await agent.delete_volume(vid, key=ulid(), deadline=later())
    for sid in snapshots:
        await agent.delete_snapshot(sid, key=ulid(), deadline=later())


# -- each operation: what is there before, the call the kill interrupts, and what must hold after


@dataclass
class Case:
    host: Host
    kind: str
    vid: str = field(default_factory=volume_id)
    sid: str = field(default_factory=snapshot_id)
    spec: MachineVersionSpec | None = None

    @property
    def mid(self) -> str:
        assert self.spec is not None
        return self.spec.machine_id

    def setup(self) -> None:
        kind, volume = self.kind, (VolumeAttachment(self.vid, "/data"),)
        mounts = volume if kind in ("prepare", "destroy") else ()
        if kind in ("prepare", "start", "stop", "suspend", "destroy"):
            self.spec = self.host.spec(mounts=mounts)
        needs_volume = kind not in ("start", "stop", "suspend", "create_volume")

        async def setup(agent: RemoteAgent) -> None:
            if needs_volume:
                await agent.create_volume(self.vid, 16 * MIB, "ext4", key=ulid(), deadline=later())
            if kind == "delete_snapshot":
                await agent.snapshot_volume(self.vid, self.sid, key=ulid(), deadline=later())
            if kind in ("start", "stop", "suspend", "destroy"):
                assert self.spec is not None
                await agent.prepare(self.spec, key=ulid(), deadline=later())
            if kind in ("stop", "suspend", "destroy"):
                await agent.start(self.mid, self.spec.version if self.spec else "", key=ulid(), deadline=later())

        self.host.agent.call(setup)

    def operation(self, key: str) -> Call:
        spec, kind = self.spec, self.kind
        calls: dict[str, Call] = {
            "prepare": lambda a: a.prepare(spec, key=key, deadline=later()),  # type: ignore[arg-type]
            "start": lambda a: a.start(self.mid, spec.version, key=key, deadline=later()),  # type: ignore[union-attr]
            "stop": lambda a: a.stop(self.mid, signal=15, timeout=5, key=key, deadline=later()),
            "suspend": lambda a: a.suspend(self.mid, key=key, deadline=later()),
            "destroy": lambda a: a.destroy(self.mid, key=key, deadline=later()),
            "create_volume": lambda a: a.create_volume(self.vid, 16 * MIB, "ext4", key=key, deadline=later()),
            "extend_volume": lambda a: a.extend_volume(self.vid, 32 * MIB, key=key, deadline=later()),
            "snapshot_volume": lambda a: a.snapshot_volume(self.vid, self.sid, key=key, deadline=later()),
            "delete_volume": lambda a: a.delete_volume(self.vid, key=key, deadline=later()),
            "delete_snapshot": lambda a: a.delete_snapshot(self.sid, key=key, deadline=later()),
        }
        return calls[kind]

    async def check(self, agent: RemoteAgent, result: Any) -> None:
        """The host holds what the operation promised."""
        kind = self.kind
        volumes, snapshots = await agent.stored_volumes()
        if self.spec is not None:
            held = await agent.status(self.mid)
            expected = {
                "prepare": HostState.CREATED,
                "start": HostState.RUNNING,
                "stop": HostState.STOPPED,
                "suspend": HostState.PAUSED,
                "destroy": HostState.ABSENT,
            }[kind]
            assert held.state is expected, held
            assert held.version == ("" if kind == "destroy" else self.spec.version)
        if kind == "prepare":
            assert result.version == self.spec.version and result.private_ip  # type: ignore[union-attr]
            await agent.start(self.mid, self.spec.version, key=ulid(), deadline=later())  # type: ignore[union-attr]
            probe = await agent.exec(
                self.mid, ["sh", "-c", "echo ok > /data/f && cat /data/f"], None, 10, deadline=later()
            )
            assert probe.stdout == b"ok\n"  # its volume is mounted into it
        if kind == "stop":
            assert isinstance(result, ExitInfo)
        if kind == "destroy":  # detached: the volume may be deleted
            assert self.mid not in [m.machine_id for m in await agent.machines()]
            await agent.delete_volume(self.vid, key=ulid(), deadline=later())
        if kind in ("create_volume", "extend_volume", "snapshot_volume"):
            assert self.vid in volumes
        if kind == "extend_volume":
            assert isinstance(result, bool) and (await agent.volume_usage(self.vid)).bytes_total > 16 * MIB
        if kind == "snapshot_volume":
            assert isinstance(result, SnapshotInfo) and self.sid in snapshots
        if kind == "delete_volume":
            assert self.vid not in volumes
        if kind == "delete_snapshot":
            assert self.sid not in snapshots

    async def cleanup(self, agent: RemoteAgent) -> None:
        if self.spec is not None:
            await agent.destroy(self.mid, key=ulid(), deadline=later())
        await agent.delete_snapshot(self.sid, key=ulid(), deadline=later())
        await agent.delete_volume(self.vid, key=ulid(), deadline=later())


def _send_in_background(agent: AgentProcess, call: Call) -> None:
    """The call the kill interrupts; its answer never comes (the agent dies under it)."""

    def send() -> None:
        with contextlib.suppress(AerodromeError, OSError):
            agent.call(call)

    threading.Thread(target=send, name="interrupted call", daemon=True).start()


@pytest.mark.parametrize("step", list(HOST_STEPS))
def test_a_kill_at_the_step_resumes_the_operation_to_its_end(host: Host, step: str) -> None:
    kind, name = step.split(".")[1:]
    case = Case(host, kind)
    case.setup()
    host.agent.stop()
    host.agent.start(fault=step)
    key = ulid()
    _send_in_background(host.agent, case.operation(key))
    assert host.agent.wait_killed() == -signal.SIGKILL, host.agent.log()
    assert f"killed at step {step}\n" in host.agent.log()
    status, rows = host.journal(key)
    steps = OPERATION_STEPS[kind]
    done = steps[: steps.index(name)]
    assert status == "running"
    assert rows == [(s, p) for s in done for p in ("START", "COMPLETE")] + [(name, "START")]  # as it was cut

    host.agent.start()  # resumes it, in the background

    async def retry_and_check(agent: RemoteAgent) -> None:
        result = await case.operation(key)(agent)  # the control plane's retry: joins the resumed run, or its result
        status, rows = host.journal(key)
        assert status == "done"
        assert rows == [(s, p) for s in steps for p in ("START", "COMPLETE")]  # each step once, in order
        await case.check(agent, result)
        mid, version, vid = host.witness
        witness = await agent.status(mid)
        assert (witness.state, witness.version) == (HostState.RUNNING, version)
        assert vid in (await agent.stored_volumes())[0]
        await case.cleanup(agent)

    host.agent.call(retry_and_check)
    if case.spec is not None:
        data = host.agent.data_dir
        assert asyncio.run(host_leftovers(data, data / "runtime", [case.mid])) == []
