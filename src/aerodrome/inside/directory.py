"""Who is who on the private network: every live machine by its addresses, for the resolver and the API socket.

Built from the store and cached: the control plane's change feed marks it stale on every change of a machine
(so a start or a stop shows in the next answer), and it is rebuilt at most every `ttl` seconds otherwise (the
changes of another control-plane replica reach this one only through the store).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aerodrome.core import Machine, MachineState, Store

DEFAULT_TTL = 1.0  # seconds: a state change another replica makes shows within it
DEFAULT_PROCESS_GROUP = "app"  # flyctl's name for a machine without a process group


@dataclass(frozen=True, slots=True)
class Peer:
    """A machine as its organisation's network sees it."""

    id: str
    app: str
    org: str
    region: str
    ipv6: str
    ipv4: str
    started: bool
    group: str
    registered: bool  # config.dns.skip_registration leaves it out of every answer


@dataclass(slots=True)
class Snapshot:
    by_address: dict[str, Peer] = field(default_factory=dict)
    by_id: dict[str, Peer] = field(default_factory=dict)
    apps: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # org → app names
    peers: defaultdict[str, list[Peer]] = field(default_factory=lambda: defaultdict(list))  # org → machines

    def add(self, peer: Peer) -> None:
        self.by_id[peer.id] = peer
        for address in (peer.ipv6, peer.ipv4):
            if address:
                self.by_address[address] = peer
        if peer.registered:
            self.peers[peer.org].append(peer)


def process_group(machine: Machine) -> str:
    metadata = machine.config.get("metadata")
    group = metadata.get("fly_process_group") if isinstance(metadata, dict) else None
    return group if isinstance(group, str) and group else DEFAULT_PROCESS_GROUP


def registered(machine: Machine) -> bool:
    dns = machine.config.get("dns")
    return not (isinstance(dns, dict) and dns.get("skip_registration") is True)


class Directory:
    """The live machines and apps of every organisation, by address; `changed` marks it stale."""

    def __init__(self, store: Store, ttl: float = DEFAULT_TTL) -> None:
        self._store = store
        self._ttl = ttl
        self._snapshot: Snapshot | None = None
        self._built_at = 0.0
        self._generation = 0  # of changes: a snapshot read while one happened is used once, not kept
        self._lock = asyncio.Lock()

    def changed(self, machine_id: str = "", app_name: str = "") -> None:
        """A change-feed listener: the next lookup reads the store again."""
        self._generation += 1
        self._snapshot = None

    def _fresh(self) -> Snapshot | None:
        if self._snapshot is not None and time.monotonic() - self._built_at < self._ttl:
            return self._snapshot
        return None

    async def snapshot(self) -> Snapshot:
        current = self._fresh()
        if current is not None:
            return current
        async with self._lock:  # one read of the store for every query that waits on it
            current = self._fresh()
            if current is not None:
                return current
            generation, built_at = self._generation, time.monotonic()
            snapshot = await self._build()
            if generation == self._generation:
                self._snapshot, self._built_at = snapshot, built_at
            return snapshot

    async def _build(self) -> Snapshot:
        snapshot = Snapshot()
        orgs = {app.name: app.org_slug for app in await self._store.list_apps(None)}
        for name, slug in orgs.items():
            snapshot.apps[slug].add(name)
        for machine in await self._store.live_machines():
            org = orgs.get(machine.app_name)
            if org is None:
                continue
            snapshot.add(
                Peer(
                    id=machine.id,
                    app=machine.app_name,
                    org=org,
                    region=machine.region,
                    ipv6=machine.private_ip,
                    ipv4=machine.private_ipv4,
                    started=machine.state is MachineState.STARTED,
                    group=process_group(machine),
                    registered=registered(machine),
                )
            )
        return snapshot

    async def caller(self, address: str) -> Peer | None:
        """The machine that has `address`, if any."""
        return (await self.snapshot()).by_address.get(address)

    async def machine(self, machine_id: str) -> Peer | None:
        return (await self.snapshot()).by_id.get(machine_id)
