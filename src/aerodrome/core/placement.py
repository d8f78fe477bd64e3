"""Placement: which host a new machine or volume goes to. Pure: the control plane gathers the inputs.

The rules, in order:
1. A machine that mounts a volume goes where the volume is (a volume lives on one host, as on Fly), and so
   does a volume copied from another volume or a snapshot: that host or a refusal, never another host.
2. Otherwise the hosts of the region requested are the candidates. A region no host is in at all is served by
   every host (one host answers for every region code, as a single host always has).
3. A candidate must be reachable and have room left: memory for the machine, CPUs for a performance machine
   (shared CPUs are time slices, oversubscribed by design, so they are not counted), disk for a volume. A
   capacity of 0 is one the host did not report, and bounds nothing.
4. Among those that fit, the one holding the fewest of the app's machines (spread), then the one with the most
   memory left, then by name, so the same inputs always give the same host.

A refusal is Fly's: `insufficient_capacity` (503) naming the region and what was short.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aerodrome.core.agent import HostInfo
from aerodrome.core.errors import CapacityError, HostUnreachableError
from aerodrome.core.models import Machine, Volume
from aerodrome.core.states import MachineState

# A machine in one of these states holds its memory (and CPUs) on its host; one stopped or created holds none.
RESIDENT_STATES = frozenset(
    {
        MachineState.STARTING,
        MachineState.STARTED,
        MachineState.RESTARTING,
        MachineState.STOPPING,
        MachineState.SUSPENDING,
        MachineState.SUSPENDED,
        MachineState.REPLACING,
    }
)


@dataclass(frozen=True, slots=True)
class HostLoad:
    """One host as placement sees it: what it has (0: not reported), what is taken, how many of the app's."""

    name: str
    region: str
    reachable: bool = True
    cpus: int = 0
    memory_mb: int = 0
    disk_bytes: int = 0
    used_cpus: int = 0
    used_memory_mb: int = 0
    used_disk_bytes: int = 0
    app_count: int = 0  # the app's machines (or volumes, when placing a volume) on this host

    def memory_left(self) -> int | None:
        return self.memory_mb - self.used_memory_mb if self.memory_mb else None


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    region: str
    memory_mb: int = 0
    cpus: int = 0  # counted only when `cpu_kind` is "performance"
    cpu_kind: str = "shared"
    disk_bytes: int = 0
    pinned_host: str | None = None  # the host of the volume mounted or copied


def place(request: PlacementRequest, hosts: Sequence[HostLoad]) -> str:
    """The name of the host to put the machine or volume on, or CapacityError / HostUnreachableError."""
    if request.pinned_host is not None:
        return _pinned(request, hosts, request.pinned_host)
    in_region = [h for h in hosts if h.region == request.region] or list(hosts)
    if not in_region:
        raise CapacityError(f"insufficient resources to place in region {request.region}: no host is known")
    fitting = [h for h in in_region if h.reachable and not shortfall(request, h)]
    if not fitting:
        raise CapacityError(f"insufficient resources to place in region {request.region}: {_why(request, in_region)}")
    return min(fitting, key=lambda h: (h.app_count, -(h.memory_left() or 0), h.name)).name


def _pinned(request: PlacementRequest, hosts: Sequence[HostLoad], name: str) -> str:
    host = next((h for h in hosts if h.name == name), None)
    if host is None or not host.reachable:
        raise HostUnreachableError(f"host {name}, where the volume is, is unreachable")
    short = shortfall(request, host)
    if short:
        raise CapacityError(f"insufficient resources on host {name}, where the volume is: {short}")
    return name


def shortfall(request: PlacementRequest, host: HostLoad) -> str:
    """What `host` lacks for `request` ("" when it fits)."""
    if host.memory_mb and host.used_memory_mb + request.memory_mb > host.memory_mb:
        return f"{request.memory_mb} MB of memory asked, {host.memory_mb - host.used_memory_mb} MB left"
    if request.cpu_kind == "performance" and host.cpus and host.used_cpus + request.cpus > host.cpus:
        return f"{request.cpus} performance CPUs asked, {host.cpus - host.used_cpus} left"
    if request.disk_bytes and host.disk_bytes and host.used_disk_bytes + request.disk_bytes > host.disk_bytes:
        left = max(0, host.disk_bytes - host.used_disk_bytes) // 1024**2
        return f"{request.disk_bytes // 1024**2} MB of disk asked, {left} MB left"
    return ""


def _why(request: PlacementRequest, hosts: Sequence[HostLoad]) -> str:
    reasons = [f"host {h.name} " + ("is unreachable" if not h.reachable else shortfall(request, h)) for h in hosts]
    return "; ".join(sorted(reasons))


def host_loads(
    hosts: Iterable[tuple[HostInfo, bool]],
    machines: Iterable[Machine],
    volumes: Iterable[Volume],
    *,
    app_name: str,
    unit_bytes: int,
    count_volumes: bool = False,
) -> list[HostLoad]:
    """Each host's load from the records: `hosts` are each host's info and whether it is reachable; `machines`
    and `volumes` the live ones, their `host` naming the host as its info does."""
    used: dict[str, list[int]] = {}  # host → [cpus, memory, disk, app's count]
    for machine in machines:
        tally = used.setdefault(machine.host, [0, 0, 0, 0])
        if machine.state in RESIDENT_STATES:
            guest = machine.config.get("guest") or {}
            if guest.get("cpu_kind") == "performance":
                tally[0] += int(guest.get("cpus") or 1)
            tally[1] += int(guest.get("memory_mb") or 256)
        if machine.app_name == app_name and not count_volumes:
            tally[3] += 1
    for volume in volumes:
        tally = used.setdefault(volume.host, [0, 0, 0, 0])
        tally[2] += volume.size_gb * unit_bytes
        if volume.app_name == app_name and count_volumes:
            tally[3] += 1
    loads = []
    for info, reachable in hosts:
        taken = used.get(info.name, [0, 0, 0, 0])
        loads.append(HostLoad(info.name, info.region, reachable, info.cpus, info.memory_mb, info.disk_bytes, *taken))
    return loads
