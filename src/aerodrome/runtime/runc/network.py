"""Machine networks: one netns and veth pair per running machine, a private subnet per organisation.

Addresses: each organisation present on the host gets a slot of the IPv4 pool, a /20 unless configured (gateway .1,
machines from .2), and the IPv6 /64 `fdaa:0:<org>::/64` derived from its network id (Fly's 6PN shape), in which a
machine's host part is its IPv4 address. A machine's addresses are allocated at create and kept until destroy; its
netns and veth pair are built at start (or taken ready from netpool.py) and removed when it stops, so waiting
machines cost the kernel nothing. The host side of every veth carries the organisation's gateway addresses, so the
host reaches each machine directly and machines of one organisation reach each other through the host's forwarding.

Isolation (iptables and ip6tables, chain AERODROME; see firewall.py): forwarding between machines is accepted
only within one organisation's subnet; egress (when on) only out through the uplink, and never to private
ranges (egress.py); reverse-path filtering drops spoofed sources; of the host, machines reach only their
organisation's flycast addresses. Unreachable routes for the whole pools keep a stray packet from leaving the
host (routes.py). The host forwards what a machine sends because its veth's forwarding sysctls are on: nothing
host-wide is switched on.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import ipaddress
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aerodrome.core import CapacityError, FailedPreconditionError, InvalidArgumentError
from aerodrome.runtime.process import run
from aerodrome.runtime.runc.layout import RECORD_ERRORS, read_json, set_aside, write_json

CHAIN = "AERODROME"
IFACE_PREFIX = "ad-"
IPV6_PREFIX = ipaddress.IPv6Network("fdaa::/16")
NETNS_DIR = "/run/netns"
#: Linux 6.17 and later forward IPv6 per interface (`force_forwarding`); older kernels only host-wide.
IPV6_PER_INTERFACE = os.path.exists("/proc/sys/net/ipv6/conf/default/force_forwarding")


@dataclass(frozen=True, slots=True)
class Allocation:
    """A machine's place in its organisation's network."""

    machine_id: str
    org: int
    slot: int  # the organisation's subnet in the IPv4 pool
    index: int  # the machine's host number in it, from 2
    ipv4: str
    ipv6: str
    gateway4: str
    gateway6: str
    subnet4: str
    subnet6: str

    @property
    def host_iface(self) -> str:
        return host_iface_name(self.machine_id)

    @property
    def netns(self) -> str:
        return netns_name(self.machine_id)

    @property
    def netns_path(self) -> str:
        return f"{NETNS_DIR}/{self.netns}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Allocation:
        """The allocation of a record; a TypeError when a value is missing or of the wrong type."""
        allocation = cls(**data)
        for name in _ALLOCATION_FIELDS:
            if type(getattr(allocation, name)) is not (int if name in ("org", "slot", "index") else str):
                raise TypeError(f"network.{name} is not a {'number' if name in ('org', 'slot', 'index') else 'string'}")
        return allocation


_ALLOCATION_FIELDS = tuple(f.name for f in fields(Allocation))


def host_iface_name(machine_id: str) -> str:
    """The host end of a machine's veth."""
    # Interface names hold 15 bytes: a digest of the id keeps them unique across runtimes on one host.
    return f"{IFACE_PREFIX}{hashlib.sha256(machine_id.encode()).hexdigest()[:12]}"


def netns_name(machine_id: str) -> str:
    return f"aerodrome-{machine_id}"


def org_prefix6(org: int) -> ipaddress.IPv6Network:
    """The organisation's /64: its network id (32 bits) in the third and fourth groups."""
    org32 = org & 0xFFFF_FFFF
    base = int(IPV6_PREFIX.network_address) | (org32 << 64)
    return ipaddress.IPv6Network((base, 64))


#: Flycast addresses of an organisation: `<org /64>:1::/80`, apart from machine addresses (the low host numbers).
FLYCAST_OFFSET = 1 << 48
FLYCAST_PREFIXLEN = 80


def flycast_prefix6(subnet6: str) -> str:
    """The flycast /80 of an organisation's /64: where the edge binds its addresses on the host."""
    network = ipaddress.IPv6Network(subnet6)
    return str(ipaddress.IPv6Network((int(network.network_address) + FLYCAST_OFFSET, FLYCAST_PREFIXLEN)))


