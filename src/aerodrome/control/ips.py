"""App IP addresses: the edge's shared IPv4, dedicated v4/v6 from pools, and flycast (private_v6) per organisation.

The shared IPv4 is one address for every app, while the store keeps addresses unique; so an app's shared
allocation is a row whose `address` is the marker `shared_v4:<app>`, and every method here returns it with the
configured shared address in its place. Changing the setting moves every app at once, as a shared edge address
should. Dedicated addresses are the lowest free ones of their pool and are never handed out twice while allocated:
a released address (and every address of a deleted app) is a deleted row, free for the next allocation. A full
pool is a CapacityError (503, `insufficient_capacity`) naming the pool.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aerodrome.core import (
    AlreadyExistsError,
    App,
    CapacityError,
    Clock,
    InvalidArgumentError,
    IPAddress,
    NotFoundError,
    Organization,
    Store,
    UnavailableError,
    rfc3339,
    ulid,
)

log = logging.getLogger("aerodrome.ips")

IP_TYPES = ("shared_v4", "v4", "v6", "private_v6")
DEDICATED_TYPES = ("v4", "v6")
SHARED_MARKER = "shared_v4:"
#: The runtime's 6PN base: an organisation's /64 carries its network id in the third and fourth groups.
PRIVATE_V6_BASE = ipaddress.IPv6Network("fdaa::/16")
#: Flycast addresses sit in `<org /64>:1::/80`, apart from machine addresses (the low host numbers).
FLYCAST_OFFSET = 1 << 48
_ATTEMPTS = 8  # another host may take the same free address between our read and our insert

IPCallback = Callable[[IPAddress], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def org_flycast_base(org_network_id: int) -> int:
    """The first flycast address of an organisation, as an integer."""
    prefix = int(PRIVATE_V6_BASE.network_address) | ((org_network_id & 0xFFFF_FFFF) << 64)
    return prefix + FLYCAST_OFFSET


def canonical(address: str) -> str:
    """One spelling per address (`fdae:ad:0::1` and `fdae:ad::1` compare equal); non-addresses pass through."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def lowest_free(version: int, base: int, start: int, end: int, taken: set[str]) -> str | None:
    """The lowest address `base + n` (start <= n < end) not in `taken`; looks at len(taken) + 1 candidates at most."""
    for offset in range(start, min(end, start + len(taken) + 1)):
        value = base + offset
        candidate = str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))
        if candidate not in taken:
            return candidate
    return None


