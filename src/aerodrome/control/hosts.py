"""The control plane's hosts: each agent by its host's name, which of them answer, and each call routed.

`Hosts` is itself a `HostAgent`: a call for a machine goes to the agent of the machine's `host`, one for a
volume or snapshot to the agent of the volume's, so the control plane's operations stay written for one host.
A host is known by the name its agent's `info()` gives; rows from before several hosts name `"local"`, which is
the first agent's. A call that cannot reach its host marks the host unreachable at once (GET shows
`host_status: "unreachable"`); only a health call that answers (`HostWatch`) marks it reachable again, once its
machines are re-adopted. Calls are always tried, whatever the mark: a host that is back answers them at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aerodrome.control.events import ChangeFeed
from aerodrome.core import (
    Deadline,
    ExecResult,
    ExitInfo,
    FailedPreconditionError,
    HostAgent,
    HostEvent,
    HostInfo,
    HostMachine,
    HostUnreachableError,
    MachineUsage,
    MachineVersionSpec,
    OutputChunk,
    OutputCursor,
    PreparedVersion,
    ProcessInfo,
    PullGrant,
    SnapshotInfo,
    Store,
    UnavailableError,
    VolumeUsage,
    WaitTimeoutError,
)

T = TypeVar("T")
LEGACY_HOST = "local"  # the host rows name from before several hosts: the first agent's


@dataclass(eq=False)
class HostEntry:
    agent: HostAgent
    index: int  # its place among the agents given, for hosts not reached yet
    info: HostInfo | None = None  # None until its agent first answered
    reachable: bool = True  # until a call or a health check fails

    @property
    def name(self) -> str:
        return self.info.name if self.info is not None else f"agent #{self.index + 1} (not reached yet)"


class Hosts:
    """Several agents behind one `HostAgent`. `open` asks each its name; one that does not answer is
    unreachable until `HostWatch` reaches it."""

    def __init__(self, store: Store, agents: Sequence[HostAgent], feed: ChangeFeed | None = None) -> None:
        if not agents:
            raise ValueError("a control plane needs at least one host agent")
        self._store = store
        self._feed = feed  # told of each machine of a host whose reachability changed: the edge routes anew
        self._announcing: set[asyncio.Task[None]] = set()
        self.entries = [HostEntry(agent, index) for index, agent in enumerate(agents)]
        self._by_name: dict[str, HostEntry] = {}
        self._machine_hosts: dict[str, str] = {}  # a machine's host never changes: remembered once read
        self._volume_hosts: dict[str, str] = {}
        self._snapshot_hosts: dict[str, str] = {}  # snapshots found on a host that the database does not know

    def add(self, agent: HostAgent) -> HostEntry:
        """A host that joined while the control plane runs: unreachable until `HostWatch` reaches and adopts it."""
        entry = HostEntry(agent, len(self.entries), reachable=False)
        self.entries.append(entry)
        return entry

    async def open(self) -> None:
        for entry in self.entries:
            try:
                await self.identify(entry)
                self.set_reachable(entry, True)
            except (UnavailableError, WaitTimeoutError):
                self.set_reachable(entry, False)

    async def identify(self, entry: HostEntry) -> HostInfo:
        """Ask the agent who it is (a health call too); a second agent answering with a known name is refused."""
        info = await entry.agent.info()
        holder = self._by_name.get(info.name)
        if holder is not None and holder is not entry:
            raise FailedPreconditionError(f"two agents say they are host {info.name}: give each its own --name")
        self._check_pool(entry, info)
        entry.info = info
        self._by_name[info.name] = entry
        return info

    def _check_pool(self, entry: HostEntry, info: HostInfo) -> None:
        """Each host's machine pool apart from every other's: machines' 6PN addresses are unique only then."""
        if not info.machine_pool:
            return
        pool = ipaddress.IPv4Network(info.machine_pool)
        for other in self.entries:
            theirs = other.info.machine_pool if other is not entry and other.info is not None else ""
            if theirs and pool.overlaps(ipaddress.IPv4Network(theirs)):
                raise FailedPreconditionError(
                    f"hosts {other.name} and {info.name} have overlapping machine pools ({theirs}, "
                    f"{info.machine_pool}): give each host a --machine-ipv4-pool of its own, or their machines "
                    "would share IPv6 addresses"
                )

    def set_reachable(self, entry: HostEntry, reachable: bool) -> None:
        if entry.reachable == reachable:
            return
        entry.reachable = reachable
        if self._feed is not None:
            task = asyncio.get_running_loop().create_task(self._announce(entry), name=f"host {entry.name} changed")
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    async def _announce(self, entry: HostEntry) -> None:
        """Each machine of the host changed, as the edge and `wait` see it: its host_status did."""
        assert self._feed is not None
        for machine in await self._store.live_machines():
            if self.entry(machine.host) is entry:
                self._feed.publish(machine.id, machine.app_name)

    # what the rest of the control plane asks

    @property
    def single(self) -> bool:
        return len(self.entries) == 1

    @property
    def default_name(self) -> str:
        """The host of a machine placed without a choice: the first agent's."""
        return self.entries[0].name

    def canonical(self, host: str) -> str:
        return self.entries[0].name if host == LEGACY_HOST and LEGACY_HOST not in self._by_name else host

    def entry(self, host: str) -> HostEntry | None:
        return self.entries[0] if self.single else self._by_name.get(self.canonical(host))

    def reachable(self, host: str) -> bool:
        entry = self.entry(host)
        return entry is not None and entry.reachable

    def on_private_network(self, host: str) -> bool:
        """Whether `host`'s machines are reached at their 6PN address (HostInfo.private_network)."""
        entry = self.entry(host)
        return entry is not None and entry.info is not None and entry.info.private_network

    def host_status(self, host: str) -> str:
        """Fly's `host_status` of a machine or volume on `host`."""
        return "ok" if self.reachable(host) else "unreachable"

    def known(self) -> list[tuple[HostInfo, bool]]:
        """Every host that answered at least once, and whether it answers now: placement's input."""
        return [(e.info, e.reachable) for e in self.entries if e.info is not None]

    def assign_machine(self, machine_id: str, host: str) -> None:
        """`machine_id` lives on `host`: said before its first call, as its row is written after."""
        self._machine_hosts[machine_id] = host

    def assign_volume(self, volume_id: str, host: str) -> None:
        self._volume_hosts[volume_id] = host

    def forget_machine(self, machine_id: str) -> None:
        self._machine_hosts.pop(machine_id, None)

    # routing

    async def _of_machine(self, machine_id: str) -> HostEntry:
        if self.single:
            return self.entries[0]
        host = self._machine_hosts.get(machine_id)
        if host is None:
            machine = await self._store.get_machine(machine_id)
            host = machine.host if machine is not None else self.default_name
            if machine is not None:
                self._machine_hosts[machine_id] = host
        return self._named(host)

    async def _of_volume(self, volume_id: str) -> HostEntry:
        if self.single:
            return self.entries[0]
        host = self._volume_hosts.get(volume_id)
        if host is None:
            volume = await self._store.get_volume(volume_id)
            host = volume.host if volume is not None else self.default_name
            if volume is not None:
                self._volume_hosts[volume_id] = host
        return self._named(host)

    async def _of_snapshot(self, snapshot_id: str) -> HostEntry:
        if self.single:
            return self.entries[0]
        snapshot = await self._store.get_snapshot(snapshot_id)
        if snapshot is not None:
            return await self._of_volume(snapshot.volume_id)
        return self._named(self._snapshot_hosts.get(snapshot_id, self.default_name))

    def _named(self, host: str) -> HostEntry:
        entry = self.entry(host)
        if entry is None:
            raise HostUnreachableError(f"host {host} is unreachable: its agent has not answered since this started")
        return entry

    async def _call(self, entry: HostEntry, call: Callable[[HostAgent], Awaitable[T]]) -> T:
        try:
            return await call(entry.agent)
        except HostUnreachableError:
            self.set_reachable(entry, False)
            raise

    async def _on_machine(self, machine_id: str, call: Callable[[HostAgent], Awaitable[T]]) -> T:
        return await self._call(await self._of_machine(machine_id), call)

    async def _on_volume(self, volume_id: str, call: Callable[[HostAgent], Awaitable[T]]) -> T:
        return await self._call(await self._of_volume(volume_id), call)

    # HostAgent

    async def info(self) -> HostInfo:
        return await self._call(self.entries[0], lambda a: a.info())

    async def resolve_image(self, image: str, grant: PullGrant | None, *, deadline: Deadline) -> dict[str, Any]:
        return await self.resolve_image_on(self.default_name, image, grant, deadline=deadline)

    async def resolve_image_on(
        self, host: str, image: str, grant: PullGrant | None, *, deadline: Deadline
    ) -> dict[str, Any]:
        """Pulled by the host the machine goes to, which keeps its own images."""
        return await self._call(self._named(host), lambda a: a.resolve_image(image, grant, deadline=deadline))

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        return await self._on_machine(spec.machine_id, lambda a: a.prepare(spec, key=key, deadline=deadline))

    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        await self._on_machine(machine_id, lambda a: a.start(machine_id, version, key=key, deadline=deadline))

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        return await self._on_machine(
            machine_id, lambda a: a.stop(machine_id, signal=signal, timeout=timeout, key=key, deadline=deadline)
        )

    async def suspend(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        await self._on_machine(machine_id, lambda a: a.suspend(machine_id, key=key, deadline=deadline))

    async def signal(self, machine_id: str, signal: int, *, deadline: Deadline) -> None:
        await self._on_machine(machine_id, lambda a: a.signal(machine_id, signal, deadline=deadline))

    async def destroy(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        await self._on_machine(machine_id, lambda a: a.destroy(machine_id, key=key, deadline=deadline))

    async def status(self, machine_id: str) -> HostMachine:
        return await self._on_machine(machine_id, lambda a: a.status(machine_id))

    async def machines(self) -> list[HostMachine]:
        """Every machine of every host that answers; each is remembered as its host's."""
        held: list[HostMachine] = []
        for entry in self.entries:
            if entry.info is not None and entry.reachable:
                held.extend(await self.machines_on(entry))
        return held

    async def machines_on(self, entry: HostEntry) -> list[HostMachine]:
        held = await self._call(entry, lambda a: a.machines())
        for machine in held:
            self._machine_hosts.setdefault(machine.machine_id, entry.name)
        return held

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
        return await self._on_machine(
            machine_id, lambda a: a.exec(machine_id, command, stdin, timeout, deadline=deadline, container=container)
        )

    async def ps(self, machine_id: str) -> list[ProcessInfo]:
        return await self._on_machine(machine_id, lambda a: a.ps(machine_id))

    async def set_memory(self, machine_id: str, memory_mb: int, *, deadline: Deadline) -> None:
        await self._on_machine(machine_id, lambda a: a.set_memory(machine_id, memory_mb, deadline=deadline))

    async def reclaim_memory(self, machine_id: str, amount_mb: int, *, deadline: Deadline) -> int:
        return await self._on_machine(machine_id, lambda a: a.reclaim_memory(machine_id, amount_mb, deadline=deadline))

    async def memory_usage(self, machine_id: str) -> int:
        return await self._on_machine(machine_id, lambda a: a.memory_usage(machine_id))

    async def machine_usage(self, machine_id: str) -> MachineUsage | None:
        return await self._on_machine(machine_id, lambda a: a.machine_usage(machine_id))

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk:
        return await self._on_machine(machine_id, lambda a: a.read_output(machine_id, cursor, limit))

    async def events(self, after: int, *, limit: int = 500, wait: float = 0.0) -> list[HostEvent]:
        """Each host has its own stream and cursor: `HostWatch` follows each agent's; this is the first's."""
        return await self._call(self.entries[0], lambda a: a.events(after, limit=limit, wait=wait))

    async def acknowledge(self, cursor: int) -> None:
        await self._call(self.entries[0], lambda a: a.acknowledge(cursor))

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
        await self._on_volume(
            volume_id,
            lambda a: a.create_volume(
                volume_id,
                size_bytes,
                fstype,
                from_snapshot=from_snapshot,
                from_volume=from_volume,
                key=key,
                deadline=deadline,
            ),
        )

    async def extend_volume(self, volume_id: str, size_bytes: int, *, key: str, deadline: Deadline) -> bool:
        return await self._on_volume(
            volume_id, lambda a: a.extend_volume(volume_id, size_bytes, key=key, deadline=deadline)
        )

    async def snapshot_volume(self, volume_id: str, snapshot_id: str, *, key: str, deadline: Deadline) -> SnapshotInfo:
        return await self._on_volume(
            volume_id, lambda a: a.snapshot_volume(volume_id, snapshot_id, key=key, deadline=deadline)
        )

    async def delete_volume(self, volume_id: str, *, key: str, deadline: Deadline) -> None:
        await self._on_volume(volume_id, lambda a: a.delete_volume(volume_id, key=key, deadline=deadline))

    async def delete_snapshot(self, snapshot_id: str, *, key: str, deadline: Deadline) -> None:
        entry = await self._of_snapshot(snapshot_id)
        await self._call(entry, lambda a: a.delete_snapshot(snapshot_id, key=key, deadline=deadline))

    async def volume_usage(self, volume_id: str) -> VolumeUsage:
        return await self._on_volume(volume_id, lambda a: a.volume_usage(volume_id))

    async def stored_volumes(self) -> tuple[list[str], list[str]]:
        """The volumes and snapshots of every host that answers."""
        volumes: list[str] = []
        snapshots: list[str] = []
        for entry in self.entries:
            if entry.info is not None and entry.reachable:
                on_host, snaps = await self._call(entry, lambda a: a.stored_volumes())
                volumes += on_host
                snapshots += snaps
                for volume_id in on_host:
                    self._volume_hosts.setdefault(volume_id, entry.name)
                for snapshot_id in snaps:
                    self._snapshot_hosts.setdefault(snapshot_id, entry.name)
        return volumes, snapshots

    async def close(self) -> None:
        """The agents' owner closes them; only the announcements under way end here."""
        for task in list(self._announcing):
            task.cancel()
        await asyncio.gather(*self._announcing, return_exceptions=True)