#: Each organisation's slot of the IPv4 pool, by default a /20: thousands of machines per organisation fit on a
#: host (created machines hold their address, as on Fly) and a /16 pool holds 16 organisations.
DEFAULT_ORG_PREFIXLEN = 20
MAX_ORG_PREFIXLEN = 30  # network, gateway, one machine, broadcast


def check_org_prefixlen(pool4: ipaddress.IPv4Network, org_prefixlen: int) -> None:
    """An organisation's subnet must fit in the pool and hold at least one machine."""
    if not pool4.prefixlen <= org_prefixlen <= MAX_ORG_PREFIXLEN:
        raise InvalidArgumentError(
            f"an organisation subnet of /{org_prefixlen} does not fit the machine pool {pool4}: "
            f"use /{pool4.prefixlen} to /{MAX_ORG_PREFIXLEN}"
        )


@dataclass(frozen=True, slots=True)
class _Subnet:
    base4: int
    base6: int
    gateway4: str
    gateway6: str
    subnet4: str
    subnet6: str


@dataclass(slots=True)
class _Hosts:
    """The host numbers taken in one organisation's subnet: the lowest free one is found in constant time."""

    last: int  # the highest host number (the broadcast address is next)
    taken: set[int] = field(default_factory=set)
    released: list[int] = field(default_factory=list)  # a heap of freed numbers below `cursor`
    cursor: int = 2  # every number below it is taken or in `released`

    def take(self) -> int | None:
        while self.released:
            index = heapq.heappop(self.released)
            if index not in self.taken:
                self.taken.add(index)
                return index
        while self.cursor in self.taken:
            self.cursor += 1
        if self.cursor > self.last:
            return None
        self.taken.add(self.cursor)
        return self.cursor

    def adopt(self, index: int) -> None:
        self.taken.add(index)

    def release(self, index: int) -> None:
        if index in self.taken:
            self.taken.discard(index)
            if index < self.cursor:
                heapq.heappush(self.released, index)