class IPs:
    """Allocate, list and release app addresses; tell subscribers (the edge) about every change."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        shared_v4: str = "127.0.0.1",
        pool_v4: str = "127.0.1.0/24",
        pool_v6: str = "fdae:ad::/48",
    ) -> None:
        self._store = store
        self._clock = clock
        self.shared_v4 = str(ipaddress.IPv4Address(shared_v4))
        self.pool_v4: Network = ipaddress.IPv4Network(pool_v4)
        self.pool_v6: Network = ipaddress.IPv6Network(pool_v6)
        self._lock = asyncio.Lock()
        self._on_allocate: builtins.list[IPCallback] = []
        self._on_release: builtins.list[IPCallback] = []

    def subscribe(self, *, allocated: IPCallback | None = None, released: IPCallback | None = None) -> None:
        """Call `allocated(ip)` after each allocation and `released(ip)` after each release (every type)."""
        if allocated is not None:
            self._on_allocate.append(allocated)
        if released is not None:
            self._on_release.append(released)

    async def list(self, app: App) -> list[IPAddress]:
        """The app's addresses, oldest first, the shared one included."""
        return [self._shown(ip) for ip in await self._store.list_ips(app.name)]

    async def dedicated(self, types: tuple[str, ...] = DEDICATED_TYPES) -> builtins.list[IPAddress]:
        """Every app's addresses of `types` (each names its app): what the edge binds when it starts."""
        return [self._shown(ip) for ip in await self._store.list_ips() if ip.type in types]

    async def shared_address(self, app: App) -> str | None:
        """The shared IPv4 when the app has one allocated, else None."""
        rows = await self._store.list_ips(app.name)
        return self.shared_v4 if any(ip.type == "shared_v4" for ip in rows) else None

    async def allocate(
        self,
        app: App,
        org: Organization,
        type_: str,
        *,
        region: str = "",
        network: str = "",
        service_name: str = "",
    ) -> IPAddress:
        """Allocate an address of `type_` to the app; a second shared_v4 returns the first."""
        if not type_:
            raise InvalidArgumentError("type is required")
        if type_ not in IP_TYPES:
            raise InvalidArgumentError(f"invalid IP address type {type_!r}: use one of {', '.join(IP_TYPES)}")
        async with self._lock:
            if type_ == "shared_v4":
                existing = [ip for ip in await self._store.list_ips(app.name) if ip.type == "shared_v4"]
                if existing:
                    return self._shown(existing[0])
            ip = await self._insert(app, org, type_, region, network, service_name)
        shown = self._shown(ip)
        await self._notify(self._on_allocate, shown)
        return shown

    async def find(self, app: App, *, address: str | None = None, ip_id: str | None = None) -> IPAddress | None:
        """The app's address with this id or this address (any spelling), if it has one."""
        wanted = canonical(address) if address else None
        for ip in await self.list(app):
            if (ip_id and ip.id == ip_id) or (wanted is not None and canonical(ip.address) == wanted):
                return ip
        return None

    async def release(self, app: App, *, address: str | None = None, ip_id: str | None = None) -> IPAddress:
        """Release one of the app's addresses, named by address or by id."""
        if not address and not ip_id:
            raise InvalidArgumentError("name the address to release (ip or ipAddressId)")
        ip = await self.find(app, address=address, ip_id=ip_id)
        if ip is None:
            raise NotFoundError(f"IP address {address or ip_id} not found for app {app.name!r}")
        await self._store.delete_ip(ip.id)
        await self._notify(self._on_release, ip)
        return ip

    async def release_all(self, app: App) -> None:
        """Release every address of the app (before it is deleted), so subscribers unbind them."""
        for ip in await self.list(app):
            await self._store.delete_ip(ip.id)
            await self._notify(self._on_release, ip)

    async def _insert(
        self, app: App, org: Organization, type_: str, region: str, network: str, service_name: str
    ) -> IPAddress:
        for _ in range(_ATTEMPTS):
            taken = {canonical(ip.address) for ip in await self._store.list_ips()}
            ip = IPAddress(
                id=ulid(),
                app_name=app.name,
                address=self._free(type_, app, org, taken),
                type=type_,
                region=region,
                network=(network or app.network) if type_ == "private_v6" else "",
                service_name=service_name,
                created_at=rfc3339(self._clock.now()),
            )
            try:
                await self._store.add_ip(ip)
            except AlreadyExistsError:
                continue
            return ip
        raise UnavailableError(f"could not allocate a {type_} address: the pool is contended")

    def _free(self, type_: str, app: App, org: Organization, taken: set[str]) -> str:
        if type_ == "shared_v4":
            return SHARED_MARKER + app.name
        taken = taken | {self.shared_v4}  # the shared address may lie inside the v4 pool
        if type_ == "private_v6":
            found = lowest_free(6, org_flycast_base(org.internal_numeric_id), 1, FLYCAST_OFFSET, taken)
            if found is None:
                raise CapacityError(f"the organisation's {FLYCAST_OFFSET - 1} flycast (private_v6) addresses are taken")
            return found
        pool = self.pool_v4 if type_ == "v4" else self.pool_v6
        # Never the network address, nor the IPv4 broadcast.
        end = pool.num_addresses - (1 if pool.version == 4 else 0)
        found = lowest_free(pool.version, int(pool.network_address), 1, end, taken)
        if found is None:
            raise CapacityError(
                f"the dedicated {type_} address pool {pool} is full: its {end - 1} addresses are allocated "
                "(a released address, or a deleted app's, can be allocated again)"
            )
        return found

    def _shown(self, ip: IPAddress) -> IPAddress:
        if ip.type == "shared_v4":
            return dataclasses.replace(ip, address=self.shared_v4)
        return ip

    async def _notify(self, callbacks: builtins.list[IPCallback], ip: IPAddress) -> None:
        # A subscriber's failure (say, an address the edge cannot bind) must not undo the allocation itself.
        for callback in callbacks:
            try:
                await callback(ip)
            except Exception:
                log.exception("IP address subscriber failed for %s (%s)", ip.address, ip.app_name)
