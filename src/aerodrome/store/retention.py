"""Retention: the queries that bound what the store keeps of machines' history.

A sweep removes, a batch of machines at a time: the events of a machine past its newest `events_per_machine` or
older than a cutoff, the versions past its newest `versions_per_machine` (never the one it runs), and machines
destroyed before a cutoff, with their events and versions. Each finds its machines through an index it already
has ((machine_id, timestamp) for events, the primary key for versions, updated_at for machines), so an event's
insert pays nothing for retention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, delete, func, or_, select

from aerodrome.core import MachineState
from aerodrome.store import logs
from aerodrome.store.schema import machine_events, machine_versions, machines


@dataclass(slots=True)
class Pruned:
    """What one sweep removed, and the machines whose cached records it made stale."""

    events: int = 0
    versions: int = 0
    machines: list[str] = field(default_factory=list)  # destroyed machines removed with their rows
    touched: list[str] = field(default_factory=list)  # machines that lost events

    @property
    def total(self) -> int:
        return self.events + self.versions + len(self.machines)


_KEPT_EVENTS = (
    select(machine_events.c.id)
    .where(machine_events.c.machine_id == bindparam("machine_id"))
    .order_by(machine_events.c.timestamp.desc(), machine_events.c.id.desc())
    .limit(bindparam("keep"))
)
_PRUNE_EVENTS = delete(machine_events).where(
    machine_events.c.machine_id == bindparam("machine_id"),
    or_(machine_events.c.timestamp < bindparam("before"), machine_events.c.id.not_in(_KEPT_EVENTS.scalar_subquery())),
)
_KEPT_VERSIONS = (
    select(machine_versions.c.version)
    .where(machine_versions.c.machine_id == bindparam("machine_id"))
    .order_by(machine_versions.c.created_at.desc(), machine_versions.c.version.desc())
    .limit(bindparam("keep"))
)
_CURRENT_VERSION = select(machines.c.instance_id).where(machines.c.id == bindparam("machine_id"))
_PRUNE_VERSIONS = delete(machine_versions).where(
    machine_versions.c.machine_id == bindparam("machine_id"),
    machine_versions.c.version.not_in(_KEPT_VERSIONS.scalar_subquery()),
    machine_versions.c.version.not_in(_CURRENT_VERSION.scalar_subquery()),
)


def prune_events(conn: Connection, pruned: Pruned, *, keep: int, before_ms: int, batch: int) -> None:
    """Events past a machine's newest `keep`, or timed before `before_ms`, of up to `batch` machines."""
    over = (
        select(machine_events.c.machine_id)
        .group_by(machine_events.c.machine_id)
        .having((func.count() > keep) | (func.min(machine_events.c.timestamp) < before_ms))
        .limit(batch)
    )
    for machine_id in conn.execute(over).scalars().all():
        params = {"machine_id": machine_id, "keep": keep, "before": before_ms}
        pruned.events += conn.execute(_PRUNE_EVENTS, params).rowcount
        pruned.touched.append(machine_id)


def prune_versions(conn: Connection, pruned: Pruned, *, keep: int, batch: int) -> None:
    """Versions past a machine's newest `keep`, of up to `batch` machines; a machine's current one stays."""
    over = (
        select(machine_versions.c.machine_id)
        .group_by(machine_versions.c.machine_id)
        .having(func.count() > keep)
        .limit(batch)
    )
    for machine_id in conn.execute(over).scalars().all():
        pruned.versions += conn.execute(_PRUNE_VERSIONS, {"machine_id": machine_id, "keep": keep}).rowcount


def prune_destroyed(conn: Connection, pruned: Pruned, *, before: str, batch: int) -> None:
    """Up to `batch` machines destroyed before `before` (RFC 3339, as updated_at), with their events and versions."""
    gone = (machines.c.deleted.is_(True)) | (machines.c.state == MachineState.DESTROYED.value)
    query = select(machines.c.id).where(machines.c.updated_at < before, gone).order_by(machines.c.updated_at)
    ids = list(conn.execute(query.limit(batch)).scalars())
    if not ids:
        return
    pruned.events += conn.execute(delete(machine_events).where(machine_events.c.machine_id.in_(ids))).rowcount
    pruned.versions += conn.execute(delete(machine_versions).where(machine_versions.c.machine_id.in_(ids))).rowcount
    conn.execute(delete(machines).where(machines.c.id.in_(ids)))
    logs.forget_machines(conn, ids)
    pruned.machines.extend(ids)


def prune(
    conn: Connection,
    *,
    events_per_machine: int,
    events_before_ms: int,
    versions_per_machine: int,
    destroyed_before: str,
    batch: int,
) -> Pruned:
    pruned = Pruned()
    prune_destroyed(conn, pruned, before=destroyed_before, batch=batch)
    prune_events(conn, pruned, keep=events_per_machine, before_ms=events_before_ms, batch=batch)
    prune_versions(conn, pruned, keep=versions_per_machine, batch=batch)
    return pruned
