"""The in-process host agent: `HostAgent` over this host's runc runtime, loop-device volumes and image store.

It does the host-local steps the control plane used to do itself: pulls the image, resolves the argv and env of
a version over it, mounts the machine's volumes by id (host paths stay here), makes the sandbox, and grows a
volume whose online resize was refused before its machine next starts. Exits become events in its own journal,
committed before the runtime marks them reported; a repeated idempotency key returns the recorded result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aerodrome.agent.capacity import host_info
from aerodrome.agent.journal import Journal, exit_from_json, exit_to_json
from aerodrome.agent.specs import pinned, sandbox_spec
from aerodrome.core import (
    IMAGE_SIZE_KEY,
    AerodromeError,
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
    ImageInfo,
    MachineUsage,
    MachineVersionSpec,
    NotFoundError,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    SandboxStatus,
    SnapshotInfo,
    VolumeMount,
    VolumeUsage,
    WaitTimeoutError,
    rfc3339,
)
from aerodrome.core.agent import JSON
from aerodrome.core.logs import OutputChunk, OutputCursor
from aerodrome.runtime import LoopVolumeBackend, RuncRuntime, machine_usage

T = TypeVar("T")
log = logging.getLogger("aerodrome.agent")
JOURNAL = "agent.db"


class LocalAgent:
    """Build it with `open` inside the running event loop: it re-adopts what a previous process left."""

    def __init__(
        self, runtime: RuncRuntime, volumes: LoopVolumeBackend, journal: Journal, *, name: str, region: str
    ) -> None:
        self.runtime = runtime
        self.volumes = volumes
        self._journal = journal
        self._name, self._region = name, region
        self._appended = asyncio.Event()  # set, and replaced, at every event appended
        self._inflight: dict[str, asyncio.Task[Any]] = {}  # operations by idempotency key, until recorded
        # Volumes whose file grew while mounted and the kernel refused to grow the filesystem online: remounted
        # (which grows them) before their machine next starts.
        self._grow_pending: set[str] = set()

    @classmethod
    async def open(
        cls,
        runtime: RuncRuntime,
        volumes: LoopVolumeBackend,
        data_dir: Path,
        *,
        name: str = "local",
        region: str = "iad",
    ) -> LocalAgent:
        """Open the journal under `data_dir`, then re-adopt the runtime's machines (exits found meanwhile go
        into the journal) and the volumes' mounts."""
        journal = await asyncio.to_thread(Journal.open, data_dir / JOURNAL)
        agent = cls(runtime, volumes, journal, name=name, region=region)
        runtime.on_exit(agent._exited)
        await runtime.recover()
        await volumes.recover()
        await agent._find_pending_grows()
        return agent

    async def info(self) -> HostInfo:
        return host_info(self._name, self._region, self.runtime.layout.root)  # the data directory's filesystem

    # exits, as events

    async def _exited(self, machine_id: str, exit: ExitInfo) -> None:
        version = self.runtime.version_of(machine_id)
        at = exit.exited_at or rfc3339(time.time())
        await self._journal.append(HostEventKind.EXIT, machine_id, version, HostState.STOPPED, exit, at)
        self._appended.set()
        self._appended = asyncio.Event()

    async def events(self, after: int, *, limit: int = 500, wait: float = 0.0) -> list[HostEvent]:
        appended = self._appended  # taken before the read: an append after it wakes this wait
        found = await self._journal.events(after, limit)
        if found or wait <= 0:
            return found
        try:
            await asyncio.wait_for(appended.wait(), wait)
        except TimeoutError:
            return []
        return await self._journal.events(after, limit)

    async def acknowledge(self, cursor: int) -> None:
        await self._journal.acknowledge(cursor)

    # idempotency and deadlines

    async def _once(
        self,
        key: str,
        operation: str,
        deadline: Deadline,
        work: Callable[[], Awaitable[T]],
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
    ) -> T:
        """Run `work` once per key: a key seen before returns its recorded result, one under way is joined."""
        task = self._inflight.get(key)
        if task is None:
            seen, result = await self._journal.recorded(key, operation)
            if seen:
                return decode(result)
            _check(deadline)
            task = asyncio.get_running_loop().create_task(self._record(key, operation, work, encode))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return decode(await _within(deadline, task, operation))

    async def _record(
        self, key: str, operation: str, work: Callable[[], Awaitable[T]], encode: Callable[[T], Any]
    ) -> Any:
        encoded = encode(await work())
        await self._journal.record(key, operation, encoded)
        return encoded

    # machines

    async def resolve_image(self, image: str, grant: PullGrant | None, *, deadline: Deadline) -> JSON:
        _check(deadline)
        pulled = await _within(deadline, asyncio.ensure_future(self.runtime.pull_image(image, grant)), "pull")
        return {**pulled.image_ref, IMAGE_SIZE_KEY: pulled.compressed_size}

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        return await self._once(key, "prepare", deadline, lambda: self._prepare(spec), _prepared_json, _prepared)

    async def _prepare(self, spec: MachineVersionSpec) -> PreparedVersion:
        image = await self._image(spec)
        new = self.runtime.version_of(spec.machine_id) == ""
        wanted = [m.volume_id for m in spec.mounts]
        before = (await self._journal.attached(spec.machine_id)).get(spec.machine_id, [])
        await self._journal.attach(spec.machine_id, sorted(set(before) | set(wanted)))  # before any mount
        try:
            mounts = tuple([VolumeMount(await self.volumes.mount(m.volume_id), m.guest_path) for m in spec.mounts])
            containers = {c.name: await self._pull(c.image, spec.grant) for c in spec.containers}
            info = await self.runtime.create(sandbox_spec(spec, image, mounts, containers))
        except BaseException:
            if new:  # a machine that was never made holds no volume
                await self._detach_all(spec.machine_id)
            raise
        for volume_id in set(before) - set(wanted):  # no longer the version's
            await self._detach(spec.machine_id, volume_id)
        return PreparedVersion(spec.version, dict(image.image_ref), info.private_ip, info.private_ipv4)

    async def _pull(self, reference: str, grant: PullGrant | None) -> ImageInfo:
        return await self.runtime.pull_image(reference, grant)

    async def _image(self, spec: MachineVersionSpec) -> ImageInfo:
        """The version's image: by digest when this host has it, else pulled (pinned to the digest if known)."""
        if spec.image_digest:
            cached = self.runtime.images.get(spec.image_digest)
            if cached is not None:
                return cached
        return await self.runtime.pull_image(pinned(spec.image, spec.image_digest), spec.grant)

    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "start", deadline, lambda: self._start(machine_id, version), _none, _none)

    async def _start(self, machine_id: str, version: str) -> None:
        if await self.runtime.status(machine_id) is SandboxStatus.PAUSED:
            await self.runtime.resume(machine_id)
            return
        held = self.runtime.version_of(machine_id)
        if version and held and held != version:
            raise FailedPreconditionError(f"machine {machine_id} holds version {held} on this host, not {version}")
        await self._grow_before_start(machine_id)
        await self.runtime.start(machine_id)

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        work = lambda: self._stop(machine_id, signal, timeout)  # noqa: E731
        return await self._once(key, "stop", deadline, work, exit_to_json, _exit_or_none)

    async def _stop(self, machine_id: str, signal: int, timeout: float) -> ExitInfo | None:
        status = await self.runtime.status(machine_id)
        if status is SandboxStatus.ABSENT:
            raise NotFoundError(f"machine {machine_id} not found on this host")
        if status not in (SandboxStatus.RUNNING, SandboxStatus.PAUSED):
            return None
        if status is SandboxStatus.PAUSED:
            await self.runtime.resume(machine_id)  # a frozen process cannot handle its signal
        return await self.runtime.stop(machine_id, signal, timeout)

    async def suspend(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "suspend", deadline, lambda: self.runtime.suspend(machine_id), _none, _none)

    async def signal(self, machine_id: str, signal: int, *, deadline: Deadline) -> None:
        _check(deadline)
        await self.runtime.signal(machine_id, signal)

    async def destroy(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "destroy", deadline, lambda: self._destroy(machine_id), _none, _none)

    async def _destroy(self, machine_id: str) -> None:
        await self.runtime.destroy(machine_id)
        await self._detach_all(machine_id)

    async def status(self, machine_id: str) -> HostMachine:
        state = HostState((await self.runtime.status(machine_id)).value)
        version, containers = self.runtime.version_of(machine_id), self.runtime.container_statuses(machine_id)
        return HostMachine(machine_id, state, version=version, containers=containers)

    async def machines(self) -> list[HostMachine]:
        """The runtime's machines, and those with volumes attached here but no sandbox (a prepare cut short)."""
        ids = set(self.runtime.machine_ids()) | set(await self._journal.attached())
        return [await self.status(machine_id) for machine_id in sorted(ids)]

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
        _check(deadline)
        return await self.runtime.exec(machine_id, command, stdin, timeout, container)

    async def ps(self, machine_id: str) -> list[ProcessInfo]:
        return await self.runtime.ps(machine_id)

    async def set_memory(self, machine_id: str, memory_mb: int, *, deadline: Deadline) -> None:
        _check(deadline)
        await self.runtime.set_memory(machine_id, memory_mb)

    async def reclaim_memory(self, machine_id: str, amount_mb: int, *, deadline: Deadline) -> int:
        _check(deadline)
        return await self.runtime.reclaim_memory(machine_id, amount_mb)

    async def memory_usage(self, machine_id: str) -> int:
        return await self.runtime.memory_usage(machine_id)

    async def machine_usage(self, machine_id: str) -> MachineUsage | None:
        return await asyncio.to_thread(machine_usage, machine_id)

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk:
        return await self.runtime.read_output(machine_id, cursor, limit)

    # volumes

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
        async def create() -> None:
            if volume_id in (await self.volumes.stored())[0]:  # the backend's own create is idempotent; a key is
                raise AlreadyExistsError(f"volume {volume_id} already exists on this host")
            await self.volumes.create(
                volume_id, size_bytes, fstype, from_snapshot=from_snapshot, from_volume=from_volume
            )

        await self._once(key, "create_volume", deadline, create, _none, _none)

    async def extend_volume(self, volume_id: str, size_bytes: int, *, key: str, deadline: Deadline) -> bool:
        return await self._once(key, "extend_volume", deadline, lambda: self._extend(volume_id, size_bytes), bool, bool)

    async def _extend(self, volume_id: str, size_bytes: int) -> bool:
        online = await self.volumes.extend(volume_id, size_bytes)
        if not online and await self.volumes.grows_at_mount(volume_id):
            self._grow_pending.add(volume_id)
        return online

    async def snapshot_volume(self, volume_id: str, snapshot_id: str, *, key: str, deadline: Deadline) -> SnapshotInfo:
        work = lambda: self.volumes.snapshot(volume_id, snapshot_id)  # noqa: E731
        return await self._once(key, "snapshot_volume", deadline, work, _snapshot_json, _snapshot)

    async def delete_volume(self, volume_id: str, *, key: str, deadline: Deadline) -> None:
        async def delete() -> None:
            holders = [m for m, held in (await self._journal.attached()).items() if volume_id in held]
            if holders:
                raise FailedPreconditionError(f"volume {volume_id} is attached to machine {holders[0]}")
            await self.volumes.delete(volume_id)
            self._grow_pending.discard(volume_id)

        await self._once(key, "delete_volume", deadline, delete, _none, _none)

    async def delete_snapshot(self, snapshot_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(
            key, "delete_snapshot", deadline, lambda: self.volumes.delete_snapshot(snapshot_id), _none, _none
        )

    async def volume_usage(self, volume_id: str) -> VolumeUsage:
        return await self.volumes.usage(volume_id)

    async def stored_volumes(self) -> tuple[list[str], list[str]]:
        return await self.volumes.stored()

    # attached volumes on this host

    async def _detach(self, machine_id: str, volume_id: str) -> None:
        await self.volumes.unmount(volume_id)
        await self._journal.detach(machine_id, volume_id)

    async def _detach_all(self, machine_id: str) -> None:
        for volume_id in (await self._journal.attached(machine_id)).get(machine_id, []):
            await self._detach(machine_id, volume_id)

    async def _find_pending_grows(self) -> None:
        for volume_ids in (await self._journal.attached()).values():
            for volume_id in volume_ids:
                try:
                    if await self.volumes.grows_at_mount(volume_id):
                        self._grow_pending.add(volume_id)
                except AerodromeError as exc:
                    log.warning("could not read the size of volume %s: %s", volume_id, exc)

    async def _grow_before_start(self, machine_id: str) -> None:
        """Remount (and so grow) a stopped machine's volumes that were extended while it was using them."""
        if not self._grow_pending:
            return  # the common case: no query on the start path
        for volume_id in (await self._journal.attached(machine_id)).get(machine_id, []):
            if volume_id not in self._grow_pending:
                continue
            try:
                await self.volumes.unmount(volume_id)
                await self.volumes.mount(volume_id)
            except AerodromeError as exc:
                # The start goes on with the old size; the next start tries again.
                log.warning("volume %s did not grow before its machine started: %s", volume_id, exc)
                await self.volumes.mount(volume_id)
                continue
            self._grow_pending.discard(volume_id)

    async def close(self) -> None:
        """Stop watching; machines keep running, and the next `open` re-adopts them."""
        for task in list(self._inflight.values()):
            await asyncio.gather(task, return_exceptions=True)
        await self.runtime.close()
        self._journal.close()


def _check(deadline: Deadline) -> None:
    if deadline.remaining() <= 0:
        raise WaitTimeoutError("the request's deadline passed before the host acted on it")


async def _within(deadline: Deadline, task: asyncio.Future[T], operation: str) -> T:
    """The task's result, or WaitTimeoutError at the deadline: the operation itself goes on, and its key then
    returns its result."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), deadline.remaining())
    except TimeoutError:
        raise WaitTimeoutError(f"{operation} did not finish before the request's deadline; it goes on") from None


def _none(_: object) -> None:
    return None


def _exit_or_none(data: Any) -> ExitInfo | None:
    return None if data is None else exit_from_json(data)


def _prepared_json(prepared: PreparedVersion) -> JSON:
    return {
        "version": prepared.version,
        "image_ref": prepared.image_ref,
        "private_ip": prepared.private_ip,
        "private_ipv4": prepared.private_ipv4,
    }


def _prepared(data: JSON) -> PreparedVersion:
    return PreparedVersion(data["version"], data["image_ref"], data["private_ip"], data["private_ipv4"])


def _snapshot_json(info: SnapshotInfo) -> JSON:
    return {"size": info.size, "digest": info.digest}


def _snapshot(data: JSON) -> SnapshotInfo:
    return SnapshotInfo(size=int(data["size"]), digest=str(data["digest"]))
