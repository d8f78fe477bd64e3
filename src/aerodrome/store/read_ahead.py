"""One round trip for what a machine's GET reads: its app, the machine and its newest events.

On PostgreSQL each read is a round trip and a pool checkout, and a GET of a machine makes three (app, machine,
events). `machine_view` asks all three in one statement (one snapshot, so no less exact than three reads taken
one after another), and `ReadAhead` holds the answer for the request that asked, where the store's point reads
take it, each entry once. Any write of the request drops what is left, so a read after it goes to the database.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from aerodrome.core import App, Machine, MachineEvent
from aerodrome.store import mapping
from aerodrome.store.schema import apps, machine_events, machines

_EVENTS = (
    select(machine_events)
    .where(machine_events.c.machine_id == bindparam("machine_id"))
    .order_by(machine_events.c.timestamp.desc(), machine_events.c.id.desc())
    .limit(bindparam("limit"))
    .subquery("ev")
)
_EVENTS_JSON = (
    select(func.json_agg(aggregate_order_by(_EVENTS.table_valued(), _EVENTS.c.timestamp.desc(), _EVENTS.c.id.desc())))
    .select_from(_EVENTS)
    .scalar_subquery()
)
_ONE = select(literal(1).label("one")).subquery("one")
_VIEW = select(*apps.c, *machines.c, _EVENTS_JSON.label("events")).select_from(
    _ONE.outerjoin(apps, apps.c.name == bindparam("app_name")).outerjoin(
        machines, machines.c.id == bindparam("machine_id")
    )
)
_APP_COLUMNS = len(apps.c)
_MACHINE_COLUMNS = len(machines.c)


@dataclass(frozen=True, slots=True)
class MachineView:
    app_name: str
    machine_id: str
    events_limit: int
    app: App | None
    machine: Machine | None
    events: list[MachineEvent]


def machine_view(conn: Connection, app_name: str, machine_id: str, events_limit: int) -> MachineView:
    row = conn.execute(_VIEW, {"app_name": app_name, "machine_id": machine_id, "limit": events_limit}).one()
    app_part = row[:_APP_COLUMNS]
    machine_part = row[_APP_COLUMNS : _APP_COLUMNS + _MACHINE_COLUMNS]
    app = None if app_part[0] is None else mapping.app_from_row(_Named(apps.c.keys(), app_part))  # type: ignore[arg-type]
    machine = None if machine_part[0] is None else mapping.machine_from_row(machine_part)  # type: ignore[arg-type]
    events = [_event(value) for value in _decoded(row[-1]) or ()]
    return MachineView(app_name, machine_id, events_limit, app, machine, events)


def _decoded(value: Any) -> Any:
    """json_agg's answer: text from asyncpg (SQLAlchemy's dialect leaves JSON to its own decoder)."""
    return orjson.loads(value) if isinstance(value, str) else value


def _event(value: dict[str, Any]) -> MachineEvent:
    return MachineEvent(
        id=value["id"],
        machine_id=value["machine_id"],
        type=value["type"],
        status=value["status"],
        source=value["source"],
        timestamp=value["timestamp"],
        request=value["request"],
    )


class _Named:
    """A row slice read by attribute, as the mapping's `*_from_row` read rows."""

    def __init__(self, keys: list[str], values: Any) -> None:
        for key, value in zip(keys, values, strict=True):
            setattr(self, key, value)


class ReadAhead:
    """The request's `MachineView`, if it asked for one: each of its parts answers one read, then is gone."""

    _current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("aerodrome_read_ahead")

    def hold(self, view: MachineView) -> contextvars.Token[dict[str, Any] | None]:
        entries: dict[str, Any] = {f"app:{view.app_name}": view.app, f"machine:{view.machine_id}": view.machine}
        entries[f"events:{view.machine_id}:{view.events_limit}"] = view.events
        return self._current.set(entries)

    def release(self, token: contextvars.Token[dict[str, Any] | None]) -> None:
        self._current.reset(token)

    def take(self, key: str) -> tuple[bool, Any]:
        entries = self._current.get(None)
        if not entries or key not in entries:
            return False, None
        return True, entries.pop(key)

    def drop(self) -> None:
        entries = self._current.get(None)
        if entries:
            entries.clear()
