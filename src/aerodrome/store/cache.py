"""The records the API reads on every request, kept in memory as this process last wrote or read them.

Exact only while this process is the database's one writer of them, which an embedded SQLite file guarantees
(`aerodrome serve` owns it; the CLI beside it only adds organisations and tokens). Every write updates or drops
the entries it touches after it commits; a read fills them. The store turns the cache off for any other engine,
whose database several hosts may write.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TypeVar

from aerodrome.core import App, Machine, MachineEvent, Organization, Secret

#: Past this many entries of one kind the cache starts again empty: a bound, not an eviction policy.
MAX_ENTRIES = 100_000
ALL = sys.maxsize  # an events entry that holds every event of its machine
V = TypeVar("V")


class RecordCache:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.orgs: dict[str, Organization] = {}
        self.apps: dict[str, App] = {}
        self.machines: dict[str, Machine] = {}
        self._events: dict[str, tuple[tuple[MachineEvent, ...], int]] = {}  # newest first, and the limit read
        self.secrets: dict[str, list[Secret]] = {}

    def put_org(self, org: Organization | None) -> None:
        if self.enabled and org is not None:
            _bounded(self.orgs)[org.slug] = org

    def put_app(self, app: App | None) -> None:
        if self.enabled and app is not None:
            _bounded(self.apps)[app.name] = app

    def put_machine(self, machine: Machine | None) -> None:
        if self.enabled and machine is not None:
            _bounded(self.machines)[machine.id] = machine

    def put_machines(self, machines: Sequence[Machine]) -> None:
        if self.enabled:
            cached = _bounded(self.machines, len(machines))
            for machine in machines:
                cached[machine.id] = machine

    def machines_in(self, ids: Sequence[str]) -> list[Machine] | None:
        """The machines of `ids`, in order, when every one of them is cached."""
        cached = self.machines
        try:
            return [cached[machine_id] for machine_id in ids]
        except KeyError:
            return None

    def events(self, machine_id: str, limit: int) -> list[MachineEvent] | None:
        entry = self._events.get(machine_id)
        if entry is None:
            return None
        events, read_limit = entry
        if limit > read_limit and len(events) >= read_limit:  # the read may have left older events out
            return None
        return list(events[:limit])

    def put_events(self, machine_id: str, events: Sequence[MachineEvent], limit: int) -> None:
        if self.enabled:
            _bounded(self._events)[machine_id] = (tuple(events), limit)

    def put_secrets(self, app_name: str, secrets: list[Secret]) -> None:
        if self.enabled:
            _bounded(self.secrets)[app_name] = secrets

    def forget_events(self, machine_id: str) -> None:
        self._events.pop(machine_id, None)

    def forget_app(self, name: str) -> None:
        """After the app and everything of it is gone (or changed)."""
        self.apps.pop(name, None)
        self.secrets.pop(name, None)
        for machine_id in [m.id for m in self.machines.values() if m.app_name == name]:
            del self.machines[machine_id]
            self._events.pop(machine_id, None)


def _bounded(entries: dict[str, V], adding: int = 1) -> dict[str, V]:
    if len(entries) + adding > MAX_ENTRIES:
        entries.clear()
    return entries
