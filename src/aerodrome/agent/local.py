"""The in-process host agent: `HostAgent` over this host's runc runtime, loop-device volumes and image store.

It does the host-local steps the control plane used to do itself: pulls the image, resolves the argv and env of
a version over it, mounts the machine's volumes by id (host paths stay here), makes the sandbox, and grows a
volume whose online resize was refused before its machine next starts. Exits become events in its own journal,
committed before the runtime marks them reported; a repeated idempotency key returns the recorded result.

Every mutating operation is a named sequence of steps run by the step runner (`aerodrome.agent.steps`, the plans
in `aerodrome.agent.operations`), written down in the journal as it goes: `open` re-adopts the runtime's
machines, then resumes every operation a previous process left unfinished from the step it was in, and records
its result under its key, where the control plane's retry of that key finds it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, TypeVar

from aerodrome.agent.capacity import host_info
from aerodrome.agent.journal import Journal, exit_from_json
from aerodrome.agent.operations import HostOperations, resource_of, spec_args
from aerodrome.agent.steps import StepRunner
from aerodrome.core import (
    IMAGE_SIZE_KEY,
    Deadline,
    ExecResult,
    ExitInfo,
    HostEvent,
    HostEventKind,
    HostInfo,
    HostMachine,
    HostState,
    MachineUsage,
    MachineVersionSpec,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    SnapshotInfo,
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
        # Volumes whose file grew while mounted and the kernel refused to grow the filesystem online: remounted
        # (which grows them) before their machine next starts.
        self._grow_pending: set[str] = set()
        self._operations = HostOperations(runtime, volumes, journal, self._grow_pending)
        self._runner = StepRunner(journal, self._operations.plan, resource_of)

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
        """Open the journal under `data_dir`, re-adopt the runtime's machines (exits found meanwhile go into the
        journal) and the volumes' mounts, then carry the operations a previous process left on to their end.

        Resumed prepares end before the agent answers anyone: the control plane's recovery, which destroys what
        no machine owns, must see the sandboxes they make, not one made after it. The others (a stop may wait out
        its timeout) go on in the background; a retry of their keys joins them."""
        journal = await asyncio.to_thread(Journal.open, data_dir / JOURNAL)
        agent = cls(runtime, volumes, journal, name=name, region=region)
        runtime.on_exit(agent._exited)
        await runtime.recover()
        await volumes.recover()
        await agent._operations.find_pending_grows()
        await agent._runner.resume()
        await agent._runner.settle({"prepare"})
        return agent

    async def info(self) -> HostInfo:
        info = host_info(self._name, self._region, self.runtime.layout.root)  # the data directory's filesystem
        peers = bool(self.runtime.peers)
        return dataclasses.replace(info, private_network=peers, machine_pool=self.runtime.ipv4_pool)

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

    async def _once(self, key: str, kind: str, args: JSON, deadline: Deadline) -> Any:
        """The operation's result: run through its steps once per key (a key seen before returns its recorded
        result, one under way is joined)."""
        try:
            outcome = await self._runner.submit(
                key, kind, args, admit=lambda: _check(deadline), wait=deadline.remaining()
            )
        except TimeoutError:
            raise WaitTimeoutError(
                f"{kind} waited past the request's deadline for an operation resumed before it"
            ) from None
        return await _within(deadline, outcome, kind)

    # machines

    async def resolve_image(self, image: str, grant: PullGrant | None, *, deadline: Deadline) -> JSON:
        _check(deadline)
        pulled = await _within(deadline, asyncio.ensure_future(self.runtime.pull_image(image, grant)), "pull")
        return {**pulled.image_ref, IMAGE_SIZE_KEY: pulled.compressed_size}

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        return _prepared(await self._once(key, "prepare", spec_args(spec), deadline))

    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "start", {"machine_id": machine_id, "version": version}, deadline)

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        args = {"machine_id": machine_id, "signal": signal, "timeout": timeout}
        return _exit_or_none(await self._once(key, "stop", args, deadline))

    async def suspend(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "suspend", {"machine_id": machine_id}, deadline)

    async def signal(self, machine_id: str, signal: int, *, deadline: Deadline) -> None:
        _check(deadline)
        await self.runtime.signal(machine_id, signal)

    async def destroy(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "destroy", {"machine_id": machine_id}, deadline)

    async def status(self, machine_id: str) -> HostMachine:
        state = HostState((await self.runtime.status(machine_id)).value)
        version, containers = self.runtime.version_of(machine_id), self.runtime.container_statuses(machine_id)
        operation = self._runner.resuming(resource_of("start", {"machine_id": machine_id}))
        return HostMachine(machine_id, state, version=version, operation=operation, containers=containers)

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
        args = {
            "volume_id": volume_id,
            "size_bytes": size_bytes,
            "fstype": fstype,
            "from_snapshot": from_snapshot,
            "from_volume": from_volume,
        }
        await self._once(key, "create_volume", args, deadline)

    async def extend_volume(self, volume_id: str, size_bytes: int, *, key: str, deadline: Deadline) -> bool:
        return bool(
            await self._once(key, "extend_volume", {"volume_id": volume_id, "size_bytes": size_bytes}, deadline)
        )

    async def snapshot_volume(self, volume_id: str, snapshot_id: str, *, key: str, deadline: Deadline) -> SnapshotInfo:
        args = {"volume_id": volume_id, "snapshot_id": snapshot_id}
        return _snapshot(await self._once(key, "snapshot_volume", args, deadline))

    async def delete_volume(self, volume_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "delete_volume", {"volume_id": volume_id}, deadline)

    async def delete_snapshot(self, snapshot_id: str, *, key: str, deadline: Deadline) -> None:
        await self._once(key, "delete_snapshot", {"snapshot_id": snapshot_id}, deadline)

    async def volume_usage(self, volume_id: str) -> VolumeUsage:
        return await self.volumes.usage(volume_id)

    async def stored_volumes(self) -> tuple[list[str], list[str]]:
        return await self.volumes.stored()

    async def close(self) -> None:
        """Stop watching; machines keep running, and the next `open` re-adopts them."""
        await self._runner.drain()
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


def _exit_or_none(data: Any) -> ExitInfo | None:
    return None if data is None else exit_from_json(data)


def _prepared(data: JSON) -> PreparedVersion:
    return PreparedVersion(data["version"], data["image_ref"], data["private_ip"], data["private_ipv4"])


def _snapshot(data: JSON) -> SnapshotInfo:
    return SnapshotInfo(size=int(data["size"]), digest=str(data["digest"]))
