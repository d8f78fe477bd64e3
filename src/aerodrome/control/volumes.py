"""Volumes: Fly's volume API over the host's volumes, and attaching one volume to one machine at a time."""

from __future__ import annotations

import builtins
import dataclasses
import logging
from typing import Any

from aerodrome.control.hosts import Hosts
from aerodrome.control.placing import Placer
from aerodrome.core import (
    App,
    Clock,
    Deadline,
    FailedPreconditionError,
    HostAgent,
    InvalidArgumentError,
    MountSpec,
    NotFoundError,
    Store,
    Volume,
    VolumeSnapshot,
    VolumeUsage,
    fault_point,
    parse_bool,
    parse_int,
    rfc3339,
    snapshot_id,
    ulid,
    volume_id,
)

GIB = 1024**3
MAX_SIZE_GB = 500  # Fly's largest volume
MAX_RETENTION_DAYS = 60
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
log = logging.getLogger("aerodrome.volumes")


class Volumes:
    def __init__(self, store: Store, hosts: Hosts, clock: Clock, *, unit_bytes: int = GIB) -> None:
        self._store = store
        self._hosts = hosts
        self._agent: HostAgent = hosts  # each call goes to the volume's own host
        self._placer = Placer(store, hosts, unit_bytes=unit_bytes)
        self._clock = clock
        self.unit_bytes = unit_bytes  # one "GB" of size_gb; tests scale it down
        # Volumes whose file grew while mounted and the kernel refused to grow the filesystem online: their host
        # remounts them (which grows them) before their machine next starts.
        self._grow_pending: set[str] = set()

    async def create(self, app: App, body: dict[str, Any], region: str) -> Volume:
        name = body.get("name") or "data"
        if not isinstance(name, str) or not set(name) <= _NAME_CHARS or len(name) > 30:
            raise InvalidArgumentError("invalid volume name: use up to 30 lowercase letters, digits and underscores")
        fstype = body.get("fstype") or "ext4"
        if fstype not in ("ext4", "raw"):
            raise InvalidArgumentError("invalid fstype: must be ext4 or raw")
        retention = _retention(body.get("snapshot_retention"), 5)
        encrypted = parse_bool(body.get("encrypted"), "encrypted", False)
        auto_backup = parse_bool(body.get("auto_backup_enabled"), "auto_backup_enabled", True)
        source_snapshot, source_volume, source_gb, origin = await self._sources(app, body)
        size_gb = body.get("size_gb")
        if size_gb is None:
            size_gb = source_gb or 1  # a copy defaults to its source's size
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or not 1 <= size_gb <= MAX_SIZE_GB:
            raise InvalidArgumentError(f"invalid size_gb: must be an integer between 1 and {MAX_SIZE_GB}")
        if size_gb < source_gb:
            raise InvalidArgumentError(f"invalid size_gb: must be at least the source's size ({source_gb})")
        host = await self._placer.volume_host(app.name, region, size_gb, origin)
        volume = Volume(
            id=volume_id(),
            app_name=app.name,
            name=name,
            region=region,
            size_gb=size_gb,
            fstype=fstype,
            state="created",
            created_at=rfc3339(self._clock.now()),
            encrypted=encrypted,
            snapshot_retention=retention,
            auto_backup_enabled=auto_backup,
            host=host,
        )
        self._hosts.assign_volume(volume.id, host)
        await self._agent.create_volume(
            volume.id,
            size_gb * self.unit_bytes,
            fstype,
            from_snapshot=source_snapshot,
            from_volume=source_volume,
            key=ulid(),
            deadline=_deadline(),
        )
        fault_point("volume.create.image_built")
        await self._store.add_volume(volume)
        fault_point("volume.create.recorded")
        return volume

    async def _sources(self, app: App, body: dict[str, Any]) -> tuple[str | None, str | None, int, Volume | None]:
        """The snapshot or volume a new volume copies, the size (in units) it needs at least, and the volume
        whose host holds the source's file."""
        snapshot_ref, volume_ref = body.get("snapshot_id"), body.get("source_volume_id")
        if snapshot_ref and volume_ref:
            raise InvalidArgumentError("give either snapshot_id or source_volume_id, not both")
        if snapshot_ref:
            snapshot = await self._store.get_snapshot(str(snapshot_ref))
            origin = await self._store.get_volume(snapshot.volume_id) if snapshot else None
            if snapshot is None or origin is None or origin.app_name != app.name:
                raise NotFoundError(f"snapshot {snapshot_ref!r} not found")
            return snapshot.id, None, -(-snapshot.volume_size // self.unit_bytes), origin
        if volume_ref:
            source = await self.get(app, str(volume_ref))
            return None, source.id, source.size_gb, source
        return None, None, 0, None

    async def get(self, app: App, vol_id: str) -> Volume:
        volume = await self._store.get_volume(vol_id)
        if volume is None or volume.app_name != app.name or volume.state == "destroyed":
            raise NotFoundError("volume not found")
        return volume

    async def list(self, app: App) -> list[Volume]:
        return await self._store.list_volumes(app.name)

    async def update(self, app: App, vol_id: str, body: dict[str, Any]) -> Volume:
        changes: dict[str, Any] = {}
        if body.get("snapshot_retention") is not None:
            changes["snapshot_retention"] = _retention(body["snapshot_retention"], 5)
        if body.get("auto_backup_enabled") is not None:
            changes["auto_backup_enabled"] = parse_bool(body["auto_backup_enabled"], "auto_backup_enabled", True)
        volume = await self.get(app, vol_id)
        volume = dataclasses.replace(volume, **changes)
        await self._store.save_volume(volume)
        return volume

    async def delete(self, app: App, vol_id: str) -> Volume:
        volume = await self.get(app, vol_id)
        if volume.attached_machine_id:
            # Fly's words, which clients match; the machine must be destroyed first.
            raise FailedPreconditionError(
                f"failed_precondition: volume is currently bound to machine: {volume.attached_machine_id}"
            )
        await self._agent.delete_volume(volume.id, key=ulid(), deadline=_deadline())
        self._grow_pending.discard(volume.id)
        volume = dataclasses.replace(volume, state="destroyed")
        await self._store.save_volume(volume)
        return volume

    async def extend(self, app: App, vol_id: str, size_gb: object) -> tuple[Volume, bool]:
        """Grow a volume to `size_gb`; True when its machine must restart to see the new size (`needs_restart`)."""
        volume = await self.get(app, vol_id)
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb > MAX_SIZE_GB:
            raise InvalidArgumentError(f"invalid size_gb: must be an integer up to {MAX_SIZE_GB}")
        if size_gb <= volume.size_gb:
            raise InvalidArgumentError(f"size_gb must be larger than the current size ({volume.size_gb})")
        online = await self._agent.extend_volume(volume.id, size_gb * self.unit_bytes, key=ulid(), deadline=_deadline())
        fault_point("volume.extend.resized")
        volume = dataclasses.replace(volume, size_gb=size_gb)
        await self._store.save_volume(volume)
        fault_point("volume.extend.recorded")
        needs_restart = bool(volume.attached_machine_id) and not online
        if needs_restart:
            self._grow_pending.add(volume.id)
        return volume, needs_restart

    async def snapshot(self, app: App, vol_id: str) -> VolumeSnapshot:
        volume = await self.get(app, vol_id)
        snap_id = snapshot_id()
        info = await self._agent.snapshot_volume(volume.id, snap_id, key=ulid(), deadline=_deadline())
        fault_point("volume.snapshot.copied")
        snapshot = VolumeSnapshot(
            id=snap_id,
            volume_id=volume.id,
            size=info.size,
            volume_size=volume.size_gb * self.unit_bytes,
            digest=info.digest,
            status="created",
            created_at=rfc3339(self._clock.now()),
            retention_days=volume.snapshot_retention,
        )
        await self._store.add_snapshot(snapshot)
        fault_point("volume.snapshot.recorded")
        return snapshot

    async def snapshots(self, app: App, vol_id: str) -> builtins.list[VolumeSnapshot]:
        volume = await self.get(app, vol_id)
        return await self._store.list_snapshots(volume.id)

    async def usage(self, volume: Volume) -> dict[str, int] | None:
        """Fly's block and byte counts, read from the filesystem; None for a raw volume (it has none)."""
        try:
            usage = await self.usage_of(volume.id)
        except FailedPreconditionError:
            return None
        return {
            "block_size": usage.block_size,
            "blocks": usage.blocks,
            "blocks_free": usage.blocks_free,
            "blocks_avail": usage.blocks_avail,
            "bytes_total": usage.bytes_total,
            "bytes_used": usage.bytes_used,
        }

    async def usage_of(self, vol_id: str) -> VolumeUsage:
        return await self._agent.volume_usage(vol_id)

    # attaching, for machines

    async def reserve(self, app: App, mount: MountSpec, region: str, machine_id: str) -> Volume:
        """Find the volume a mount names (id, or name: an unattached one in the region) and attach it."""
        volume = await self._resolve(app, mount.volume, region, machine_id)
        if volume.region != region:
            raise InvalidArgumentError(
                f"volume {volume.id} is in region {volume.region}, the machine is in {region}: they must match"
            )
        if volume.attached_machine_id and volume.attached_machine_id != machine_id:
            raise FailedPreconditionError(
                f"volume {volume.id} is already attached to machine {volume.attached_machine_id}: "
                "a volume serves one machine at a time"
            )
        volume = dataclasses.replace(volume, attached_machine_id=machine_id)
        await self._store.save_volume(volume)
        return volume

    async def find_for_mount(self, app: App, mount: MountSpec, region: str, machine_id: str) -> Volume:
        """The volume `reserve` would attach, found without attaching it: where the machine must go."""
        return await self._resolve(app, mount.volume, region, machine_id)

    async def _resolve(self, app: App, ref: str, region: str, machine_id: str) -> Volume:
        if ref.startswith("vol_"):
            volume = await self._store.get_volume(ref)
            if volume is None or volume.app_name != app.name or volume.state == "destroyed":
                raise NotFoundError(f"volume {ref!r} not found in app {app.name}")
            return volume
        named = [v for v in await self._store.list_volumes(app.name) if v.name == ref]
        if not named:
            raise NotFoundError(f"no volume named {ref!r} in app {app.name}")
        for volume in named:
            if volume.attached_machine_id == machine_id:
                return volume
        free = [v for v in named if not v.attached_machine_id]
        in_region = [v for v in free if v.region == region]
        if in_region:
            return in_region[0]
        if free:
            return free[0]  # reported as a region mismatch by the caller
        raise FailedPreconditionError(f"every volume named {ref!r} in app {app.name} is attached to another machine")

    async def release(self, volume_id: str) -> None:
        """Free the volume for another machine (its host detached it when it destroyed the machine)."""
        volume = await self._store.get_volume(volume_id)
        if volume is None:
            return
        await self._store.save_volume(dataclasses.replace(volume, attached_machine_id=None))

    async def attached_to(self, app_name: str, machine_id: str) -> builtins.list[Volume]:
        return [v for v in await self._store.list_volumes(app_name) if v.attached_machine_id == machine_id]

    async def release_all(self, app_name: str, machine_id: str) -> None:
        """Detach every volume of a machine (a destroy, or a create that failed half-way); the data stays."""
        for volume in await self.attached_to(app_name, machine_id):
            await self.release(volume.id)

    # growing filesystems whose online resize was refused

    async def started(self, app_name: str, machine_id: str) -> None:
        """The machine started: its host grew the volumes waiting for that before it ran."""
        if not self._grow_pending:
            return  # the common case: no query on the start path
        for volume in await self.attached_to(app_name, machine_id):
            self._grow_pending.discard(volume.id)

    async def delete_snapshots(self, vol_id: str) -> None:
        """Remove the files of a volume's snapshots (its app is going: the rows go with it)."""
        for snapshot in await self._store.list_snapshots(vol_id):
            await self._agent.delete_snapshot(snapshot.id, key=ulid(), deadline=_deadline())

    async def remove_orphans(self) -> None:
        """Delete the files of volumes and snapshots the database does not know: a create or a snapshot cut short
        after its file was made and before it was recorded (and so never answered)."""
        volume_ids, snapshot_ids = await self._agent.stored_volumes()
        for vol_id in volume_ids:
            if await self._store.get_volume(vol_id) is None:
                log.warning("removing volume %s, which was never recorded", vol_id)
                await self._agent.delete_volume(vol_id, key=ulid(), deadline=_deadline())
        for snap_id in snapshot_ids:
            if await self._store.get_snapshot(snap_id) is None:
                log.warning("removing snapshot %s, which was never recorded", snap_id)
                await self._agent.delete_snapshot(snap_id, key=ulid(), deadline=_deadline())

    def grow_pending(self, vol_id: str) -> bool:
        """True when the volume was extended but its filesystem grows only at its machine's next start."""
        return vol_id in self._grow_pending


def _deadline() -> Deadline:
    return Deadline.after(900.0)  # a copy of a large volume takes a while


def _retention(value: object, default: int) -> int:
    """Days a snapshot is kept: Fly's range is 1 to 60; absent or 0 is the default."""
    return default if value in (None, 0) else parse_int(value, "snapshot_retention", 1, MAX_RETENTION_DAYS)