class AddressPool:
    """Allocates organisation slots (persisted in orgs.json) and machine addresses (persisted by the caller).

    orgs.json records the pool and the subnet size with the slots: slots cannot be moved or re-cut while machines
    and firewall rules use them, so another pool or `org_prefixlen` for a host with organisations is refused.

    An orgs.json that does not read is set aside and rebuilt from the machines' records, each of which holds its
    organisation's slot and subnet (`adopt`, then `rebuilt`): the slots of running machines must not move.
    """

    def __init__(
        self,
        orgs_file: Path,
        pool4: str,
        org_prefixlen: int = DEFAULT_ORG_PREFIXLEN,
        *,
        quarantine: Path | None = None,
    ) -> None:
        self.orgs_file = orgs_file
        self.pool4 = ipaddress.IPv4Network(pool4)
        check_org_prefixlen(self.pool4, org_prefixlen)
        self.org_prefixlen = org_prefixlen
        self.org_size = 2 ** (32 - org_prefixlen)
        self.quarantine = quarantine or orgs_file.parent / "quarantine"
        #: Why orgs.json did not read, when it did not: the slots then come from the machines' records.
        self.damage: Exception | None = None
        try:
            recorded_pool, recorded_prefixlen, self.slots = _read_slots(orgs_file)
        except RECORD_ERRORS as error:
            recorded_pool, recorded_prefixlen, self.slots = None, org_prefixlen, {}
            self.damage = error
        self._misfits = 0  # allocations adopted while rebuilding that are not in this pool's subnets
        #: The pool this host's rules and routes were last made for, when it was another (and no organisation
        #: holds a subnet of it, or the pool could not change): what of it is on the host is to be removed.
        self.replaced_pool = recorded_pool if recorded_pool not in (None, str(self.pool4)) else None
        if self.slots and recorded_pool not in (None, str(self.pool4)):
            raise FailedPreconditionError(
                f"organisations on this host have subnets of the machine pool {recorded_pool}; the pool cannot change "
                f"to {self.pool4} (keep {recorded_pool}, or use a new data directory)"
            )
        if self.slots and recorded_prefixlen != org_prefixlen:
            raise FailedPreconditionError(
                f"organisations on this host have /{recorded_prefixlen} subnets of the machine pool; "
                f"the subnet size cannot change to /{org_prefixlen} (keep /{recorded_prefixlen}, or use a new data "
                "directory)"
            )
        self.used: dict[int, _Hosts] = {}
        self._subnets: dict[tuple[int, int], _Subnet] = {}  # the strings of each organisation's subnet, made once

    def adopt(self, allocation: Allocation) -> None:
        """Mark an allocation found on disk as taken."""
        if self.damage is not None and (
            self.slots.setdefault(allocation.org, allocation.slot) != allocation.slot
            or allocation.slot >= 2 ** (self.org_prefixlen - self.pool4.prefixlen)
            or allocation.subnet4 != self.subnet_of(allocation.slot)
        ):
            self._misfits += 1
        self.slots.setdefault(allocation.org, allocation.slot)
        self._hosts(allocation.slot).adopt(allocation.index)

    def rebuilt(self) -> None:
        """Set an unreadable orgs.json aside and write down in its place the slots adopted from the machines'
        records, once they are known to fit this pool; a FailedPreconditionError when they do not (they were cut
        from another pool or subnet size, which the lost file named), and the file is left where it is."""
        if self.damage is None:
            return
        if self._misfits or len(set(self.slots.values())) != len(self.slots):
            raise FailedPreconditionError(
                f"{self.orgs_file} was unreadable, and the machines' records do not fit the machine pool "
                f"{self.pool4} in /{self.org_prefixlen} subnets: start with the pool and subnet size this data "
                "directory was made with"
            )
        then = f"rebuilt it from the machines' records ({len(self.slots)} organisations)"
        set_aside(self.quarantine, "host", self.orgs_file, self.damage, then=then)
        self.record()
        self.damage = None

    def allocate(self, machine_id: str, org: int) -> Allocation:
        slot = self._slot(org)
        index = self._hosts(slot).take()
        subnet = self._subnet(org, slot)
        if index is None:
            raise CapacityError(
                f"the organisation's private subnet {subnet.subnet4} on this host is full: its "
                f"{self.org_size - 3} machine addresses are all taken (a destroyed machine gives its address back)"
            )
        ipv4 = subnet.base4 + index
        return Allocation(
            machine_id=machine_id,
            org=org,
            slot=slot,
            index=index,
            ipv4=str(ipaddress.IPv4Address(ipv4)),
            # The IPv4 address as the host part keeps the IPv6 address unique on the host, whatever the pool.
            ipv6=str(ipaddress.IPv6Address(subnet.base6 + ipv4)),
            gateway4=subnet.gateway4,
            gateway6=subnet.gateway6,
            subnet4=subnet.subnet4,
            subnet6=subnet.subnet6,
        )

    def _subnet(self, org: int, slot: int) -> _Subnet:
        subnet = self._subnets.get((org, slot))
        if subnet is None:
            subnet4 = ipaddress.IPv4Network(self.subnet_of(slot))
            subnet6 = org_prefix6(org)
            subnet = self._subnets[(org, slot)] = _Subnet(
                base4=int(subnet4.network_address),
                base6=int(subnet6.network_address),
                gateway4=str(subnet4.network_address + 1),
                gateway6=str(subnet6.network_address + 1),
                subnet4=str(subnet4),
                subnet6=str(subnet6),
            )
        return subnet

    def subnet_of(self, slot: int) -> str:
        """The subnet of an organisation slot."""
        base = int(self.pool4.network_address) + slot * self.org_size
        return str(ipaddress.IPv4Network((base, self.org_prefixlen)))

    def release(self, allocation: Allocation) -> None:
        hosts = self.used.get(allocation.slot)
        if hosts is not None:
            hosts.release(allocation.index)

    def _hosts(self, slot: int) -> _Hosts:
        hosts = self.used.get(slot)
        if hosts is None:
            hosts = self.used[slot] = _Hosts(last=self.org_size - 2)
        return hosts

    def _slot(self, org: int) -> int:
        if org in self.slots:
            return self.slots[org]
        free = set(range(2 ** (self.org_prefixlen - self.pool4.prefixlen))) - set(self.slots.values())
        if not free:
            raise CapacityError(
                f"no free organisation subnet on this host: the machine pool {self.pool4} holds "
                f"{len(self.slots)} /{self.org_prefixlen} subnets, each taken by an organisation with machines here"
            )
        self.slots[org] = min(free)
        self.record()
        return self.slots[org]

    def record(self) -> None:
        """Write the pool, the subnet size and the slots down."""
        slots = {str(k): v for k, v in self.slots.items()}
        write_json(self.orgs_file, {"pool": str(self.pool4), "org_prefixlen": self.org_prefixlen, "slots": slots})
        self.replaced_pool = None

    def empty_orgs(self) -> list[int]:
        """Organisations that hold a subnet but no machine address."""
        return [org for org, slot in self.slots.items() if not (hosts := self.used.get(slot)) or not hosts.taken]

    def release_org(self, org: int) -> tuple[str, str]:
        """Give back the subnet of an organisation without machines here; returns its IPv4 and IPv6 subnets."""
        slot = self.slots.pop(org)
        self.used.pop(slot, None)
        self._subnets.pop((org, slot), None)
        self.record()
        return self.subnet_of(slot), str(org_prefix6(org))


