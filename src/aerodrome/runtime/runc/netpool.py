"""Prepared network slots: for each organisation that starts machines, a few netns and veth pairs made before a
start asks for them, so that a start only names and addresses one instead of building it.

A slot is what a fresh start builds (network.py) less what names one machine: a paused holder with a user
namespace, its ids not mapped yet, and the network namespace that user namespace owns, named
`aerodrome-pool-<data dir>-<token>`; a veth pair whose machine end `eth0` is up with its routes to the
organisation's gateways, and whose host end, down and named `ad-p<token>`, carries the gateway and host-service
addresses and forwards. A start maps the machine's ids, names the netns after the machine, adds the machine's
addresses inside, then renames the host end to the machine's name and brings it up with the routes to the
machine: the state a fresh start reaches, which stop, destroy, recovery and usage find by the machine's names.

Isolation: a slot is made for one organisation's subnet and only given to a machine whose allocation has exactly
its organisation, slot and gateways; an organisation's slots go when its subnet is given back. A host end that
is down has no route to it and forwards nothing; the firewall's rules name subnets and `ad-+`, so a pooled
slot is under the same rules as a fresh one.

Bounded: `size` slots for each of the `orgs` organisations that started machines most recently, refilled in the
background after each take. All are removed at close; those a daemon that died left (same data directory) are
removed at the next one's start: their holders by recorded pid and start time, their netns by name.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from aerodrome.runtime.process import run
from aerodrome.runtime.runc import userns
from aerodrome.runtime.runc.network import (
    IFACE_PREFIX,
    NETNS_DIR,
    Allocation,
    forwarding_lines,
    heredoc,
    host_up_lines,
    iface_conf,
    inside_address_lines,
    inside_link_lines,
    veth_lines,
)
from aerodrome.runtime.runc.userns import IdRange, Namespaces

log = logging.getLogger(__name__)

POOL_NETNS = "aerodrome-pool-"
DEFAULT_SIZE = 2
DEFAULT_ORGS = 8
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


@dataclass(frozen=True, slots=True)
class OrgNet:
    """What a slot is made for: an organisation's subnet as the host end of its veths carries it."""

    org: int
    slot: int
    gateway4: str
    gateway6: str

    @classmethod
    def of(cls, allocation: Allocation) -> OrgNet:
        return cls(allocation.org, allocation.slot, allocation.gateway4, allocation.gateway6)


@dataclass(slots=True)
class Slot:
    """One prepared netns and veth pair, held by an unmapped holder."""

    net: OrgNet
    netns: str
    host_iface: str
    namespaces: Namespaces
    started: str  # the holder's start time: its pid is its only while it lives

    @property
    def netns_path(self) -> str:
        return f"{NETNS_DIR}/{self.netns}"

    def claim(self, allocation: Allocation, ids: IdRange, record: Path) -> Namespaces:
        """Make the slot the machine's: its ids mapped, its holder recorded at `record`, its netns named after it
        (the caller then runs `connect`). A slot that fails here is removed."""
        try:
            userns.map_ids(self.namespaces, ids)
            if self.namespaces.record is not None:
                os.replace(self.namespaces.record, record)
            self.namespaces.record = record
            _unname(allocation.netns_path)  # what an earlier run may have left
            _name(f"/proc/{self.namespaces.pid}/ns/net", allocation.netns_path)
            _unname(self.netns_path)
        except BaseException:
            self.remove()
            raise
        return self.namespaces

    async def connect(self, allocation: Allocation) -> None:
        """Address the machine inside, then rename the host end after it and bring it up with its routes."""
        await run(["sh", "-c", _claim_script(self, allocation)], timeout=10)

    def remove(self) -> None:
        """End the holder and drop the pool's name: the kernel then removes the netns and both veth ends."""
        if self.namespaces.pid > 0 and not self.holder_lives():
            self.namespaces.pid = 0  # ended already (by `clear_dead` of another runtime on this directory)
        self.namespaces.close()
        _unname(self.netns_path)

    def holder_lives(self) -> bool:
        return userns.holder_lives(self.namespaces.pid, self.started)


