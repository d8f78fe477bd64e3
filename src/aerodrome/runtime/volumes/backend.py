"""`LoopVolumeBackend`: each volume a sparse ext4 image file, attached to a loop device and mounted on the host.

Layout under `root`:

    volumes/<id>.img           the volume (a ".<id>.img.partial" while being created)
    mounts/<id>/               where it is mounted while a machine uses it
    snapshots/<id>.img         a snapshot; "<id>.json" beside it caches its size and digest

The image file is the only state: loop devices and mounts are found again by asking the kernel, so a restarted
daemon (or a rebooted host) carries on from the files alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from aerodrome.core import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SnapshotInfo,
    VolumeUsage,
)
from aerodrome.runtime.process import ToolError, map_runtime_errors
from aerodrome.runtime.volumes import ext4, images, loopdev

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_BLOCK = 4096
_MIN_EXT4_BYTES = 8 << 20  # below this mkfs.ext4 leaves out the journal, and with it crash safety
_PARTIAL = ".img.partial"


def _check_id(kind: str, identifier: str) -> None:
    if not _ID.fullmatch(identifier):
        raise InvalidArgumentError(f"invalid {kind} id {identifier!r}")


def _round_up(size_bytes: int) -> int:
    return -(-size_bytes // _BLOCK) * _BLOCK


def _is_claimed(device: str) -> bool:
    """True when a filesystem is mounted from `device` in any mount namespace (it holds the device exclusively)."""
    try:
        descriptor = os.open(device, os.O_RDONLY | os.O_EXCL)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return True
        raise
    os.close(descriptor)
    return False


class LoopVolumeBackend:
    """Volumes on this host as sparse ext4 images on loop devices (implements `aerodrome.core.VolumeBackend`).

    `direct_io` attaches loop devices with O_DIRECT on the image file, so that data is cached once (in the
    volume's page cache) instead of twice. `preallocate` reserves each volume's full size on the host disk
    (fallocate) instead of thin provisioning: no host-disk-full surprise, and first writes skip block allocation.
    """

    def __init__(self, root: Path, *, direct_io: bool = True, preallocate: bool = False) -> None:
        self._root = Path(root).resolve()
        self._volumes = self._root / "volumes"
        self._mounts = self._root / "mounts"
        self._snapshots = self._root / "snapshots"
        self._direct_io = direct_io
        self._preallocate = preallocate
        self._locks: dict[str, asyncio.Lock] = {}

    # -- paths and locks ---------------------------------------------------------------------------------------

    def image_path(self, volume_id: str) -> Path:
        """The image file of a volume (whether or not it exists)."""
        _check_id("volume", volume_id)
        return self._volumes / f"{volume_id}.img"

    def mount_path(self, volume_id: str) -> Path:
        """Where a volume is mounted on the host while it is mounted."""
        _check_id("volume", volume_id)
        return self._mounts / volume_id

    def snapshot_path(self, snapshot_id: str) -> Path:
        """The image file of a snapshot (whether or not it exists)."""
        _check_id("snapshot", snapshot_id)
        return self._snapshots / f"{snapshot_id}.img"

    def _existing_image(self, volume_id: str) -> Path:
        image = self.image_path(volume_id)
        if not image.is_file():
            raise NotFoundError(f"volume {volume_id} not found")
        return image

    @contextlib.asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        # One operation at a time per volume or snapshot within this process.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            yield

    # -- create ------------------------------------------------------------------------------------------------

    async def create(
        self,
        volume_id: str,
        size_bytes: int,
        fstype: str,
        *,
        from_snapshot: str | None = None,
        from_volume: str | None = None,
    ) -> None:
        """Create a volume: a fresh filesystem ("ext4") or sparse file ("raw"), or a copy of a snapshot or volume.

        A copy keeps its source's filesystem (whatever `fstype` says) and is grown to `size_bytes` when larger.
        Idempotent: an existing volume is left as it is. Crash-safe: built under a temporary name, then renamed.
        """
        image = self.image_path(volume_id)
        size_bytes = _round_up(size_bytes)
        if fstype not in ("ext4", "raw"):
            raise InvalidArgumentError(f"unsupported fstype {fstype!r} (ext4 or raw)")
        if from_snapshot is not None and from_volume is not None:
            raise InvalidArgumentError("give either a snapshot or a source volume, not both")
        if size_bytes < (_MIN_EXT4_BYTES if fstype == "ext4" else _BLOCK):
            raise InvalidArgumentError(f"volume size {size_bytes} bytes is too small")
        async with self._locked(volume_id):
            if image.exists():
                return
            for directory in (self._volumes, self._mounts, self._snapshots):
                directory.mkdir(parents=True, exist_ok=True)
            partial = image.with_name(f".{volume_id}{_PARTIAL}")
            partial.unlink(missing_ok=True)
            try:
                with map_runtime_errors(f"create volume {volume_id}"):
                    await self._build(partial, size_bytes, fstype, from_snapshot, from_volume)
                    if self._preallocate:
                        images.preallocate(partial)
                    images.publish(partial, image)
            finally:
                partial.unlink(missing_ok=True)

    async def _build(
        self, partial: Path, size_bytes: int, fstype: str, from_snapshot: str | None, from_volume: str | None
    ) -> None:
        if from_snapshot is not None:
            source = self.snapshot_path(from_snapshot)
            if not source.is_file():
                raise NotFoundError(f"snapshot {from_snapshot} not found")
            await images.sparse_copy(source, partial)
        elif from_volume is not None:
            async with self._locked(from_volume):
                await self._copy_consistent(from_volume, partial)
        else:
            images.create_empty(partial, size_bytes)
            if fstype == "ext4":
                await ext4.make(partial, size_bytes)
            return
        if size_bytes < (source_size := images.file_size(partial)):
            raise InvalidArgumentError(f"size {size_bytes} is smaller than the source ({source_size} bytes)")
        if images.grow_file(partial, size_bytes) and ext4.has_ext4(partial):
            await ext4.grow_offline(partial, size_bytes)

    async def _copy_consistent(self, volume_id: str, destination: Path) -> None:
        """Copy a volume's image; a mounted volume is frozen meanwhile so that the copy is consistent."""
        image = self._existing_image(volume_id)
        mount_point = self.mount_path(volume_id)
        if loopdev.find_mount(mount_point) is None:
            await images.sparse_copy(image, destination)
            return
        await loopdev.freeze(mount_point)
        try:
            await images.sparse_copy(image, destination)
        finally:
            # Shielded: a frozen filesystem blocks every writer until thawed, even if we are cancelled.
            await asyncio.shield(loopdev.thaw(mount_point))

    # -- mount and unmount -------------------------------------------------------------------------------------

    async def mount(self, volume_id: str) -> str:
        """Mount the volume on the host and return the path; reuses an existing mount or loop device."""
        async with self._locked(volume_id):
            image = self._existing_image(volume_id)
            mount_point = self.mount_path(volume_id)
            if loopdev.find_mount(mount_point) is not None:
                return str(mount_point)
            if not ext4.has_ext4(image):
                raise FailedPreconditionError(f"volume {volume_id} is raw: it has no filesystem to mount")
            with map_runtime_errors(f"mount volume {volume_id}"):
                await self._grow_unmounted(image)
                devices = await loopdev.loops_of(image)
                device = devices[0] if devices else await loopdev.attach(image, direct_io=self._direct_io)
                try:
                    await loopdev.mount(device, mount_point, "ext4")
                except BaseException:
                    if not devices:
                        await asyncio.shield(loopdev.detach(device))
                    raise
            return str(mount_point)

    async def _grow_unmounted(self, image: Path) -> bool:
        """Grow an unmounted volume's filesystem to its file's size; False when a machine still holds it."""
        size = images.file_size(image)
        devices = await loopdev.loops_of(image)
        if not devices:
            await ext4.grow_offline(image, size)
            return True
        # A loop device left attached (a crash, or a machine still using it): resize through it, never
        # around it, and not at all while some mount namespace still has it mounted.
        await loopdev.refresh_capacity(devices[0])
        if _is_claimed(devices[0]):
            return False
        await ext4.grow_offline(Path(devices[0]), size)
        return True

    async def unmount(self, volume_id: str) -> None:
        """Unmount the volume and detach its loop device; nothing to do if it is not mounted."""
        async with self._locked(volume_id):
            await self._unmount(volume_id)

    async def _unmount(self, volume_id: str) -> None:
        mount_point = self.mount_path(volume_id)
        with map_runtime_errors(f"unmount volume {volume_id}"):
            try:
                await loopdev.unmount(mount_point)
            except ToolError as exc:
                if "busy" in exc.stderr:
                    raise FailedPreconditionError(f"volume {volume_id} is in use: {exc.stderr}") from exc
                raise
            for device in await loopdev.loops_of(self.image_path(volume_id)):
                await loopdev.detach(device)
        with contextlib.suppress(OSError):
            mount_point.rmdir()

    # -- extend and usage --------------------------------------------------------------------------------------

    async def extend(self, volume_id: str, size_bytes: int) -> bool:
        """Grow the volume to `size_bytes`.

        True when the filesystem already has the new size: the volume was unmounted and was resized at once,
        or it was mounted and grew online. False when the kernel refused to resize it online: it grows at the
        next mount (Fly's `needs_restart`). Never shrinks (InvalidArgumentError).
        """
        async with self._locked(volume_id):
            image = self._existing_image(volume_id)
            current = images.file_size(image)
            if size_bytes < current:
                raise InvalidArgumentError(f"volume {volume_id} cannot shrink from {current} to {size_bytes} bytes")
            with map_runtime_errors(f"extend volume {volume_id}"):
                images.grow_file(image, _round_up(size_bytes))
                if self._preallocate:
                    images.preallocate(image)
                images.sync_file(image)
                entry = loopdev.find_mount(self.mount_path(volume_id))
                if not ext4.has_ext4(image):
                    for device in await loopdev.loops_of(image):
                        await loopdev.refresh_capacity(device)
                    return True
                if entry is None:
                    return await self._grow_unmounted(image)
                await loopdev.refresh_capacity(entry.source)
                return await ext4.grow_online(entry.source)

    async def usage(self, volume_id: str) -> VolumeUsage:
        """Block counts of the filesystem: statvfs when mounted, the superblock (metadata counted as used) when not."""
        async with self._locked(volume_id):
            image = self._existing_image(volume_id)
            mount_point = self.mount_path(volume_id)
            with map_runtime_errors(f"usage of volume {volume_id}"):
                if loopdev.find_mount(mount_point) is not None:
                    stat = os.statvfs(mount_point)
                    return VolumeUsage(stat.f_frsize, stat.f_blocks, stat.f_bfree, stat.f_bavail)
                if not ext4.has_ext4(image):
                    raise FailedPreconditionError(f"volume {volume_id} is raw: it has no filesystem")
                return (await ext4.read_superblock(image)).usage()

    async def grows_at_mount(self, volume_id: str) -> bool:
        """True when the volume is mounted and its file is larger than its filesystem: an extend that the kernel
        refused online, which the next mount applies."""
        async with self._locked(volume_id):
            image = self._existing_image(volume_id)
            entry = loopdev.find_mount(self.mount_path(volume_id))
            if entry is None or not ext4.has_ext4(image):
                return False
            with map_runtime_errors(f"size of volume {volume_id}"):
                superblock = await ext4.read_superblock(Path(entry.source))
                return images.file_size(image) - superblock.size_bytes >= superblock.block_size

    # -- snapshots ---------------------------------------------------------------------------------------------

    async def snapshot(self, volume_id: str, snapshot_id: str) -> SnapshotInfo:
        """Copy the volume (frozen while mounted) to a snapshot; idempotent for an existing snapshot id."""
        target = self.snapshot_path(snapshot_id)
        async with self._locked(volume_id):
            if not target.exists():
                self._snapshots.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{snapshot_id}{_PARTIAL}")
                try:
                    with map_runtime_errors(f"snapshot volume {volume_id}"):
                        await self._copy_consistent(volume_id, partial)
                        images.publish(partial, target)
                finally:
                    partial.unlink(missing_ok=True)
        async with self._locked(f"snapshot:{snapshot_id}"):
            return await self._snapshot_info(target)

    async def _snapshot_info(self, target: Path) -> SnapshotInfo:
        # The digest reads the whole snapshot once; it is cached beside it.
        cache = target.with_suffix(".json")
        if cache.is_file():
            cached = json.loads(cache.read_text())
            return SnapshotInfo(size=int(cached["size"]), digest=str(cached["digest"]))
        with map_runtime_errors(f"digest snapshot {target.stem}"):
            info = SnapshotInfo(size=images.stored_bytes(target), digest=await images.content_digest(target))
            partial = cache.with_name(f".{cache.name}.partial")
            partial.write_text(json.dumps({"size": info.size, "digest": info.digest}))
            images.publish(partial, cache)
        return info

    # -- delete ------------------------------------------------------------------------------------------------

    async def delete(self, volume_id: str) -> None:
        """Unmount if needed, then remove the volume's file; nothing to do if it does not exist."""
        image = self.image_path(volume_id)
        async with self._locked(volume_id):
            await self._unmount(volume_id)
            with map_runtime_errors(f"delete volume {volume_id}"):
                image.unlink(missing_ok=True)
                image.with_name(f".{volume_id}{_PARTIAL}").unlink(missing_ok=True)
                if self._volumes.is_dir():
                    images.sync_directory(self._volumes)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot; nothing to do if it does not exist."""
        target = self.snapshot_path(snapshot_id)
        async with self._locked(f"snapshot:{snapshot_id}"):
            with map_runtime_errors(f"delete snapshot {snapshot_id}"):
                for path in (target, target.with_suffix(".json"), target.with_name(f".{snapshot_id}{_PARTIAL}")):
                    path.unlink(missing_ok=True)

    # -- recovery ----------------------------------------------------------------------------------------------

    async def stored(self) -> tuple[list[str], list[str]]:
        """The ids of the volumes and snapshots whose (finished) files are here."""

        def ids(directory: Path) -> list[str]:
            found = directory.glob("*.img") if directory.is_dir() else ()
            return sorted(p.stem for p in found if _ID.fullmatch(p.stem))

        return await asyncio.to_thread(ids, self._volumes), await asyncio.to_thread(ids, self._snapshots)

    async def recover(self) -> list[str]:
        """Re-adopt what a previous daemon left: return the ids of mounted volumes.

        Thaws any volume left frozen by a snapshot cut short, and detaches loop devices of this backend that
        nothing mounts (attached by a daemon that died before mounting).
        """
        with map_runtime_errors("recover volumes"):
            mounted = sorted({Path(e.mount_point).name for e in loopdev.mount_table() if self._is_ours(e)})
            for volume_id in mounted:
                await loopdev.thaw(self.mount_path(volume_id))
            sources = {entry.source for entry in loopdev.mount_table()}
            for device in await loopdev.loops_under(self._volumes):
                if device not in sources and not _is_claimed(device):
                    await loopdev.detach(device)
        return mounted

    def _is_ours(self, entry: loopdev.MountEntry) -> bool:
        return (
            Path(entry.mount_point).parent == self._mounts and _ID.fullmatch(Path(entry.mount_point).name) is not None
        )