def _read_slots(orgs_file: Path) -> tuple[str | None, int, dict[int, int]]:
    """The recorded pool (None when not recorded), subnet size and organisation slots; a file of bare slots
    predates the size, always a /20."""
    data = read_json(orgs_file) or {}
    if "slots" in data:
        return data.get("pool"), int(data["org_prefixlen"]), {int(k): int(v) for k, v in data["slots"].items()}
    return None, DEFAULT_ORG_PREFIXLEN, {int(k): int(v) for k, v in data.items()}


def _netns_script(a: Allocation, holder: int) -> str:
    """Clear what a previous run may have left, and name the machine's (empty) network namespace, which the
    process `holder` made inside the machine's user namespace."""
    return "\n".join(
        [
            "set -e",
            f"if [ -e {a.netns_path} ]; then ip netns del {a.netns}; fi",
            f"if [ -e {iface_conf(a)} ]; then ip link del {a.host_iface} 2>/dev/null || true; fi",
            f"ip netns attach {a.netns} {holder}",
        ]
    )


def _link_script(a: Allocation, services: tuple[str, ...] = ()) -> str:
    """Connect the namespace to the host with a veth pair; the machine side is configured first. `services`
    are the addresses of the host's services for machines (its resolver), on the host side of every veth."""
    return "\n".join(
        [
            "set -e",
            *heredoc("ip -batch -", veth_lines(a.host_iface, a.netns, a.gateway4, a.gateway6, services)),
            *forwarding_lines(a.host_iface),
            # nsenter, not `ip netns exec`: the latter remounts /sys and costs more.
            *heredoc(f"nsenter --net={a.netns_path} ip -batch -", [*inside_address_lines(a), *inside_link_lines(a)]),
            *heredoc("ip -batch -", host_up_lines(a.host_iface, a)),
        ]
    )


def veth_lines(iface: str, netns: str, gateway4: str, gateway6: str, services: tuple[str, ...]) -> list[str]:
    """`ip -batch` lines for the veth pair into `netns`, its host end (left down) with the gateway addresses."""
    return [
        f"link add {iface} type veth peer name eth0 netns {netns}",
        # A link-local address that skips DAD: until the host side has one, the kernel cannot send the
        # neighbour solicitations that forwarding to this machine needs (a second-long stall otherwise).
        f"link set {iface} addrgenmode none",
        f"addr add fe80::1/64 dev {iface} nodad",
        f"addr add {gateway4}/32 dev {iface}",
        f"addr add {gateway6}/128 dev {iface} nodad",
        *(f"addr add {_host_route(s)} dev {iface}{' nodad' if ':' in s else ''}" for s in services),
    ]


def inside_link_lines(a: Allocation) -> list[str]:
    """The machine side's links and routes to its organisation's gateways: nothing of the machine's own."""
    return [
        "link set lo up",
        "link set eth0 up",
        f"route add {a.gateway4} dev eth0",
        f"route add default via {a.gateway4} dev eth0",
        f"route add {a.gateway6} dev eth0",
        f"route add default via {a.gateway6} dev eth0",
    ]


