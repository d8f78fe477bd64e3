"""Placement's inputs gathered from the records and the hosts, for `core.place`: which host a machine or a
volume goes to. With one host there is no choice to make and nothing is read: everything goes there."""

from __future__ import annotations

import dataclasses

from aerodrome.control.hosts import Hosts
from aerodrome.core import HostLoad, MachineSpec, PlacementRequest, Store, Volume, host_loads, place


class Placer:
    def __init__(self, store: Store, hosts: Hosts, *, unit_bytes: int) -> None:
        self._store = store
        self._hosts = hosts
        self._unit_bytes = unit_bytes

    async def machine_host(self, app_name: str, spec: MachineSpec, region: str, pinned: str | None) -> str:
        """The host of a new machine of `app_name`; `pinned`: the host of the volume it mounts."""
        if self._hosts.single:
            return self._hosts.default_name
        request = PlacementRequest(
            region,
            memory_mb=spec.memory_mb,
            cpus=spec.cpus,
            cpu_kind=spec.cpu_kind,
            pinned_host=self._hosts.canonical(pinned) if pinned is not None else None,
        )
        return place(request, await self._loads(app_name, volumes=False))

    async def volume_host(self, app_name: str, region: str, size_gb: int, source: Volume | None) -> str:
        """The host of a new volume; a copy goes where its source is."""
        if self._hosts.single:
            return self._hosts.default_name
        request = PlacementRequest(
            region,
            disk_bytes=size_gb * self._unit_bytes,
            pinned_host=self._hosts.canonical(source.host) if source is not None else None,
        )
        return place(request, await self._loads(app_name, volumes=True))

    async def _loads(self, app_name: str, *, volumes: bool) -> list[HostLoad]:
        canonical = self._hosts.canonical
        machines = [dataclasses.replace(m, host=canonical(m.host)) for m in await self._store.live_machines()]
        found: list[Volume] = []
        if volumes:  # only a volume's placement weighs disk: listing every app's volumes is for it alone
            for app in await self._store.list_apps(None):
                found += await self._store.list_volumes(app.name)
        stored = [dataclasses.replace(v, host=canonical(v.host)) for v in found]
        return host_loads(
            self._hosts.known(), machines, stored, app_name=app_name, unit_bytes=self._unit_bytes, count_volumes=volumes
        )
