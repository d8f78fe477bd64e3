"""Queries for machines, their versions, their events and their leases."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, Select, Table, bindparam, insert, select, update

from aerodrome.core import (
    FailedPreconditionError,
    Lease,
    Machine,
    MachineEvent,
    MachineState,
    MachineVersion,
    NotFoundError,
    event_log_line,
)
from aerodrome.store import logs, mapping
from aerodrome.store.schema import apps, machine_events, machine_logs, machine_versions, machines

_DESTROYED = MachineState.DESTROYED.value


def _not_gone() -> ColumnElement[bool]:
    """A machine is gone once it is flagged deleted or has reached `destroyed`, whichever the caller wrote."""
    return (machines.c.deleted.is_(False)) & (machines.c.state != _DESTROYED)


def _filtered(
    query: Select[Any], *, include_deleted: bool, region: str | None, states: Sequence[MachineState]
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    if not include_deleted:
        conditions.append(_not_gone())
    if region is not None:
        conditions.append(machines.c.region == region)
    if states:
        conditions.append(machines.c.state.in_([state.value for state in states]))
    return query.where(*conditions)


# Statements are built once and given their values as parameters: building one per call (`.values(**row)`)
# costs more than SQLite takes to run it, and a parameterised statement's compiled form is cached.
_INSERT_MACHINE = insert(machines)
_INSERT_VERSION = insert(machine_versions)
_INSERT_EVENT = insert(machine_events)
_UPDATE_MACHINE = update(machines).where(
    machines.c.id == bindparam("machine_id"), machines.c.row_version == bindparam("read_version")
)
_ROW_VERSION = select(machines.c.row_version).where(machines.c.id == bindparam("machine_id"))


def add_machine(conn: Connection, machine: Machine, event: MachineEvent) -> None:
    conn.execute(_INSERT_MACHINE, mapping.machine_to_row(machine))
    conn.execute(_INSERT_VERSION, mapping.version_to_row(machine))
    _add_event(conn, machine, event)


def _inserting(table: Table, prefix: str, row: dict[str, Any]) -> Insert:
    return insert(table).values({name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in row})


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{name}": value for name, value in row.items()}


_AT_ONCE: dict[bool, Insert] = {}


def add_machine_at_once(conn: Connection, machine: Machine, event: MachineEvent) -> None:
    """`add_machine` as one statement (inserts chained as CTEs), atomic by itself: on PostgreSQL it commits in
    one round trip, without a transaction of several statements around it."""
    rows = {
        "m_": mapping.machine_to_row(machine),
        "v_": mapping.version_to_row(machine),
        "e_": mapping.event_to_row(event),
    }
    line = event_log_line(machine, event)
    if line is not None:
        rows["l_"] = logs.line_row(line)
    statement = _AT_ONCE.get(line is not None)
    if statement is None:
        tables = {"m_": machines, "v_": machine_versions, "e_": machine_events, "l_": machine_logs}
        inserts = [_inserting(tables[prefix], prefix, row) for prefix, row in rows.items()]
        statement = inserts[-1]
        for number, chained in enumerate(inserts[:-1]):
            statement = statement.add_cte(chained.cte(f"chained_{number}"))
        _AT_ONCE[line is not None] = statement
    values: dict[str, Any] = {}
    for prefix, row in rows.items():
        values.update(_prefixed(prefix, row))
    conn.execute(statement, values)


def add_event(conn: Connection, machine: Machine, event: MachineEvent) -> None:
    _add_event(conn, machine, event)


def _add_event(conn: Connection, machine: Machine, event: MachineEvent) -> None:
    """The event, and aerodrome's line about it in the machine's logs."""
    conn.execute(_INSERT_EVENT, mapping.event_to_row(event))
    line = event_log_line(machine, event)
    if line is not None:
        logs.add_line(conn, line)


# Point lookups are built once: constructing a statement costs more than SQLite takes to answer it.
_MACHINE_BY_ID = select(machines).where(machines.c.id == bindparam("machine_id"))
_MACHINE_BY_ID_IN_APP = _MACHINE_BY_ID.where(machines.c.app_name == bindparam("app_name"))


def get_machine(conn: Connection, machine_id: str, app_name: str | None) -> Machine | None:
    if app_name is None:
        row = conn.execute(_MACHINE_BY_ID, {"machine_id": machine_id}).first()
    else:
        row = conn.execute(_MACHINE_BY_ID_IN_APP, {"machine_id": machine_id, "app_name": app_name}).first()
    return None if row is None else mapping.machine_from_row(row)


def list_machines(
    conn: Connection,
    app_name: str,
    *,
    include_deleted: bool,
    region: str | None,
    states: Sequence[MachineState],
) -> list[Machine]:
    query = _filtered(select(machines), include_deleted=include_deleted, region=region, states=states)
    return [mapping.machine_from_row(row) for row in conn.execute(_in_app(query, app_name)).all()]


def list_machine_ids(
    conn: Connection,
    app_name: str,
    *,
    include_deleted: bool,
    region: str | None,
    states: Sequence[MachineState],
) -> list[str]:
    """The ids `list_machines` would return, in its order: a listing of machines already in memory."""
    query = _filtered(select(machines.c.id), include_deleted=include_deleted, region=region, states=states)
    return list(conn.execute(_in_app(query, app_name)).scalars())


def list_machine_versions(
    conn: Connection,
    app_name: str,
    *,
    include_deleted: bool,
    region: str | None,
    states: Sequence[MachineState],
) -> list[tuple[str, int]]:
    """`list_machine_ids` with each row's `row_version`, which every change of a row raises."""
    query = _filtered(
        select(machines.c.id, machines.c.row_version), include_deleted=include_deleted, region=region, states=states
    )
    return [(machine_id, version) for machine_id, version in conn.execute(_in_app(query, app_name))]


