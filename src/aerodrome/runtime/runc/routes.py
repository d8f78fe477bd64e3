"""The host's routes for machine addresses: the pools routed nowhere but to machines, and no one else's in them.

Every running machine has a /32 and a /128 route to its veth; everything else of the IPv4 pool and of the IPv6
prefix hits an `unreachable` route, so a packet for an address no machine holds never leaves the host. Those
routes are added, never replaced: a route the host already has in those ranges (a VPN's, a LAN's, another
daemon's pool) means the machines' addresses would shadow it, or it would carry their traffic away, so the start
is refused and the route left as it was.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Any

from aerodrome.core import FailedPreconditionError
from aerodrome.runtime.process import run
from aerodrome.runtime.runc import peers
from aerodrome.runtime.runc.network import FLYCAST_PREFIXLEN, IFACE_PREFIX, IPV6_PREFIX, flycast_prefix6

Route = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


async def _routes(family: str) -> list[Route]:
    listing = await run(["ip", "-j", family, "route", "show", "table", "all"], timeout=10)
    routes: list[Route] = json.loads(listing.stdout or b"[]")
    return routes


def _is_own_unreachable(route: Route, prefix: Network) -> bool:
    return route.get("type") == "unreachable" and route.get("table", "main") == "main" and route["dst"] == str(prefix)


# `ip` names a device it can no longer find by its index: the device is gone, and its routes go with it (a netns
# being deleted destroys its veth pairs asynchronously, so their routes may still be listed for a moment).
_GONE_DEVICE = re.compile(r"if\d+")


def _is_vanishing(route: Route) -> bool:
    device = str(route.get("dev", ""))
    return _GONE_DEVICE.fullmatch(device) is not None and not os.path.lexists(f"/sys/class/net/{device}")


def _is_machine_route(route: Route) -> bool:
    """A route to a machine's veth (its address, its gateway's), or of a flycast address the edge bound on lo
    (the kernel adds a local route and a /128 prefix route for each)."""
    if str(route.get("dev", "")).startswith(IFACE_PREFIX):
        return True
    if route.get("dev") != "lo" or ":" not in route["dst"]:
        return False
    address = ipaddress.IPv6Network(route["dst"])
    if address.prefixlen < FLYCAST_PREFIXLEN or not address.subnet_of(IPV6_PREFIX):
        return False
    org64 = ipaddress.IPv6Network((int(address.network_address) >> 64 << 64, 64))
    return address.subnet_of(ipaddress.IPv6Network(flycast_prefix6(str(org64))))


def conflict(route: Route, prefix: Network) -> bool:
    """Whether a route of the host claims addresses in `prefix` that are not aerodrome's own."""
    if route.get("dst") in (None, "default"):
        return False  # a default route covers everything, and machines' more specific routes win
    network = ipaddress.ip_network(route["dst"], strict=False)
    if not _overlap(network, prefix):
        return False
    own = _is_own_unreachable(route, prefix) or _is_machine_route(route) or peers.is_peer_route(route)
    return not (own or _is_vanishing(route))


def _overlap(a: Network, b: Network) -> bool:
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def _describe(route: Route) -> str:
    parts = [str(route.get("type", "unicast")), "route to", route["dst"]]
    if route.get("dev"):
        parts += ["dev", str(route["dev"])]
    if route.get("table", "main") != "main":
        parts += ["table", str(route["table"])]
    return " ".join(parts)


async def claim(pool4: str) -> None:
    """Route the IPv4 pool and the IPv6 prefix nowhere, or refuse (FailedPreconditionError) if the host already
    routes any part of them."""
    pools: list[tuple[str, Network, str]] = [
        ("-4", ipaddress.IPv4Network(pool4), f"the machine IPv4 pool {pool4}: choose another pool, or remove it"),
        ("-6", IPV6_PREFIX, f"the machines' IPv6 prefix {IPV6_PREFIX}: remove it"),
    ]
    found = [(family, prefix, what, await _routes(family)) for family, prefix, what in pools]
    for _, prefix, what, routes in found:  # both checked before anything is added
        clash = next((r for r in routes if conflict(r, prefix)), None)
        if clash is not None:
            raise FailedPreconditionError(f"the host already has a {_describe(clash)}, which overlaps {what}")
    for family, prefix, _, routes in found:
        if not any(_is_own_unreachable(r, prefix) for r in routes):
            await run(["ip", family, "route", "add", "unreachable", str(prefix)], timeout=10)


async def release(pool4: str, *, prefix6: bool) -> None:
    """Remove the pool's unreachable route, and with `prefix6` the IPv6 prefix's (shared by every pool)."""
    await run(["ip", "-4", "route", "del", "unreachable", pool4], timeout=10, check=False)
    if prefix6:
        await run(["ip", "-6", "route", "del", "unreachable", str(IPV6_PREFIX)], timeout=10, check=False)
