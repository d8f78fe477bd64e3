"""Leases (`fly-machine-lease-nonce`) and metadata: small, lock-protected edits of one machine.

The lock serialises this process's requests; replicas sharing one database are kept apart by compare-and-set on
the row's version, so of two replicas granting a lease at once one grants it and the other answers 409."""

from __future__ import annotations

import dataclasses
from typing import Any

from aerodrome.control.machine_base import MachineBase
from aerodrome.core import (
    MAX_ITEMS,
    MAX_KEY,
    MAX_LEASE_TTL,
    MAX_VALUE,
    App,
    FailedPreconditionError,
    InvalidArgumentError,
    Lease,
    LeaseConflictError,
    Machine,
    MachineState,
    NotFoundError,
    nonce,
    parse_text,
)

#: Reads and compare-and-sets of one lease change before its conflict reaches the client (412).
CAS_ATTEMPTS = 3


class Leases(MachineBase):
    def active_lease(self, machine: Machine) -> Lease | None:
        lease = machine.lease
        return lease if lease is not None and lease.expires_at > self.clock.now() else None

    async def acquire_lease(
        self, app: App, mid: str, *, ttl: int, description: str, owner: str, nonce_: str | None
    ) -> Lease:
        """Take the lease, or refresh it when `nonce_` is the holder's. Another holder → LeaseConflictError."""
        if not 1 <= ttl <= MAX_LEASE_TTL:
            raise InvalidArgumentError(f"invalid lease ttl: must be between 1 and {MAX_LEASE_TTL} seconds")
        async with self.locked(mid):
            for attempt in range(CAS_ATTEMPTS):
                machine = await self.find(app, mid)
                held = self.active_lease(machine)
                if held is not None and held.nonce != nonce_:
                    raise LeaseConflictError(f"lease currently held by {held.owner or 'another client'}")
                lease = Lease(
                    nonce=held.nonce if held else nonce(),
                    owner=owner,
                    description=description if description or held is None else held.description,
                    expires_at=int(self.clock.now()) + ttl,
                    version=machine.instance_id,
                )
                if await self._set_lease(machine, lease, last=attempt == CAS_ATTEMPTS - 1):
                    return lease
        raise AssertionError("unreachable")

    async def _set_lease(self, machine: Machine, lease: Lease | None, *, last: bool) -> bool:
        """Compare-and-set on the row read: another replica may have written it since (a lease of its own, or
        any change), in which case the caller reads it again and decides afresh; False then."""
        try:
            await self.store.set_lease(machine.id, lease, read_version=machine.row_version)
        except FailedPreconditionError:
            if last:
                raise
            return False
        return True

    async def get_lease(self, app: App, mid: str) -> Lease:
        lease = self.active_lease(await self.find(app, mid))
        if lease is None:
            raise NotFoundError("lease not found")
        return lease

    async def release_lease(self, app: App, mid: str, nonce_: str | None) -> None:
        """A destroyed machine's lease went with it: "lease not found", which flyctl's release after
        `machine destroy` takes as done (any other error it prints)."""
        async with self.locked(mid):
            for attempt in range(CAS_ATTEMPTS):
                machine = await self.find(app, mid, include_deleted=True)
                held = None if machine.state is MachineState.DESTROYED else self.active_lease(machine)
                if held is None:
                    raise NotFoundError("lease not found")
                if held.nonce != nonce_:
                    raise LeaseConflictError(f"lease currently held by {held.owner or 'another client'}")
                if await self._set_lease(machine, None, last=attempt == CAS_ATTEMPTS - 1):
                    return


class Metadata(MachineBase):
    async def metadata(self, app: App, mid: str) -> dict[str, str]:
        return dict((await self.find(app, mid)).config.get("metadata") or {})

    async def edit_metadata(
        self, app: App, mid: str, changes: dict[str, Any], *, replace: bool = False, machine_version: str | None = None
    ) -> None:
        """Set keys (str), remove keys (None or ""); `replace` drops keys not named. A stale version → 412."""
        for key, value in changes.items():
            if not isinstance(key, str) or not key or not (value is None or isinstance(value, str)):
                raise InvalidArgumentError("invalid metadata: keys and values must be strings")
            parse_text(key, "metadata key", MAX_KEY)
            if value is not None:
                parse_text(value, f"metadata.{key[:64]}", MAX_VALUE)
        if len(changes) > MAX_ITEMS:
            raise InvalidArgumentError(f"invalid metadata: {len(changes)} entries, at most {MAX_ITEMS} allowed")
        async with self.locked(mid):
            machine = await self.find(app, mid)
            if machine_version and machine_version != machine.instance_id:
                raise FailedPreconditionError(
                    f"machine_version {machine_version} is stale: the machine is at {machine.instance_id}"
                )
            current: dict[str, str] = {} if replace else dict(machine.config.get("metadata") or {})
            for key, value in changes.items():
                if value:
                    current[key] = value
                else:
                    current.pop(key, None)
            config = {**machine.config, "metadata": current}
            await self.store.save_machine(dataclasses.replace(machine, config=config))
