"""The seams between the control plane and what lies below it: the host runtime and volume storage.

The control plane (api, proxy, mcp) depends only on these Protocols; `aerodrome.runtime` implements them
(runc today; a VM driver or a remote host agent can implement them tomorrow).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aerodrome.core.config import GuestFile
from aerodrome.core.containers import ContainerRun
from aerodrome.core.logs import OutputChunk, OutputCursor
from aerodrome.core.models import ExitInfo
from aerodrome.core.registry import PullGrant

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """An image pulled and unpacked on this host."""

    reference: str  # as the client wrote it, e.g. "flyio/mcp:latest"
    digest: str  # manifest digest, "sha256:…"
    image_ref: JSON  # Fly's {registry, repository, tag, digest, labels}
    rootfs: str  # host path of the read-only unpacked root filesystem
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    compressed_size: int = 0  # bytes of the manifest's layers as the registry stores them (0: unpacked before)


@dataclass(frozen=True, slots=True)
class VolumeMount:
    host_path: str  # where the volume's filesystem is mounted on the host
    guest_path: str


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """Everything the runtime needs to prepare one machine's sandbox."""

    machine_id: str
    instance_id: str
    app_name: str
    org_network_id: int  # machines of one organisation share a private network
    image_digest: str  # an image already pulled with `Runtime.pull_image`
    argv: tuple[str, ...]  # resolved from init.exec / entrypoint / cmd over the image's
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    user: str = ""
    files: tuple[GuestFile, ...] = ()
    cpus: int = 1
    cpu_kind: str = "shared"
    memory_mb: int = 256
    mounts: tuple[VolumeMount, ...] = ()
    hostname: str = ""
    rootfs_bytes: int = 8 * 1024**3  # what the machine may write to its root filesystem in one run
    host_resolver: bool = True  # /etc/resolv.conf names the host's resolver (when it runs one)
    containers: tuple[ContainerRun, ...] = ()  # none: the machine is its one program (`argv`)
    scratch_volumes: tuple[str, ...] = ()  # per-run directories its containers share


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    private_ip: str  # IPv6 in the organisation's prefix (Fly's 6PN)
    private_ipv4: str


class SandboxStatus(StrEnum):
    ABSENT = "absent"  # never created, or destroyed
    CREATED = "created"  # prepared, not running
    RUNNING = "running"
    PAUSED = "paused"  # frozen: suspended
    STOPPED = "stopped"  # the main process has exited
    FAILED = "failed"  # its record on the host did not read (set aside): to be created again, or destroyed


# Exec: the timeout a request gets unless it names one, the longest it may name (seconds), and the bytes kept of
# each of stdout and stderr (the rest is read and dropped, so the process never blocks on a full pipe).
EXEC_TIMEOUT_DEFAULT = 30
EXEC_TIMEOUT_MAX = 300
EXEC_OUTPUT_CAP = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    exit_signal: int = 0
    truncated: bool = False  # stdout or stderr went past EXEC_OUTPUT_CAP and was cut there


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    command: str
    cpu: int  # jiffies used
    rss: int  # bytes
    rtime: int
    stime: int
    directory: str
    listen_sockets: tuple[tuple[str, str], ...] = ()  # (address, proto)


ExitCallback = Callable[[str, ExitInfo], Awaitable[None]]


