"""Volumes: Fly's volume API over a VolumeBackend, and attaching one volume to one machine at a time."""

from __future__ import annotations

import builtins
import dataclasses
from typing import Any

from aerodrome.core import (
    App,
    Clock,
    FailedPreconditionError,
    InvalidArgumentError,
    MountSpec,
    NotFoundError,
    Store,
    Volume,
    VolumeBackend,
    VolumeMount,
    VolumeSnapshot,
    rfc3339,
    snapshot_id,
    volume_id,
)

GIB = 1024**3
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class Volumes:
    def __init__(self, store: Store, backend: VolumeBackend, clock: Clock, *, unit_bytes: int = GIB) -> None:
        self._store = store
        self._backend = backend
        self._clock = clock
        self.unit_bytes = unit_bytes  # one "GB" of size_gb; tests scale it down

    async def create(self, app: App, body: dict[str, Any], region: str) -> Volume:
        name = body.get("name") or "data"
        if not isinstance(name, str) or not set(name) <= _NAME_CHARS or len(name) > 30:
            raise InvalidArgumentError("invalid volume name: use up to 30 lowercase letters, digits and underscores")
        size_gb = body.get("size_gb", 1)
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or not 1 <= size_gb <= 500:
            raise InvalidArgumentError("invalid size_gb: must be an integer between 1 and 500")
        fstype = body.get("fstype") or "ext4"
        if fstype not in ("ext4", "raw"):
            raise InvalidArgumentError("invalid fstype: must be ext4 or raw")
        source_snapshot, source_volume = await self._sources(app, body)
        volume = Volume(
            id=volume_id(),
            app_name=app.name,
            name=name,
            region=region,
            size_gb=size_gb,
            fstype=fstype,
            state="created",
            created_at=rfc3339(self._clock.now()),
            encrypted=bool(body.get("encrypted", False)),
            snapshot_retention=int(body.get("snapshot_retention") or 5),
            auto_backup_enabled=bool(body.get("auto_backup_enabled", True)),
        )
        await self._backend.create(
            volume.id, size_gb * self.unit_bytes, fstype, from_snapshot=source_snapshot, from_volume=source_volume
        )
        await self._store.add_volume(volume)
        return volume

    async def _sources(self, app: App, body: dict[str, Any]) -> tuple[str | None, str | None]:
        snapshot, source = body.get("snapshot_id"), body.get("source_volume_id")
        if snapshot and await self._store.get_snapshot(str(snapshot)) is None:
            raise NotFoundError(f"snapshot {snapshot!r} not found")
        if source:
            await self.get(app, str(source))
        return (str(snapshot) if snapshot else None, str(source) if source else None)

    async def get(self, app: App, vol_id: str) -> Volume:
        volume = await self._store.get_volume(vol_id)
        if volume is None or volume.app_name != app.name or volume.state == "destroyed":
            raise NotFoundError("volume not found")
        return volume

    async def list(self, app: App) -> list[Volume]:
        return await self._store.list_volumes(app.name)

    async def update(self, app: App, vol_id: str, body: dict[str, Any]) -> Volume:
        volume = await self.get(app, vol_id)
        changes: dict[str, Any] = {}
        if body.get("snapshot_retention") is not None:
            changes["snapshot_retention"] = int(body["snapshot_retention"])
        if body.get("auto_backup_enabled") is not None:
            changes["auto_backup_enabled"] = bool(body["auto_backup_enabled"])
        volume = dataclasses.replace(volume, **changes)
        await self._store.save_volume(volume)
        return volume

    async def delete(self, app: App, vol_id: str) -> Volume:
        volume = await self.get(app, vol_id)
        if volume.attached_machine_id:
            raise FailedPreconditionError(
                f"volume {volume.id} is attached to machine {volume.attached_machine_id}; destroy the machine first"
            )
        await self._backend.delete(volume.id)
        volume = dataclasses.replace(volume, state="destroyed")
        await self._store.save_volume(volume)
        return volume

    async def extend(self, app: App, vol_id: str, size_gb: object) -> tuple[Volume, bool]:
        volume = await self.get(app, vol_id)
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb > 500:
            raise InvalidArgumentError("invalid size_gb: must be an integer up to 500")
        if size_gb <= volume.size_gb:
            raise InvalidArgumentError(f"size_gb must be larger than the current size ({volume.size_gb})")
        online = await self._backend.extend(volume.id, size_gb * self.unit_bytes)
        volume = dataclasses.replace(volume, size_gb=size_gb)
        await self._store.save_volume(volume)
        needs_restart = bool(volume.attached_machine_id) and not online
        return volume, needs_restart

    async def snapshot(self, app: App, vol_id: str) -> VolumeSnapshot:
        volume = await self.get(app, vol_id)
        snap_id = snapshot_id()
        info = await self._backend.snapshot(volume.id, snap_id)
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
        return snapshot

    async def snapshots(self, app: App, vol_id: str) -> builtins.list[VolumeSnapshot]:
        volume = await self.get(app, vol_id)
        return await self._store.list_snapshots(volume.id)

    async def usage(self, volume: Volume) -> dict[str, int]:
        usage = await self._backend.usage(volume.id)
        return {
            "block_size": usage.block_size,
            "blocks": usage.blocks,
            "blocks_free": usage.blocks_free,
            "blocks_avail": usage.blocks_avail,
            "bytes_total": usage.bytes_total,
            "bytes_used": usage.bytes_used,
        }

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
                f"volume {volume.id} is already attached to machine {volume.attached_machine_id}"
            )
        volume = dataclasses.replace(volume, attached_machine_id=machine_id)
        await self._store.save_volume(volume)
        return volume

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

    async def mount(self, volume: Volume, guest_path: str) -> VolumeMount:
        return VolumeMount(host_path=await self._backend.mount(volume.id), guest_path=guest_path)

    async def release(self, volume_id: str) -> None:
        volume = await self._store.get_volume(volume_id)
        if volume is None:
            return
        await self._backend.unmount(volume_id)
        await self._store.save_volume(dataclasses.replace(volume, attached_machine_id=None))
