"""The host seam: what the control plane asks of the agent that owns one host's machines, volumes and images.

Requests are few and coarse, and each is self-contained: a machine's whole desired version travels in one
`MachineVersionSpec` (image by reference and digest, guest, env, mounts by volume id, network by organisation),
so the agent can carry it out, write it down and resume it without asking back. Every mutating call takes a
`Deadline` and an idempotency key (`key`): the same key sent again, after a timeout or a reconnect, returns what
the first call did instead of acting twice.

Host paths never cross this seam: volumes are named by id, images by reference and digest. Exits and other host
events reach the control plane as a durable stream read with a cursor (`events`), not as callbacks, so a control
plane that was down reads what it missed. Errors are `aerodrome.core.errors` kinds, and travel over the wire as
`{"kind", "message"}` to be raised again as the same kind on the other side.

Two implementations keep one contract (`tests/agent/conformance.py`): the in-process agent, built on the runc
runtime, and a network client of `aerodrome agent`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aerodrome.core.config import GuestFile
from aerodrome.core.containers import ContainerSpec, ContainerStatus
from aerodrome.core.logs import OutputChunk, OutputCursor
from aerodrome.core.models import ExitInfo
from aerodrome.core.ports import ExecResult, ProcessInfo, SnapshotInfo, VolumeUsage
from aerodrome.core.registry import PullGrant

JSON = dict[str, Any]
IMAGE_SIZE_KEY = "compressed_size"  # in resolve_image's answer only: not stored with a machine

AGENT_PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the caller stops waiting, as a wall-clock time (seconds since the epoch): it survives the wire."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.time() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.time())


@dataclass(frozen=True, slots=True)
class VolumeAttachment:
    volume_id: str
    guest_path: str


@dataclass(frozen=True, slots=True)
class MachineVersionSpec:
    """One version of one machine, whole: what the host needs to prepare, run and re-make it on its own."""

    machine_id: str
    version: str  # Fly's instance_id: every update makes a new one
    app_name: str
    org_network_id: int  # machines of one organisation share a private network
    image: str  # the reference as the client wrote it; `image_digest` pins it once known
    image_digest: str = ""
    grant: PullGrant | None = None  # the embedded registry's repositories this machine may come from
    # init: exec replaces everything; else entrypoint + cmd, each from here or else from the image
    init_exec: tuple[str, ...] = ()
    init_entrypoint: tuple[str, ...] = ()
    init_cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # laid over the image's env
    files: tuple[GuestFile, ...] = ()
    cpus: int = 1
    cpu_kind: str = "shared"
    memory_mb: int = 256
    mounts: tuple[VolumeAttachment, ...] = ()
    hostname: str = ""
    rootfs_bytes: int = 8 * 1024**3
    host_resolver: bool = True  # /etc/resolv.conf names the host's resolver (when it runs one)
    stop_signal: int = 2
    stop_timeout: float = 5.0
    # several images in one machine: env merged with the machine's, mounts named by scratch volume or guest path
    containers: tuple[ContainerSpec, ...] = ()
    scratch_volumes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedVersion:
    """What the host made of a version: the image it resolved and the machine's addresses."""

    version: str
    image_ref: JSON  # Fly's {registry, repository, tag, digest, labels}
    private_ip: str
    private_ipv4: str


class HostState(StrEnum):
    ABSENT = "absent"  # never prepared, or destroyed
    CREATED = "created"  # prepared, not running
    RUNNING = "running"
    PAUSED = "paused"  # suspended: frozen, memory resident
    STOPPED = "stopped"  # the main process has exited
    FAILED = "failed"  # the host's record did not read and was set aside


@dataclass(frozen=True, slots=True)
class HostMachine:
    """A machine as its host holds it: which version, in which state, and the operation under way if any."""

    machine_id: str
    state: HostState
    version: str = ""  # the version the host holds ("" when absent)
    operation: str = ""  # e.g. "start": an operation the agent has begun and not finished
    containers: tuple[ContainerStatus, ...] = ()  # of a running multi-container machine


class HostEventKind(StrEnum):
    EXIT = "exit"  # the main process ended (ExitInfo in `exit`)
    STATE = "state"  # the agent finished an operation on its own (resumed at its start, or a restart policy)


@dataclass(frozen=True, slots=True)
class HostEvent:
    cursor: int  # increasing per agent; read again from any earlier cursor
    kind: HostEventKind
    machine_id: str
    version: str
    state: HostState
    exit: ExitInfo | None = None
    at: str = ""  # RFC 3339