def machines_by_ids(conn: Connection, ids: Sequence[str]) -> list[Machine]:
    """The machines of `ids` still there, in no particular order."""
    rows = conn.execute(select(machines).where(machines.c.id.in_(ids)))
    return [mapping.machine_from_row(row) for row in rows]


def _in_app(query: Select[Any], app_name: str) -> Select[Any]:
    return query.where(machines.c.app_name == app_name).order_by(machines.c.created_at, machines.c.id)


def list_org_machines(
    conn: Connection,
    org_slug: str,
    *,
    include_deleted: bool,
    region: str | None,
    states: Sequence[MachineState],
    updated_after: str | None,
    after_id: str | None,
    limit: int,
) -> list[Machine]:
    query = select(machines).join(apps, apps.c.name == machines.c.app_name).where(apps.c.org_slug == org_slug)
    query = _filtered(query, include_deleted=include_deleted, region=region, states=states)
    if updated_after is not None:
        query = query.where(machines.c.updated_at > updated_after)
    if after_id is not None:
        query = query.where(machines.c.id > after_id)
    query = query.order_by(machines.c.id).limit(limit)
    return [mapping.machine_from_row(row) for row in conn.execute(query)]


def live_machines(conn: Connection) -> list[Machine]:
    query = select(machines).where(_not_gone()).order_by(machines.c.id)
    return [mapping.machine_from_row(row) for row in conn.execute(query)]


def save_machine(conn: Connection, machine: Machine, event: MachineEvent | None, new_version: bool) -> Machine:
    """Write the row if it is still the one `machine` was read from (its `row_version`); return it as written."""
    saved = dataclasses.replace(machine, row_version=machine.row_version + 1)
    row = mapping.machine_to_row(saved)
    row["machine_id"] = row.pop("id")
    row["read_version"] = machine.row_version
    if conn.execute(_UPDATE_MACHINE, row).rowcount == 0:
        _refuse(conn, machine)
    if new_version:
        conn.execute(_INSERT_VERSION, mapping.version_to_row(machine))
    if event is not None:
        _add_event(conn, machine, event)
    return saved


def _refuse(conn: Connection, machine: Machine) -> None:
    current = conn.execute(_ROW_VERSION, {"machine_id": machine.id}).scalar()
    if current is None:
        raise NotFoundError(f"machine {machine.id} not found")
    raise FailedPreconditionError(
        f"machine {machine.id} was changed by another request meanwhile (row version {current}, this one read "
        f"{machine.row_version}); try again"
    )


_EVENTS_OF_MACHINE = (
    select(machine_events)
    .where(machine_events.c.machine_id == bindparam("machine_id"))
    .order_by(machine_events.c.timestamp.desc(), machine_events.c.id.desc())
    .limit(bindparam("limit"))
)


def list_events(conn: Connection, machine_id: str, limit: int) -> list[MachineEvent]:
    rows = conn.execute(_EVENTS_OF_MACHINE, {"machine_id": machine_id, "limit": limit})
    return [mapping.event_from_row(row) for row in rows]


def list_versions(conn: Connection, machine_id: str) -> list[MachineVersion]:
    query = (
        select(machine_versions)
        .where(machine_versions.c.machine_id == machine_id)
        .order_by(machine_versions.c.created_at.desc(), machine_versions.c.version.desc())
    )
    return [mapping.version_from_row(row) for row in conn.execute(query)]


def set_lease(conn: Connection, machine_id: str, lease: Lease | None, read_version: int | None = None) -> None:
    values = {**mapping.lease_to_row(lease), "row_version": machines.c.row_version + 1}
    statement = update(machines).where(machines.c.id == machine_id).values(**values)
    if read_version is not None:
        statement = statement.where(machines.c.row_version == read_version)
    if conn.execute(statement).rowcount == 0:
        current = conn.execute(_ROW_VERSION, {"machine_id": machine_id}).scalar()
        if current is None:
            raise NotFoundError(f"machine {machine_id} not found")
        raise FailedPreconditionError(f"the lease of machine {machine_id} was changed by another request meanwhile")
