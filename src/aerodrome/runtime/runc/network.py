"""Machine networks: one netns and veth pair per running machine, a private subnet per organisation.

Addresses: each organisation present on the host gets a /20 slot of the IPv4 pool (gateway .1, machines
from .2) and the IPv6 /64 `fdaa:0:<org>::/64` derived from its network id (Fly's 6PN shape), in which a
machine's host part is its IPv4 address. A machine's addresses are allocated at create and kept until destroy;
its netns and veth pair are built at start and removed when it stops, so waiting machines cost the kernel
nothing. The host side of every veth carries the organisation's gateway addresses, so the host reaches each
machine directly and machines of one organisation reach each other through the host's forwarding.

Isolation (iptables and ip6tables, chain AERODROME; see firewall.py): forwarding between machines is accepted
only within one organisation's subnet; egress (when on) only out through the uplink; reverse-path filtering
drops spoofed sources; of the host, machines reach only their organisation's flycast addresses. Unreachable
routes for the whole pools keep a stray packet from leaving the host.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aerodrome.core import RuntimeFailureError
from aerodrome.runtime.process import run
from aerodrome.runtime.runc.layout import read_json, write_json

CHAIN = "AERODROME"
IFACE_PREFIX = "ad-"
IPV6_PREFIX = ipaddress.IPv6Network("fdaa::/16")
NETNS_DIR = "/run/netns"


@dataclass(frozen=True, slots=True)
class Allocation:
    """A machine's place in its organisation's network."""

    machine_id: str
    org: int
    slot: int  # the organisation's subnet (ORG_PREFIXLEN) in the IPv4 pool
    index: int  # the machine's host number in it, 2..254
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
        return cls(**data)


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


#: Each organisation's slot of the IPv4 pool: a /20, so thousands of machines per organisation fit on a host
#: (created machines hold their address, as on Fly) and a /16 pool holds 16 organisations.
ORG_PREFIXLEN = 20
ORG_SIZE = 2 ** (32 - ORG_PREFIXLEN)


class AddressPool:
    """Allocates organisation slots (persisted in orgs.json) and machine addresses (persisted by the caller)."""

    def __init__(self, orgs_file: Path, pool4: str) -> None:
        self.orgs_file = orgs_file
        self.pool4 = ipaddress.IPv4Network(pool4)
        if self.pool4.prefixlen > ORG_PREFIXLEN:
            raise ValueError(f"the IPv4 pool must be a /{ORG_PREFIXLEN} or larger")
        self.slots: dict[int, int] = {int(k): v for k, v in (read_json(orgs_file) or {}).items()}
        self.used: dict[int, set[int]] = {}

    def adopt(self, allocation: Allocation) -> None:
        """Mark an allocation found on disk as taken."""
        self.slots.setdefault(allocation.org, allocation.slot)
        self.used.setdefault(allocation.slot, set()).add(allocation.index)

    def allocate(self, machine_id: str, org: int) -> Allocation:
        slot = self._slot(org)
        taken = self.used.setdefault(slot, set())
        index = next((i for i in range(2, ORG_SIZE - 1) if i not in taken), None)
        if index is None:
            raise RuntimeFailureError(f"organisation {org} has no free private address on this host")
        taken.add(index)
        subnet4 = ipaddress.IPv4Network(self.subnet_of(slot))
        subnet6 = org_prefix6(org)
        ipv4 = subnet4.network_address + index
        return Allocation(
            machine_id=machine_id,
            org=org,
            slot=slot,
            index=index,
            ipv4=str(ipv4),
            # The IPv4 address as the host part keeps the IPv6 address unique on the host, whatever the pool.
            ipv6=str(subnet6.network_address + int(ipv4)),
            gateway4=str(subnet4.network_address + 1),
            gateway6=str(subnet6.network_address + 1),
            subnet4=str(subnet4),
            subnet6=str(subnet6),
        )

    def subnet_of(self, slot: int) -> str:
        """The subnet of an organisation slot."""
        return str(ipaddress.IPv4Network((int(self.pool4.network_address) + slot * ORG_SIZE, ORG_PREFIXLEN)))

    def release(self, allocation: Allocation) -> None:
        self.used.get(allocation.slot, set()).discard(allocation.index)

    def _slot(self, org: int) -> int:
        if org in self.slots:
            return self.slots[org]
        free = set(range(2 ** (ORG_PREFIXLEN - self.pool4.prefixlen))) - set(self.slots.values())
        if not free:
            raise RuntimeFailureError("no free organisation subnet in the IPv4 pool on this host")
        self.slots[org] = min(free)
        write_json(self.orgs_file, {str(k): v for k, v in self.slots.items()})
        return self.slots[org]


def _netns_script(a: Allocation) -> str:
    """Clear what a previous run may have left, and make the machine's (empty) network namespace."""
    return "\n".join(
        [
            "set -e",
            f"if [ -e {a.netns_path} ]; then ip netns del {a.netns}; fi",
            f"if [ -e /sys/class/net/{a.host_iface} ]; then ip link del {a.host_iface} 2>/dev/null || true; fi",
            f"ip netns add {a.netns}",
        ]
    )