class NetPool:
    """The prepared slots of one runtime; construct it inside the running event loop."""

    def __init__(
        self, directory: Path, services: tuple[str, ...] = (), size: int = DEFAULT_SIZE, orgs: int = DEFAULT_ORGS
    ) -> None:
        self.directory = directory  # the holders' records
        self.services = services
        self.size = size
        self.orgs = orgs
        self.prefix = pool_prefix(directory)
        self._ready: collections.OrderedDict[OrgNet, list[Slot]] = collections.OrderedDict()
        self._refills: dict[OrgNet, asyncio.Task[None]] = {}
        self._closed = False

    def take(self, allocation: Allocation) -> Slot | None:
        """A ready slot of the machine's organisation, or None (the start builds its own). The caller calls
        `refill` once its start is done: a veth made meanwhile would hold the kernel's network lock that the
        start's own `ip` commands wait for."""
        if self.size <= 0 or self._closed:
            return None
        net = OrgNet.of(allocation)
        slots = self._ready.get(net)
        if slots is None:
            slots = self._ready[net] = []
            self._evict()
        self._ready.move_to_end(net)
        while slots:
            slot = slots.pop()
            if slot.holder_lives():
                return slot
            slot.remove()  # its holder died with the thread that made it
        return None

    def refill(self, allocation: Allocation) -> None:
        """Bring the pool of the machine's organisation back to `size`, in the background."""
        net = OrgNet.of(allocation)
        if not self._closed and net in self._ready:
            self._refill(net)

    def ready(self, org: int) -> int:
        """How many slots of `org` are ready."""
        return sum(len(slots) for net, slots in self._ready.items() if net.org == org)

    def slots(self) -> list[Slot]:
        return [slot for slots in self._ready.values() for slot in slots]

    async def settled(self) -> None:
        """Until no refill runs."""
        while self._refills:
            await asyncio.gather(*list(self._refills.values()), return_exceptions=True)

    def _evict(self) -> None:
        while len(self._ready) > self.orgs:
            _, slots = self._ready.popitem(last=False)
            _remove_all(slots)  # a refill still running sees its list gone and removes what it makes

    def _refill(self, net: OrgNet) -> None:
        if net in self._refills:
            return
        task = asyncio.get_running_loop().create_task(self._fill(net))
        self._refills[net] = task
        task.add_done_callback(lambda _: self._refills.pop(net, None))

    async def _fill(self, net: OrgNet) -> None:
        while not self._closed and (slots := self._ready.get(net)) is not None and len(slots) < self.size:
            try:
                slot = await self._make(net)
            except Exception:
                log.exception("could not prepare a network slot for organisation %s", net.org)
                return
            if self._closed or self._ready.get(net) is not slots:  # dropped meanwhile
                slot.remove()
                return
            slots.append(slot)

    async def _make(self, net: OrgNet) -> Slot:
        token = secrets.token_hex(6)[:11]  # interface names hold 15 bytes
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        namespaces = userns.new_namespaces(None, self.directory / token, die_with_daemon=True)
        slot = Slot(
            net, f"{self.prefix}{token}", f"{IFACE_PREFIX}p{token}", namespaces, userns.start_time(namespaces.pid)
        )
        try:
            _name(f"/proc/{namespaces.pid}/ns/net", slot.netns_path)
            await run(["sh", "-c", _prepare_script(slot, self.services)], timeout=10)
        except BaseException:
            slot.remove()
            raise
        return slot

    async def drop(self, org: int) -> None:
        """Remove the slots of an organisation whose subnet is given back."""
        for net in [net for net in self._ready if net.org == org]:
            _remove_all(self._ready.pop(net))
            if (task := self._refills.get(net)) is not None:
                await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        """Remove every slot; nothing is made after."""
        self._closed = True
        await self.settled()
        while self._ready:
            _remove_all(self._ready.popitem()[1])

    def clear_dead(self) -> None:
        """Remove what a daemon of this data directory that died left: its holders, then their netns names."""
        if self.directory.is_dir():
            for record in self.directory.iterdir():
                userns.kill_stale_holder(record)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(NETNS_DIR):
                if name.startswith(self.prefix):
                    _unname(f"{NETNS_DIR}/{name}")


def pool_prefix(directory: Path) -> str:
    """The names of the netns of the pool whose holders are recorded in `directory`."""
    return f"{POOL_NETNS}{hashlib.sha256(str(directory).encode()).hexdigest()[:8]}-"


def pool_leftovers(directory: Path) -> list[str]:
    """The holders recorded in `directory` that still live, and the netns names of that pool."""
    found = []
    if directory.is_dir():
        found += [f"pool holder {record}" for record in directory.iterdir() if userns.recorded_holder_lives(record)]
    with contextlib.suppress(FileNotFoundError):
        found += [f"netns {name}" for name in os.listdir(NETNS_DIR) if name.startswith(pool_prefix(directory))]
    return found


def _remove_all(slots: list[Slot]) -> None:
    while slots:
        slots.pop().remove()


def _prepare_script(slot: Slot, services: tuple[str, ...]) -> str:
    net = slot.net
    inside = inside_link_lines(Allocation("", net.org, net.slot, 0, "", "", net.gateway4, net.gateway6, "", ""))
    return "\n".join(
        [
            "set -e",
            *heredoc("ip -batch -", veth_lines(slot.host_iface, slot.netns, net.gateway4, net.gateway6, services)),
            *forwarding_lines(slot.host_iface),
            *heredoc(f"nsenter --net={slot.netns_path} ip -batch -", inside),
        ]
    )


def _claim_script(slot: Slot, a: Allocation) -> str:
    return "\n".join(
        [
            "set -e",
            # the veth of an earlier run of this machine, on its way out, still holds the name
            f"if [ -e {iface_conf(a)} ]; then ip link del {a.host_iface} 2>/dev/null || true; fi",
            *heredoc(f"nsenter --net={a.netns_path} ip -batch -", inside_address_lines(a)),
            *heredoc("ip -batch -", [f"link set {slot.host_iface} name {a.host_iface}", *_host_up(a)]),
        ]
    )


def _host_up(a: Allocation) -> list[str]:
    return host_up_lines(a.host_iface, a)


def _name(netns: str, path: str) -> None:
    """Bind a netns at `path`, as `ip netns attach` does, without its process."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444))
    if _libc.mount(netns.encode(), path.encode(), None, MS_BIND, None) != 0:
        error = ctypes.get_errno()
        os.unlink(path)
        raise OSError(error, f"bind {netns} on {path}: {os.strerror(error)}")


def _unname(path: str) -> None:
    """Drop a netns name; a no-op when there is none."""
    if not os.path.lexists(path):
        return
    _libc.umount2(path.encode(), MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
