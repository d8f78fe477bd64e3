"""The private network across hosts (Fly's 6PN): routes to the other hosts' machines over the underlay.

A machine's IPv6 address is its organisation's /64 (the same on every host) with its IPv4 address as the low 32
bits, so hosts whose machine IPv4 pools differ never share an address, and the machines of organisation O on a
host with pool P are the prefix `<O's /64>::P` (a /112 for a /16 pool). For each organisation with machines
here and each peer host, one route sends that prefix to the peer's underlay address; the peer routes the
replies back the same way, as it has machines of that organisation too. The routes carry protocol PROTO, which
routes.py counts as aerodrome's own inside fdaa::/16.

Forwarded traffic between hosts passes the same AERODROME chain as between machines on one host: accepted
within one organisation's /64, dropped otherwise. What arrives from the underlay with a source in fdaa::/16 is
reverse-path checked, so a peer cannot pass off a packet as one of this host's machines. IPv4 private
addresses stay host-local: only IPv6 crosses hosts, as on Fly.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aerodrome.core import InvalidArgumentError
from aerodrome.runtime.process import run
from aerodrome.runtime.runc.network import CHAIN, IPV6_PER_INTERFACE, IPV6_PREFIX, org_prefix6

PROTO = 173  # rt_protos number tagging the routes to peers' machines
IPV4_BITS = 32


@dataclass(frozen=True, slots=True)
class Peer:
    """Another host: its underlay IPv6 address (the next hop) and its machine IPv4 pool ("" for a host that runs
    no machines, such as a control plane's: its edge reaches machines here, as this host's own edge does)."""

    address: str
    pool4: str = ""

    def __str__(self) -> str:
        return f"{self.address}={self.pool4}" if self.pool4 else self.address


def parse_peer(value: str) -> Peer:
    """`ADDRESS=POOL`: the peer's underlay IPv6 address and its `--machine-ipv4-pool`; `ADDRESS` alone for a host
    without machines."""
    address, sep, pool = value.partition("=")
    try:
        next_hop = ipaddress.IPv6Address(address)
        pool4 = str(ipaddress.IPv4Network(pool)) if sep else ""
    except ValueError:
        raise InvalidArgumentError(f"{value!r}: use IPV6_ADDRESS[=IPV4_POOL], e.g. fd00::2=172.31.0.0/16") from None
    if next_hop in IPV6_PREFIX:
        raise InvalidArgumentError(f"{value!r}: the peer's underlay address must be outside {IPV6_PREFIX}")
    return Peer(str(next_hop), pool4)


def check_peers(own_pool4: str, peers: Sequence[Peer]) -> None:
    """Every host's pool apart from every other's: machines' IPv6 addresses are unique only then."""
    pools = [ipaddress.IPv4Network(own_pool4), *(ipaddress.IPv4Network(p.pool4) for p in peers if p.pool4)]
    for i, pool in enumerate(pools):
        for other in pools[i + 1 :]:
            if pool.overlaps(other):
                raise InvalidArgumentError(
                    f"the machine pools {pool} and {other} overlap: each host needs a pool of its own, or machines on "
                    "two hosts would share an IPv6 address"
                )


def machines_prefix6(org: int, pool4: str) -> str:
    """The IPv6 addresses of organisation `org`'s machines on a host with machine pool `pool4`."""
    pool = ipaddress.IPv4Network(pool4)
    base = int(org_prefix6(org).network_address) | int(pool.network_address)
    return str(ipaddress.IPv6Network((base, 128 - IPV4_BITS + pool.prefixlen)))


def route_lines(orgs: Iterable[int], peers: Sequence[Peer], verb: str) -> list[str]:
    """`ip -6 -batch` lines that add (`replace`) or remove (`del`) the routes to the peers' machines of `orgs`."""
    return [
        f"route {verb} {machines_prefix6(org, p.pool4)} via {p.address} proto {PROTO}"
        for org in orgs
        for p in peers
        if p.pool4
    ]


async def _batch(lines: list[str], *, check: bool) -> None:
    if lines:
        await run(["ip", "-6", "-batch", "-"], stdin="\n".join(lines).encode(), timeout=10, check=check)


async def route_orgs(orgs: Iterable[int], peers: Sequence[Peer]) -> None:
    """Route each organisation's machines on every peer host to that host (idempotent)."""
    await _batch(route_lines(orgs, peers, "replace"), check=True)


async def unroute_orgs(orgs: Iterable[int], peers: Sequence[Peer]) -> None:
    """Remove those routes (the ones that are there): an organisation with no machine left here."""
    await _batch(route_lines(orgs, peers, "del"), check=False)


def _guard(device: str) -> str:
    return f"-i {device} -s {IPV6_PREFIX} -m rpfilter --invert -j DROP"


async def underlay_devices(peers: Sequence[Peer]) -> list[str]:
    """The interfaces the peers are reached through."""
    devices: list[str] = []
    for peer in peers:
        found = json.loads((await run(["ip", "-j", "-6", "route", "get", peer.address], timeout=10)).stdout or b"[]")
        device = str(found[0].get("dev", "")) if found else ""
        if device and device not in devices:
            devices.append(device)
    return devices


def _forward(device: str, value: str) -> None:
    if IPV6_PER_INTERFACE:  # older kernels forward host-wide (firewall.install)
        Path(f"/proc/sys/net/ipv6/conf/{device}/force_forwarding").write_text(value)


def _peer_rules(peers: Sequence[Peer]) -> list[str]:
    """AERODROME's openings for the peers themselves (their edges): to every machine here, and the replies."""
    rules = []
    for peer in peers:
        rules += [
            f"-s {peer.address}/128 -j ACCEPT",
            f"-d {peer.address}/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]
    return rules


async def _insert_once(table: str, chain: str, rule: str) -> None:
    if (await run(["ip6tables", "-t", table, "-C", chain, *rule.split()], timeout=10, check=False)).returncode:
        await run(["ip6tables", "-t", table, "-I", chain, "1", *rule.split()], timeout=10)


async def open_underlay(peers: Sequence[Peer]) -> None:
    """Forward IPv6 that comes in from the peers (per interface), drop what claims a source it could not have
    come from there (one of this host's machines, another peer's), and let the peers' edges reach machines."""
    for device in await underlay_devices(peers):
        _forward(device, "1")
        await _insert_once("raw", "PREROUTING", _guard(device))
    for rule in _peer_rules(peers):
        await _insert_once("filter", CHAIN, rule)


async def close_underlay(peers: Sequence[Peer]) -> None:
    """Take `open_underlay`'s forwarding and rules away again."""
    lines = [("raw", "PREROUTING", _guard(device)) for device in await underlay_devices(peers)]
    lines += [("filter", CHAIN, rule) for rule in _peer_rules(peers)]
    for device in await underlay_devices(peers):
        _forward(device, "0")
    for table, chain, rule in lines:
        await run(["ip6tables", "-t", table, "-D", chain, *rule.split()], timeout=10, check=False)


def is_peer_route(route: dict[str, object]) -> bool:
    """A route this module made, as `ip -j route` lists it."""
    return str(route.get("protocol", "")) == str(PROTO)
