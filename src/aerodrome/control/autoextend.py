"""Auto-extend: grow a started machine's volume when its mount's `extend_threshold_percent` is reached.

Every `interval` seconds the monitor reads the usage of each volume attached to a started machine whose mount
sets `extend_threshold_percent` and `add_size_gb`; at or over the threshold the volume grows by `add_size_gb`,
never past `size_gb_limit` (Fly's largest volume when unset). The growth goes through `Volumes.extend`: online
where the kernel allows it, otherwise the filesystem grows when the machine next starts. Each growth is a
`volume_extend` event of the machine, with the old and new sizes and whether a restart is needed.
"""

from __future__ import annotations

import logging

from aerodrome.control.machines import Machines
from aerodrome.control.periodic import Periodic
from aerodrome.control.volumes import MAX_SIZE_GB, Volumes
from aerodrome.core import AerodromeError, Machine, MachineState, MountSpec, Store, Volume, VolumeUsage

log = logging.getLogger("aerodrome.autoextend")

EVENT_TYPE = "volume_extend"


def used_percent(usage: VolumeUsage) -> float:
    """Share of the filesystem in use, 0 to 100, as `df` counts it (reserved blocks left out of the total)."""
    used = usage.blocks - usage.blocks_free
    usable = used + usage.blocks_avail
    return 100.0 if usable <= 0 else 100.0 * used / usable


def next_size(size_gb: int, mount: MountSpec) -> int | None:
    """The size a volume over its threshold grows to, or None when it is already at its limit."""
    limit = min(mount.size_gb_limit or MAX_SIZE_GB, MAX_SIZE_GB)
    target = min(size_gb + mount.add_size_gb, limit)
    return target if target > size_gb else None


def _extends(mount: MountSpec) -> bool:
    return mount.extend_threshold_percent > 0 and mount.add_size_gb > 0


class AutoExtend:
    """The monitor: one asyncio task for every volume on the host."""

    def __init__(self, store: Store, machines: Machines, volumes: Volumes, *, interval: float) -> None:
        self._store = store
        self._machines = machines
        self._volumes = volumes
        self.interval = interval
        self.periodic = Periodic("volume-autoextend", interval, self.check, log)

    def start(self) -> None:
        self.periodic.start()

    async def close(self) -> None:
        await self.periodic.close()

    async def check(self) -> int:
        """One pass over every started machine; returns how many volumes grew."""
        grown = 0
        for machine in await self._store.live_machines():
            if machine.state is not MachineState.STARTED:
                continue
            mounts = [m for m in self._machines.spec_of(machine).mounts if _extends(m)]
            if not mounts:
                continue
            for volume in await self._volumes.attached_to(machine.app_name, machine.id):
                try:
                    grown += await self._check_volume(machine, mounts[0], volume)
                except AerodromeError as exc:
                    log.warning("auto-extend of volume %s failed: %s", volume.id, exc)
        return grown

    async def _check_volume(self, machine: Machine, mount: MountSpec, volume: Volume) -> bool:
        if self._volumes.grow_pending(volume.id):
            return False  # already extended; its filesystem grows at the next start
        if used_percent(await self._volumes.usage_of(volume.id)) < mount.extend_threshold_percent:
            return False
        app = await self._store.get_app(machine.app_name)
        if app is None:
            return False
        async with self._machines.locked(machine.id):
            current = await self._store.get_machine(machine.id)
            if current is None or current.state is not MachineState.STARTED:
                return False
            volume = await self._volumes.get(app, volume.id)
            target = next_size(volume.size_gb, mount)
            if target is None:
                log.info("volume %s is over its threshold but at its limit (%d GB)", volume.id, volume.size_gb)
                return False
            extended, needs_restart = await self._volumes.extend(app, volume.id, target)
            request = {
                "volume_id": volume.id,
                "old_size_gb": volume.size_gb,
                "new_size_gb": extended.size_gb,
                "needs_restart": needs_restart,
            }
            await self._machines.transition(current, current.state, event=(EVENT_TYPE, "flyd"), request=request)
        log.info("volume %s grew from %d to %d GB", volume.id, volume.size_gb, extended.size_gb)
        return True