class Runtime(Protocol):
    """One host's machines. Every method is idempotent where it can be, and safe to call after a restart."""

    async def pull_image(self, reference: str, grant: PullGrant | None = None) -> ImageInfo:
        """Pull (if not cached) and unpack an image; NotFoundError/UnavailableError name the reference.

        `grant`: the organisation the machine is for may use only these repositories of the embedded registry
        (None: the host's own pull, for a machine admitted before)."""
        ...

    async def create(self, spec: SandboxSpec) -> SandboxInfo:
        """Prepare a sandbox (rootfs, bundle, network) without starting it. Re-creating replaces it."""
        ...

    async def start(self, machine_id: str) -> None:
        """Run the main process from a clean rootfs; returns once it has been launched."""
        ...

    async def stop(self, machine_id: str, signal: int, timeout: float) -> ExitInfo:
        """Send `signal`, then SIGKILL after `timeout` seconds; return once the main process is gone."""
        ...

    async def suspend(self, machine_id: str) -> None:
        """Freeze every process of the machine; memory stays resident."""
        ...

    async def resume(self, machine_id: str) -> None: ...

    async def signal(self, machine_id: str, signal: int) -> None: ...

    async def exec(
        self, machine_id: str, command: list[str], stdin: bytes | None, timeout: float, container: str = ""
    ) -> ExecResult: ...

    async def ps(self, machine_id: str) -> list[ProcessInfo]: ...

    async def set_memory(self, machine_id: str, memory_mb: int) -> None:
        """Change the memory limit, at once if the machine runs, and for its next starts."""
        ...

    async def reclaim_memory(self, machine_id: str, amount_mb: int) -> int:
        """Have the machine give back up to `amount_mb` of memory (page cache first); return the bytes freed."""
        ...

    async def memory_usage(self, machine_id: str) -> int:
        """Bytes of memory the machine uses now (0 when it does not run)."""
        ...

    async def status(self, machine_id: str) -> SandboxStatus: ...

    async def read_output(self, machine_id: str, cursor: OutputCursor, limit: int) -> OutputChunk:
        """Up to `limit` bytes of the machine's stdout and stderr after `cursor` (from the start when the file
        is not the cursor's), and the cursor after them. What lies before `cursor` is kept by the caller: the
        host may let it go. An empty chunk when there is nothing new, or no output file."""
        ...

    async def destroy(self, machine_id: str) -> None:
        """Remove every trace: processes, mounts, cgroups, netns, files."""
        ...

    async def recover(self) -> dict[str, SandboxStatus]:
        """Re-adopt the sandboxes left by a previous daemon; report exits found meanwhile via the callback."""
        ...

    def on_exit(self, callback: ExitCallback) -> None:
        """Register the coroutine called once for every exit of a machine's main process."""
        ...

    async def close(self) -> None:
        """Stop watching (machines keep running, to be re-adopted)."""
        ...


@dataclass(frozen=True, slots=True)
class VolumeUsage:
    block_size: int
    blocks: int
    blocks_free: int
    blocks_avail: int

    @property
    def bytes_total(self) -> int:
        return self.block_size * self.blocks

    @property
    def bytes_used(self) -> int:
        return self.block_size * (self.blocks - self.blocks_free)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    size: int  # bytes stored
    digest: str


class VolumeBackend(Protocol):
    """Volumes on one host: a sized filesystem each, mounted on the host and bind-mounted into machines."""

    async def create(
        self,
        volume_id: str,
        size_bytes: int,
        fstype: str,
        *,
        from_snapshot: str | None = None,
        from_volume: str | None = None,
    ) -> None: ...

    async def mount(self, volume_id: str) -> str:
        """Mount on the host (idempotent); return the host path."""
        ...

    async def unmount(self, volume_id: str) -> None: ...

    async def extend(self, volume_id: str, size_bytes: int) -> bool:
        """Grow to `size_bytes`; True when the filesystem grew online, False when it grows at the next mount."""
        ...

    async def usage(self, volume_id: str) -> VolumeUsage: ...

    async def grows_at_mount(self, volume_id: str) -> bool:
        """True when a mounted volume's file is larger than its filesystem (an extend refused online)."""
        ...

    async def snapshot(self, volume_id: str, snapshot_id: str) -> SnapshotInfo: ...

    async def delete(self, volume_id: str) -> None: ...

    async def delete_snapshot(self, snapshot_id: str) -> None: ...

    async def stored(self) -> tuple[list[str], list[str]]:
        """The ids of the volumes and of the snapshots whose files are on this host."""
        ...


class EdgeTLS(Protocol):
    """The edge's TLS for custom hostnames, as the control plane drives it: the edge implements it and the
    control plane receives it at construction, so neither reaches into the other's objects."""

    def issue_hostname(self, hostname: str) -> tuple[bytes, bytes]:
        """A leaf certificate and its key (PEM) from the CA for custom hostnames."""
        ...

    def hostname_ca_pem(self) -> bytes:
        """That CA's certificate (PEM): appended to each leaf to make the chain."""
        ...

    def serve_hostname(self, hostname: str, fullchain: bytes, private_key: bytes) -> None:
        """Present this chain for the hostname's SNI from now on."""
        ...

    def withdraw_hostname(self, hostname: str) -> None:
        """Stop presenting the hostname's chain."""
        ...
