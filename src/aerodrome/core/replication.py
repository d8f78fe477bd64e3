"""What several control-plane replicas share through the database (a feed of changes, rate-limit buckets), and
the narrow port through which an edge acts on machines.

One process on SQLite has neither (the change feed stays in memory, the buckets too); on PostgreSQL the store
provides both, and the control plane and the edge read them rather than each other's objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aerodrome.core.config import MachineSpec
from aerodrome.core.models import Machine

#: What a change names: a machine (`key` its id), or one of an app's sets the edge serves (`key` the app).
MACHINE, HOSTNAMES, IPS = "machine", "hostnames", "ips"
CHANGE_KINDS = (MACHINE, HOSTNAMES, IPS)


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # one of CHANGE_KINDS
    key: str  # the machine's id, or the app's name
    app: str


#: `deliver(change)` for a change another replica made; `deliver(None)` when some may have been missed (the
#: relay lost its connection and has it back): everything is to be read again.
ChangeSink = Callable[[Change | None], None]


class ChangeRelay(Protocol):
    """Carries changes between replicas: each is told of every other's changes."""

    async def start(self, deliver: ChangeSink) -> None: ...

    def send(self, change: Change) -> None:
        """Tell the other replicas (after the change is committed); never blocks, never raises."""

    async def close(self) -> None: ...


class SharedBuckets(Protocol):
    """Token buckets every replica takes from: one bucket per key whichever replica serves the request."""

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        """Take one token from `key`'s bucket: None when taken, else the seconds until the next one."""


class MachinePower(Protocol):
    """What the edge asks of the control plane, and nothing more: whether a host is in reach, a machine's parsed
    spec, and the starts and stops it makes on its own account (autostart, autostop)."""

    def reachable(self, host: str) -> bool: ...

    def on_private_network(self, host: str) -> bool:
        """Whether the host's machines are dialled at their 6PN address (IPv4 private addresses are host-local)."""

    def spec_of(self, machine: Machine) -> MachineSpec: ...

    async def start(self, app: str, machine_id: str) -> None:
        """Start a stopped or created machine, or resume a suspended one; return once it runs (started by this
        replica or by another). Raises an `AerodromeError` when it cannot start."""

    async def stop(self, app: str, machine_id: str, suspend: bool) -> None: ...
