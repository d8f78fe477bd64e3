"""`FakeAgent`: a `HostAgent` held in memory, for the control plane's logic tests that need no root.

It keeps the contract (`tests/agent/conformance.py` runs against it): machine states and versions, events
with cursors, replies replayed by idempotency key, volumes and snapshots as byte counts, deadlines, and the
error kinds the real agent raises. What a real host does on its own is done by the test through its helpers:
`exit` (the main process ends), `write_output`, `fill` (a volume's bytes used) and `reachable = False`.

A key names one call: the same key sent again returns what the first call returned, without acting; a call
that failed recorded nothing, so it may be sent again with its key.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aerodrome.core import (
    AlreadyExistsError,
    Deadline,
    ExecResult,
    ExitInfo,
    FailedPreconditionError,
    HostEvent,
    HostEventKind,
    HostInfo,
    HostMachine,
    HostState,
    HostUnreachableError,
    InsufficientStorageError,
    InvalidArgumentError,
    MachineUsage,
    MachineVersionSpec,
    NotFoundError,
    OutputChunk,
    OutputCursor,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    SnapshotInfo,
    VolumeUsage,
    WaitTimeoutError,
    rfc3339,
)

T = TypeVar("T")
BLOCK = 4096
KEYS_KEPT = 10_000
FSTYPES = ("ext4",)
MACHINE_RSS = 16 * 1024 * 1024  # what a running fake machine uses, before any reclaim


@dataclass
class FakeMachine:
    spec: MachineVersionSpec
    prepared: PreparedVersion
    state: HostState = HostState.CREATED
    memory_mb: int = 0
    reclaimed_mb: int = 0
    output: bytearray = field(default_factory=bytearray)
    signals: list[int] = field(default_factory=list)


@dataclass
class FakeVolume:
    size_bytes: int
    fstype: str
    used_bytes: int = 0


class FakeAgent:
    """One host, in memory. `capacity_bytes` bounds the volumes' sizes together (InsufficientStorageError past
    it); `missing_images` are references whose pull fails with NotFoundError."""

    def __init__(
        self,
        name: str = "fake",
        region: str = "iad",
        *,
        capacity_bytes: int = 1024**4,
        missing_images: frozenset[str] = frozenset(),
        cpus: int = 0,
        memory_mb: int = 0,
    ) -> None:
        self.name, self.region = name, region
        self.capacity_bytes = capacity_bytes
        self.cpus, self.memory_mb = cpus, memory_mb  # what info() reports for placement (0: not reported)
        self.missing_images = missing_images
        self.reachable = True
        self.calls: dict[str, int] = {}  # method → times it acted (a replayed key does not count)
        self._machines: dict[str, FakeMachine] = {}
        self._volumes: dict[str, FakeVolume] = {}
        self._snapshots: dict[str, FakeVolume] = {}
        self._replies: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._events: list[HostEvent] = []
        self._cursor = 0
        self._new_event = asyncio.Event()
        self._addresses = 0

    # what a host does on its own, for tests

    def exit(self, machine_id: str, exit_code: int = 0, *, signal: int = -1, oom_killed: bool = False) -> ExitInfo:
        """The machine's main process ends by itself."""
        machine = self._held(machine_id)
        if machine.state not in (HostState.RUNNING, HostState.PAUSED):
            raise FailedPreconditionError(f"machine {machine_id} is not running")
        info = ExitInfo(exit_code, signal, oom_killed, requested_stop=False, exited_at=rfc3339(time.time()))
        self._stopped(machine, info)
        return info

    def write_output(self, machine_id: str, data: bytes) -> None:
        self._held(machine_id).output.extend(data)

    def fill(self, volume_id: str, used_bytes: int) -> None:
        volume = self._volume(volume_id)
        volume.used_bytes = min(used_bytes, volume.size_bytes)

    # the contract

    async def info(self) -> HostInfo:
        self._reach()
        return HostInfo(
            self.name, self.region, cpus=self.cpus, memory_mb=self.memory_mb, disk_bytes=self.capacity_bytes
        )

    async def resolve_image(self, image: str, grant: PullGrant | None, *, deadline: Deadline) -> dict[str, Any]:
        self._begin(deadline)
        if image in self.missing_images:
            raise NotFoundError(f"image {image} not found")
        return self._image_ref(image, "")

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        return await self._once("prepare", key, (spec,), deadline, lambda: self._prepare(spec))

    async def _prepare(self, spec: MachineVersionSpec) -> PreparedVersion:
        if not spec.machine_id or not spec.version or not spec.image:
            raise InvalidArgumentError("a version needs a machine id, a version and an image")
        if spec.memory_mb < 1 or spec.cpus < 1:
            raise InvalidArgumentError("a machine needs at least 1 CPU and 1 MiB")
        if spec.image in self.missing_images:
            raise NotFoundError(f"image {spec.image} not found")
        for mount in spec.mounts:
            self._volume(mount.volume_id)
        current = self._machines.get(spec.machine_id)
        if current is not None and current.state in (HostState.RUNNING, HostState.PAUSED):
            raise FailedPreconditionError(f"machine {spec.machine_id} runs: stop it before preparing a version")
        image_ref = self._image_ref(spec.image, spec.image_digest)
        prepared = PreparedVersion(spec.version, image_ref, *self._address(spec, current))
        resting = current.state if current is not None else HostState.CREATED  # a stopped one stays stopped
        self._machines[spec.machine_id] = FakeMachine(spec, prepared, resting, memory_mb=spec.memory_mb)
        return prepared

    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        await self._once("start", key, (machine_id, version), deadline, lambda: self._start(machine_id, version))

    async def _start(self, machine_id: str, version: str) -> None:
        machine = self._held(machine_id)
        if machine.spec.version != version:
            raise FailedPreconditionError(f"machine {machine_id} holds version {machine.spec.version}, not {version}")
        machine.state = HostState.RUNNING
        machine.reclaimed_mb = 0

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        async def act() -> ExitInfo | None:
            machine = self._held(machine_id)
            if machine.state not in (HostState.RUNNING, HostState.PAUSED):
                return None
            info = ExitInfo(128 + signal, signal, requested_stop=True, exited_at=rfc3339(time.time()))
            self._stopped(machine, info)
            return info

        return await self._once("stop", key, (machine_id, signal, timeout), deadline, act)

    async def suspend(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        async def act() -> None:
            machine = self._held(machine_id)
            if machine.state is HostState.PAUSED:
                return
            self._running(machine)
            machine.state = HostState.PAUSED

        await self._once("suspend", key, (machine_id,), deadline, act)

    async def signal(self, machine_id: str, signal: int, *, deadline: Deadline) -> None:
        self._begin(deadline)
        if not 1 <= signal <= 64:
            raise InvalidArgumentError(f"{signal} is not a signal")
        self._running(self._held(machine_id)).signals.append(signal)

    async def destroy(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        async def act() -> None:
            self._machines.pop(machine_id, None)

        await self._once("destroy", key, (machine_id,), deadline, act)

    async def status(self, machine_id: str) -> HostMachine:
        self._reach()
        machine = self._machines.get(machine_id)
        if machine is None:
            return HostMachine(machine_id, HostState.ABSENT)
        return HostMachine(machine_id, machine.state, machine.spec.version)

    async def machines(self) -> list[HostMachine]:
        self._reach()
        return [HostMachine(i, m.state, m.spec.version) for i, m in sorted(self._machines.items())]

    async def exec(
        self,
        machine_id: str,
        command: list[str],
        stdin: bytes | None,
        timeout: float,
        *,
        deadline: Deadline,
        container: str = "",
    ) -> ExecResult:
        self._begin(deadline)
        if container:
            raise NotFoundError(f"container {container!r} not found in machine {machine_id}")
        self._running(self._held(machine_id))
        if not command:
            raise InvalidArgumentError("exec needs a command")
        program, args = command[0], command[1:]
        if program == "echo":
            return ExecResult(0, (" ".join(args) + "\n").encode(), b"")
        if program == "cat" and not args:
            return ExecResult(0, stdin or b"", b"")
        if program in ("true", "false"):
            return ExecResult(int(program == "false"), b"", b"")
        return ExecResult(127, b"", f"sh: {program}: not found\n".encode())

    async def ps(self, machine_id: str) -> list[ProcessInfo]:
        self._reach()
        machine = self._running(self._held(machine_id))
        argv = machine.spec.init_exec or (*machine.spec.init_entrypoint, *machine.spec.init_cmd) or ("/init",)
        return [ProcessInfo(1, " ".join(argv), 0, MACHINE_RSS, 0, 0, "/")]

    async def set_memory(self, machine_id: str, memory_mb: int, *, deadline: Deadline) -> None:
        self._begin(deadline)
        if memory_mb < 1:
            raise InvalidArgumentError("memory_mb must be at least 1")
        self._held(machine_id).memory_mb = memory_mb

    async def reclaim_memory(self, machine_id: str, amount_mb: int, *, deadline: Deadline) -> int:
        self._begin(deadline)
        machine = self._running(self._held(machine_id))
        reclaimed = min(max(0, amount_mb), MACHINE_RSS // 2**20 - machine.reclaimed_mb)
        machine.reclaimed_mb += reclaimed
        return reclaimed

    async def memory_usage(self, machine_id: str) -> int:
        self._reach()
        machine = self._held(machine_id)
        if machine.state not in (HostState.RUNNING, HostState.PAUSED):
            return 0
        return MACHINE_RSS - machine.reclaimed_mb * 2**20

    async def machine_usage(self, machine_id: str) -> MachineUsage | None:
        self._reach()
        machine = self._machines.get(machine_id)
        if machine is None or machine.state not in (HostState.RUNNING, HostState.PAUSED):
            return None
        memory = MACHINE_RSS - machine.reclaimed_mb * 2**20
        return MachineUsage(0.0, 0.0, 0.0, memory, machine.memory_mb * 2**20, 0, 0)

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk:
        self._reach()
        machine = self._held(machine_id)
        file = f"fake:{machine_id}"
        offset = cursor.offset if cursor.file == file else 0
        data = bytes(machine.output[offset : offset + max(0, limit)])
        return OutputChunk(data, OutputCursor(file, offset + len(data)))

    async def events(self, after: int, *, limit: int = 500, wait: float = 0.0) -> list[HostEvent]:
        self._reach()
        if wait > 0 and not self._after(after, 1):
            self._new_event.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._new_event.wait()
            except TimeoutError:
                pass
        return self._after(after, limit)

    async def acknowledge(self, cursor: int) -> None:
        self._reach()
        self._events = [event for event in self._events if event.cursor > cursor]

    async def create_volume(
        self,
        volume_id: str,
        size_bytes: int,
        fstype: str,
        *,
        from_snapshot: str | None = None,
        from_volume: str | None = None,
        key: str,
        deadline: Deadline,
    ) -> None:
        async def act() -> None:
            if volume_id in self._volumes:
                raise AlreadyExistsError(f"volume {volume_id} exists")
            if size_bytes < 1 or fstype not in FSTYPES:
                raise InvalidArgumentError(f"a volume needs a size and a filesystem of {FSTYPES}")
            source = self._source(from_snapshot, from_volume)
            if source is not None and source.used_bytes > size_bytes:
                raise InvalidArgumentError("the volume is smaller than what it is made from")
            if sum(v.size_bytes for v in self._volumes.values()) + size_bytes > self.capacity_bytes:
                raise InsufficientStorageError(f"volume {volume_id}")
            self._volumes[volume_id] = FakeVolume(size_bytes, fstype, source.used_bytes if source else 0)

        fields = (volume_id, size_bytes, fstype, from_snapshot, from_volume)
        await self._once("create_volume", key, fields, deadline, act)

    async def extend_volume(self, volume_id: str, size_bytes: int, *, key: str, deadline: Deadline) -> bool:
        async def act() -> bool:
            volume = self._volume(volume_id)
            if size_bytes <= volume.size_bytes:
                raise InvalidArgumentError(f"volume {volume_id} is {volume.size_bytes} bytes already")
            volume.size_bytes = size_bytes
            return any(
                machine.state is HostState.RUNNING and any(m.volume_id == volume_id for m in machine.spec.mounts)
                for machine in self._machines.values()
            )

        return await self._once("extend_volume", key, (volume_id, size_bytes), deadline, act)

    async def snapshot_volume(self, volume_id: str, snapshot_id: str, *, key: str, deadline: Deadline) -> SnapshotInfo:
        async def act() -> SnapshotInfo:
            volume = self._volume(volume_id)
            if snapshot_id in self._snapshots:
                raise AlreadyExistsError(f"snapshot {snapshot_id} exists")
            self._snapshots[snapshot_id] = FakeVolume(volume.size_bytes, volume.fstype, volume.used_bytes)
            digest = hashlib.sha256(f"{snapshot_id}:{volume.used_bytes}".encode()).hexdigest()
            return SnapshotInfo(volume.used_bytes, f"sha256:{digest}")

        return await self._once("snapshot_volume", key, (volume_id, snapshot_id), deadline, act)

    async def delete_volume(self, volume_id: str, *, key: str, deadline: Deadline) -> None:
        async def act() -> None:
            self._volume(volume_id)
            for machine_id, machine in self._machines.items():
                if any(mount.volume_id == volume_id for mount in machine.spec.mounts):
                    raise FailedPreconditionError(f"volume {volume_id} is attached to machine {machine_id}")
            del self._volumes[volume_id]

        await self._once("delete_volume", key, (volume_id,), deadline, act)

    async def delete_snapshot(self, snapshot_id: str, *, key: str, deadline: Deadline) -> None:
        async def act() -> None:
            if self._snapshots.pop(snapshot_id, None) is None:
                raise NotFoundError(f"snapshot {snapshot_id} not found")

        await self._once("delete_snapshot", key, (snapshot_id,), deadline, act)

    async def volume_usage(self, volume_id: str) -> VolumeUsage:
        self._reach()
        volume = self._volume(volume_id)
        blocks, free = volume.size_bytes // BLOCK, (volume.size_bytes - volume.used_bytes) // BLOCK
        return VolumeUsage(BLOCK, blocks, free, free)

    async def stored_volumes(self) -> tuple[list[str], list[str]]:
        self._reach()
        return sorted(self._volumes), sorted(self._snapshots)

    async def close(self) -> None:
        return None

    # the parts

    def _reach(self) -> None:
        if not self.reachable:
            raise HostUnreachableError(f"agent {self.name} is unreachable")

    def _begin(self, deadline: Deadline) -> None:
        self._reach()
        if deadline.remaining() <= 0:
            raise WaitTimeoutError("the request's deadline had passed when it reached the agent")

    async def _once(
        self, method: str, key: str, request: tuple[Any, ...], deadline: Deadline, act: Callable[[], Awaitable[T]]
    ) -> T:
        """`act`'s result, or what the call first sent with `key` returned; a key sent with another request is
        refused, so a mix-up of keys never returns another call's result."""
        self._begin(deadline)
        if not key:
            raise InvalidArgumentError("every mutating call needs an idempotency key")
        fingerprint = repr((method, request))
        if key in self._replies:
            sent, result = self._replies[key]
            if sent != fingerprint:
                raise InvalidArgumentError(f"idempotency key {key!r} was used for another request")
            return result  # type: ignore[no-any-return]
        result = await act()
        self.calls[method] = self.calls.get(method, 0) + 1
        self._replies[key] = (fingerprint, result)
        if len(self._replies) > KEYS_KEPT:
            self._replies.popitem(last=False)
        return result

    def _held(self, machine_id: str) -> FakeMachine:
        machine = self._machines.get(machine_id)
        if machine is None:
            raise NotFoundError(f"machine {machine_id} is not on this host")
        return machine

    def _running(self, machine: FakeMachine) -> FakeMachine:
        if machine.state is not HostState.RUNNING:
            raise FailedPreconditionError(f"machine {machine.spec.machine_id} is {machine.state.value}, not running")
        return machine

    def _volume(self, volume_id: str) -> FakeVolume:
        volume = self._volumes.get(volume_id)
        if volume is None:
            raise NotFoundError(f"volume {volume_id} not found")
        return volume

    def _source(self, from_snapshot: str | None, from_volume: str | None) -> FakeVolume | None:
        if from_snapshot is not None:
            if from_snapshot not in self._snapshots:
                raise NotFoundError(f"snapshot {from_snapshot} not found")
            return self._snapshots[from_snapshot]
        return self._volume(from_volume) if from_volume is not None else None

    def _stopped(self, machine: FakeMachine, info: ExitInfo) -> None:
        machine.state = HostState.STOPPED
        self._cursor += 1
        spec = machine.spec
        event = HostEvent(self._cursor, HostEventKind.EXIT, spec.machine_id, spec.version, HostState.STOPPED, info)
        self._events.append(event)
        self._new_event.set()

    def _after(self, after: int, limit: int) -> list[HostEvent]:
        return [event for event in self._events if event.cursor > after][: max(0, limit)]

    def _image_ref(self, image: str, digest: str) -> dict[str, Any]:
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        digest = digest or "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        return {"registry": "", "repository": repository, "tag": tag or "latest", "digest": digest, "labels": {}}

    def _address(self, spec: MachineVersionSpec, current: FakeMachine | None) -> tuple[str, str]:
        if current is not None:  # a machine keeps its addresses across versions
            return current.prepared.private_ip, current.prepared.private_ipv4
        self._addresses += 1
        v6 = ipaddress.IPv6Address(f"fdaa:0:{spec.org_network_id:x}::") + self._addresses
        v4 = ipaddress.IPv4Address("172.30.0.1") + self._addresses
        return str(v6), str(v4)


def open_fake_agent(data_dir: Path, **settings: Any) -> FakeAgent:
    """`aerodrome.agent.open_local_agent`'s signature, for `aerodrome agent`'s tests (AERODROME_TEST_AGENT_FACTORY)."""
    return FakeAgent(name=settings.get("name", "fake"), region=settings.get("region", "iad"))
