"""Dedicated addresses on this host: bound by the edge so that they route to their app with no Host header.

IPv4 addresses come from 127.0.0.0/8, which Linux treats as local whole; IPv6 ones are added to `lo`, and while
any is bound their pool has an `unreachable` route so that no packet for an unallocated address leaves the host.
That route goes with the pool's last address and at shutdown, when this daemon added it (one that was there
before, another daemon's, is left alone). Private (flycast)
addresses are bound the same way inside their organisation's private network: the machines' firewall lets only
that organisation's machines reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aerodrome.core import IPAddress
from aerodrome.proxy.edge import Edge

log = logging.getLogger("aerodrome.edge")

#: The ports every dedicated address serves, besides the app's own service ports.
HTTP_PORTS = frozenset({80, 443})
BOUND_TYPES = ("v4", "v6", "private_v6")


class AddressBook:
    """Which app each bound dedicated address belongs to: written by DedicatedAddresses, read by the directory
    (made before both, as the edge sits between them)."""

    def __init__(self) -> None:
        self.apps: dict[str, str] = {}  # canonical address → app

    def app_for(self, address: str) -> str | None:
        return self.apps.get(_canonical(address))


class DedicatedAddresses:
    def __init__(
        self,
        edge: Edge,
        service_ports: Callable[[str], Awaitable[set[int]]],
        *,
        pool_v6: str,
        book: AddressBook | None = None,
    ) -> None:
        self._edge = edge
        self._service_ports = service_ports
        self._pool_v6 = pool_v6
        self._network_v6 = ipaddress.IPv6Network(pool_v6)
        self.book = book or AddressBook()
        self._apps = self.book.apps  # address → app
        self._route_added = False  # whether this daemon added the pool's unreachable route (and so removes it)
        self._guarded: set[str] = set()  # the pool's addresses bound or being bound: the route stays while any is
        self._route_lock = asyncio.Lock()

    def app_for(self, address: str) -> str | None:
        """The app a local address belongs to (the Directory's dedicated lookup)."""
        return self.book.app_for(address)

    async def start(self, addresses: list[IPAddress]) -> None:
        for address in addresses:
            await self.bind(address)

    async def bind(self, ip: IPAddress) -> None:
        if ip.type not in BOUND_TYPES:
            return  # the shared address is the edge's own listener
        address = _canonical(ip.address)
        if self._in_pool(address):
            self._guarded.add(address)
            await self._guard_pool()
        if ":" in address:
            await _ip("-6", "addr", "replace", f"{address}/128", "dev", "lo", "nodad")
        ports = HTTP_PORTS | await self._service_ports(ip.app_name)
        try:
            await self._edge.bind_address(address, sorted(ports))
        except OSError as exc:
            log.warning("cannot listen on %s for app %s: %s", address, ip.app_name, exc)
            self._guarded.discard(address)
            await self._unguard_pool()
            return
        self._apps[address] = ip.app_name

    async def release(self, ip: IPAddress) -> None:
        await self._unbind(_canonical(ip.address))

    async def sync(self, app: str | None, ips: list[IPAddress]) -> None:
        """Bind what `ips` (the store's dedicated addresses) hold for the app (None: every app), release what
        they no longer hold: another replica allocated or released them."""
        wanted = {
            _canonical(ip.address): ip for ip in ips if ip.type in BOUND_TYPES and (app is None or ip.app_name == app)
        }
        for address, owner in list(self._apps.items()):
            if (app is None or owner == app) and address not in wanted:
                await self._unbind(address)
        for address, ip in wanted.items():
            if address not in self._apps:
                await self.bind(ip)

    async def _unbind(self, address: str) -> None:
        if self._apps.pop(address, None) is None:
            return
        await self._edge.release_address(address)
        if ":" in address:
            await _ip("-6", "addr", "del", f"{address}/128", "dev", "lo")
        self._guarded.discard(address)
        await self._unguard_pool()

    async def close(self) -> None:
        """Stop listening; addresses stay allocated and are bound again at the next start."""
        for address in list(self._apps):
            self._apps.pop(address)
            await self._edge.release_address(address)
            if ":" in address:
                await _ip("-6", "addr", "del", f"{address}/128", "dev", "lo")
        self._guarded.clear()
        await self._unguard_pool()

    def _in_pool(self, address: str) -> bool:
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(address) in self._network_v6
        return False

    async def _guard_pool(self) -> None:
        """The pool's unreachable route, added unless it is there already (then it is not ours to remove)."""
        async with self._route_lock:
            if self._route_added:
                return
            if not await _output("ip", "-6", "route", "show", "exact", self._pool_v6, "type", "unreachable"):
                self._route_added = await _ip("-6", "route", "replace", "unreachable", self._pool_v6)

    async def _unguard_pool(self) -> None:
        """Remove the route this daemon added once none of the pool's addresses is bound."""
        async with self._route_lock:
            if self._route_added and not self._guarded:
                await _ip("-6", "route", "del", "unreachable", self._pool_v6)
                self._route_added = False


def _canonical(address: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(address))
    return address


async def _output(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(process.communicate(), 10)
    return out.decode(errors="replace").strip()


async def _ip(*args: str) -> bool:
    process = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 10)
    if process.returncode != 0:
        log.warning("ip %s: %s", " ".join(args), err.decode(errors="replace").strip())
    return process.returncode == 0
