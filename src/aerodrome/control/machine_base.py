"""What every machine operation shares: lookup, per-machine locks, lease checks and durable transitions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aerodrome.control.events import ChangeFeed
from aerodrome.control.hosts import Hosts
from aerodrome.core import (
    App,
    Clock,
    Deadline,
    HostAgent,
    HostUnreachableError,
    LeaseConflictError,
    Machine,
    MachineEvent,
    MachineState,
    NotFoundError,
    Store,
    rfc3339,
    ulid,
)

T = TypeVar("T")


class MachineBase:
    def __init__(self, store: Store, hosts: Hosts, clock: Clock, feed: ChangeFeed) -> None:
        self.store = store
        self.hosts = hosts
        self.agent: HostAgent = hosts  # each call goes to the machine's own host
        self.clock = clock
        self.feed = feed
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._background: set[asyncio.Task[None]] = set()  # kept referenced until done; cancelled on close

    @asynccontextmanager
    async def locked(self, machine_id: str) -> AsyncIterator[None]:
        """Serialise the operations of one machine; different machines proceed in parallel."""
        async with self._locks[machine_id]:
            yield

    def lock_for(self, machine_id: str) -> asyncio.Lock:
        return self._locks[machine_id]

    async def find(self, app: App, machine_id: str, *, include_deleted: bool = False) -> Machine:
        machine = await self.store.get_machine(machine_id, app.name)
        if machine is None or (machine.deleted and not include_deleted):
            raise NotFoundError("machine not found")
        return machine

    def check_lease(self, machine: Machine, nonce: str | None) -> None:
        """A leased machine accepts mutations only with the lease's nonce (`fly-machine-lease-nonce`)."""
        lease = machine.lease
        if lease is None or lease.expires_at <= self.clock.now():
            return
        if nonce != lease.nonce:
            raise LeaseConflictError(
                f"lease currently held by {lease.owner or 'another client'}, expires at {rfc3339(lease.expires_at)}"
            )

    def new_event(
        self, machine: Machine, type_: str, status: str, source: str, request: dict[str, Any] | None = None
    ) -> MachineEvent:
        return MachineEvent(
            id=ulid(),
            machine_id=machine.id,
            type=type_,
            status=status,
            source=source,
            timestamp=int(self.clock.now() * 1000),
            request=request or {},
        )

    async def transition(
        self,
        machine: Machine,
        state: MachineState,
        *,
        event: tuple[str, str] | None = None,
        request: dict[str, Any] | None = None,
        new_version: bool = False,
        **changes: Any,
    ) -> Machine:
        """Write the machine's new state (and its event) to disk, then wake waiters. `event` = (type, source)."""
        updated = dataclasses.replace(machine, state=state, updated_at=rfc3339(self.clock.now()), **changes)
        record = self.new_event(updated, event[0], state.value, event[1], request) if event else None
        saved = await self.store.save_machine(updated, event=record, new_version=new_version)
        self.feed.publish(machine.id, machine.app_name)
        return saved

    async def unless_unreachable(self, machine: Machine, state: MachineState, call: Awaitable[T]) -> T:
        """`call` to the host; when it never reached the host (which so did nothing), the transient state written
        before it is undone (the machine goes back to `state`) and the error goes on, a 503 to the client."""
        try:
            return await call
        except HostUnreachableError:
            await self.transition(machine, state)
            raise


# How long the control plane waits for the host: long enough for an image pull or a stop's own timeout.
HOST_DEADLINE = 900.0


def host_deadline(extra: float = 0.0) -> Deadline:
    return Deadline.after(HOST_DEADLINE + extra)


def new_key() -> str:
    """An idempotency key for one request to the host: a retry of that request would send it again."""
    return ulid()