def inside_address_lines(a: Allocation) -> list[str]:
    return [f"addr add {a.ipv4}/32 dev eth0", f"addr add {a.ipv6}/128 dev eth0 nodad"]


def host_up_lines(iface: str, a: Allocation) -> list[str]:
    """Bring the host end up with the routes to the machine's addresses."""
    return [
        f"link set {iface} up",
        # replace: the veth of a machine that last held this address may still be on its way out
        f"route replace {a.ipv4}/32 dev {iface}",
        f"route replace {a.ipv6}/128 dev {iface}",
    ]


def _host_route(address: str) -> str:
    return f"{address}/{128 if ':' in address else 32}"


def forwarding_lines(iface: str) -> list[str]:
    """Forward what the machine sends (the ingress interface decides), with the shell's builtins: no process."""
    lines = [f"echo 1 > /proc/sys/net/ipv4/conf/{iface}/forwarding"]
    if IPV6_PER_INTERFACE:
        lines.append(f"echo 1 > /proc/sys/net/ipv6/conf/{iface}/force_forwarding")
    return lines


def heredoc(command: str, lines: list[str]) -> list[str]:
    return [f"{command} <<'EOF'", *lines, "EOF"]


async def create_netns(allocation: Allocation, holder: int) -> None:
    """The first half of `create_network`: name the netns `holder` made, which runc starts the container in."""
    await run(["sh", "-c", _netns_script(allocation, holder)], timeout=10)


async def connect_netns(allocation: Allocation, services: tuple[str, ...] = ()) -> None:
    """The second half of `create_network`, which may run while the container starts.

    One shell for all of it: each process spawned from the daemon costs milliseconds. The machine side is
    configured before the host side comes up (the reverse costs a 1 s ARP stall).
    """
    await run(["sh", "-c", _link_script(allocation, services)], timeout=10)


async def create_network(allocation: Allocation, holder: int) -> None:
    """Name the netns of `holder` and connect it with a veth pair (first clearing any left by an earlier run)."""
    await create_netns(allocation, holder)
    await connect_netns(allocation)


VETH_GONE_POLLS = 2000  # of 5 ms each: how long to wait for the kernel to remove a veth


def named_only(machine_id: str) -> Allocation:
    """An allocation that names a machine's netns and veth, for removing them when its addresses are unknown
    (its record was unreadable): those names come from the machine id alone."""
    return Allocation(machine_id, 0, 0, 0, "", "", "", "", "", "")


async def delete_network(allocation: Allocation, *, wait: bool = True) -> None:
    """Remove the netns, and with it the veth pair; a no-op for what is already gone.

    Unmounting the netns is enough: the kernel then destroys it, and both ends of the veth, in the background,
    which costs the caller a few milliseconds instead of the tens that a synchronous `ip link del` takes. With
    `wait`, return only once the host end is gone too (a destroyed machine leaves nothing behind).
    """
    a = allocation
    if _netns_exists(a):
        await run(["ip", "netns", "del", a.netns], timeout=10, check=False)
    if not wait:
        return
    for _ in range(VETH_GONE_POLLS):
        if not _iface_exists(a):
            return
        await asyncio.sleep(0.005)
    await run(["ip", "link", "del", a.host_iface], timeout=10, check=False)  # a netns someone else holds open


def _netns_exists(allocation: Allocation) -> bool:
    return os.path.exists(allocation.netns_path)


def iface_conf(allocation: Allocation) -> str:
    # /proc/sys/net shows the reader's network namespace; /sys/class/net shows the one sysfs was mounted in,
    # which is not the daemon's when it runs in a namespace of its own (`nsenter --net`).
    return f"/proc/sys/net/ipv4/conf/{allocation.host_iface}"


def _iface_exists(allocation: Allocation) -> bool:
    return os.path.exists(iface_conf(allocation))


def network_exists(allocation: Allocation) -> bool:
    """Whether any of the machine's network is on the host."""
    return _netns_exists(allocation) or _iface_exists(allocation)