def _link_script(a: Allocation) -> str:
    """Connect the namespace to the host with a veth pair; the machine side is configured first."""
    host_down = [
        f"link add {a.host_iface} type veth peer name eth0 netns {a.netns}",
        # A link-local address that skips DAD: until the host side has one, the kernel cannot send the
        # neighbour solicitations that forwarding to this machine needs (a second-long stall otherwise).
        f"link set {a.host_iface} addrgenmode none",
        f"addr add fe80::1/64 dev {a.host_iface} nodad",
        f"addr add {a.gateway4}/32 dev {a.host_iface}",
        f"addr add {a.gateway6}/128 dev {a.host_iface} nodad",
    ]
    inside = [
        "link set lo up",
        f"addr add {a.ipv4}/32 dev eth0",
        f"addr add {a.ipv6}/128 dev eth0 nodad",
        "link set eth0 up",
        f"route add {a.gateway4} dev eth0",
        f"route add default via {a.gateway4} dev eth0",
        f"route add {a.gateway6} dev eth0",
        f"route add default via {a.gateway6} dev eth0",
    ]
    host_up = [
        f"link set {a.host_iface} up",
        # replace: the veth of a machine that last held this address may still be on its way out
        f"route replace {a.ipv4}/32 dev {a.host_iface}",
        f"route replace {a.ipv6}/128 dev {a.host_iface}",
    ]
    return "\n".join(
        [
            "set -e",
            *_heredoc("ip -batch -", host_down),
            # nsenter, not `ip netns exec`: the latter remounts /sys and costs more.
            *_heredoc(f"nsenter --net={a.netns_path} ip -batch -", inside),
            *_heredoc("ip -batch -", host_up),
        ]
    )


def _heredoc(command: str, lines: list[str]) -> list[str]:
    return [f"{command} <<'EOF'", *lines, "EOF"]


async def create_netns(allocation: Allocation) -> None:
    """The first half of `create_network`: what runc needs to start the container in its namespace."""
    await run(["sh", "-c", _netns_script(allocation)], timeout=10)


async def connect_netns(allocation: Allocation) -> None:
    """The second half of `create_network`, which may run while the container starts.

    One shell for all of it: each process spawned from the daemon costs milliseconds. The machine side is
    configured before the host side comes up (the reverse costs a 1 s ARP stall).
    """
    await run(["sh", "-c", _link_script(allocation)], timeout=10)


async def create_network(allocation: Allocation) -> None:
    """Create the netns and veth pair (first clearing any left by an earlier run)."""
    await create_netns(allocation)
    await connect_netns(allocation)


VETH_GONE_POLLS = 2000  # of 5 ms each: how long to wait for the kernel to remove a veth


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


def _iface_exists(allocation: Allocation) -> bool:
    return os.path.exists(f"/sys/class/net/{allocation.host_iface}")


def network_exists(allocation: Allocation) -> bool:
    """Whether any of the machine's network is on the host."""
    return _netns_exists(allocation) or _iface_exists(allocation)