@dataclass(frozen=True, slots=True)
class MachineUsage:
    """What a running machine uses now, for `/metrics`."""

    cpu_seconds: float  # CPU time of all its processes since start
    cpu_user_seconds: float
    cpu_system_seconds: float
    memory_bytes: int  # charged to its memory cgroup now (page cache included)
    memory_limit_bytes: int | None
    net_received_bytes: int  # by the machine (the host end of its veth transmitted them)
    net_sent_bytes: int
    io_bytes: int = 0  # read and written on block devices (blkio), since start


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The host, and what it has for machines and volumes (0: not reported, so placement bounds nothing)."""

    name: str
    region: str
    protocol: int = AGENT_PROTOCOL_VERSION
    cpus: int = 0
    memory_mb: int = 0
    disk_bytes: int = 0  # the filesystem volumes are made on
    #: The host is on the private network across hosts (`aerodrome agent --peer`): its machines are reached at
    #: their 6PN (IPv6) address, as their IPv4 addresses are private to the host.
    private_network: bool = False
    #: Its machine IPv4 pool: a machine's 6PN address holds its IPv4 address, so hosts' pools must not overlap.
    machine_pool: str = ""


class HostAgent(Protocol):
    """One host. Calls are idempotent by `key`; reads are idempotent by nature. A call that cannot reach its
    host raises `UnavailableError`; one past its deadline raises `WaitTimeoutError`."""

    async def info(self) -> HostInfo: ...

    # machines
    async def resolve_image(self, image: str, grant: PullGrant | None, *, deadline: Deadline) -> JSON:
        """Pull the image (if not cached) from what `grant` allows (None: the host's own pull, for a machine
        admitted before) and return Fly's image_ref of it, digest included: checked before anything is made.
        It may add IMAGE_SIZE_KEY, the bytes of its layers in the registry, which is not part of Fly's image_ref."""
        ...

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        """Pull the image, attach the volumes and make the sandbox of this version, not started. Preparing a
        machine's next version while its current one exists replaces it (the current one must not run)."""
        ...

    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        """Run `version` (which the host must hold: FailedPreconditionError otherwise), or resume it if paused."""
        ...

    async def stop(
        self, machine_id: str, *, signal: int, timeout: float, key: str, deadline: Deadline
    ) -> ExitInfo | None:
        """Signal, then SIGKILL after `timeout`; None when nothing ran."""
        ...

    async def suspend(self, machine_id: str, *, key: str, deadline: Deadline) -> None: ...

    async def signal(self, machine_id: str, signal: int, *, deadline: Deadline) -> None: ...

    async def destroy(self, machine_id: str, *, key: str, deadline: Deadline) -> None:
        """Remove every trace of the machine on the host, and detach its volumes."""
        ...

    async def status(self, machine_id: str) -> HostMachine: ...

    async def machines(self) -> list[HostMachine]:
        """Every machine the host holds."""
        ...

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
        """Run `command` in the machine, or in its container `container` (of a multi-container machine)."""
        ...

    async def ps(self, machine_id: str) -> list[ProcessInfo]: ...

    async def set_memory(self, machine_id: str, memory_mb: int, *, deadline: Deadline) -> None: ...

    async def reclaim_memory(self, machine_id: str, amount_mb: int, *, deadline: Deadline) -> int: ...

    async def memory_usage(self, machine_id: str) -> int: ...

    async def machine_usage(self, machine_id: str) -> MachineUsage | None:
        """None when the machine does not run."""
        ...

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk: ...

    async def events(self, after: int, *, limit: int = 500, wait: float = 0.0) -> list[HostEvent]:
        """Host events after cursor `after`, oldest first; waits up to `wait` seconds for one when none is new."""
        ...

    async def acknowledge(self, cursor: int) -> None:
        """The control plane has recorded every event up to `cursor`: the agent may let them go."""
        ...

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
    ) -> None: ...

    async def extend_volume(self, volume_id: str, size_bytes: int, *, key: str, deadline: Deadline) -> bool:
        """True when the filesystem grew online, False when it grows at the next start of its machine."""
        ...

    async def snapshot_volume(
        self, volume_id: str, snapshot_id: str, *, key: str, deadline: Deadline
    ) -> SnapshotInfo: ...

    async def delete_volume(self, volume_id: str, *, key: str, deadline: Deadline) -> None: ...

    async def delete_snapshot(self, snapshot_id: str, *, key: str, deadline: Deadline) -> None: ...

    async def volume_usage(self, volume_id: str) -> VolumeUsage: ...

    async def stored_volumes(self) -> tuple[list[str], list[str]]:
        """The ids of the volumes and of the snapshots whose files are on this host."""
        ...

    async def close(self) -> None:
        """Let go of the agent (an in-process one stops watching; machines keep running, to be re-adopted)."""
        ...
