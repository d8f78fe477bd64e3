"""Retention against a real SQLite file: what a sweep removes, and that it removes nothing else."""

from __future__ import annotations

import dataclasses

from aerodrome.control import Retention, RetentionSettings
from aerodrome.core import MachineState, rfc3339, ulid
from aerodrome.store import SqlStore
from tests.store.factories import make_event, make_machine

NOW = 1_800_000_000.0  # seconds since the epoch, the tests' clock


class FixedClock:
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return self.at


def _retention(store: SqlStore, clock: FixedClock, batch: int = 500) -> Retention:
    settings = RetentionSettings(
        events_per_machine=5, event_max_age=3600.0, versions_per_machine=3, destroyed_machine_age=60.0, batch=batch
    )
    return Retention(store, clock, settings)


async def _machine_with_events(store: SqlStore, machine_id: str, count: int, first_ms: int) -> None:
    machine = make_machine(machine_id, updated_at=rfc3339(NOW))
    await store.add_machine(machine, make_event(machine_id, timestamp=first_ms))
    for i in range(1, count):
        machine = await store.save_machine(machine, event=make_event(machine_id, "start", "started", first_ms + i))


async def test_a_machine_keeps_its_newest_events(app_store: SqlStore) -> None:
    clock = FixedClock(NOW)
    now_ms = int(NOW * 1000)
    await _machine_with_events(app_store, "busy", 12, now_ms - 1000)
    await _machine_with_events(app_store, "quiet", 4, now_ms - 1000)
    before = await app_store.list_events("busy", 50)  # fills the cache, which the sweep must not leave stale
    assert len(before) == 12

    removed = await _retention(app_store, clock).sweep()

    assert removed == 7
    kept = await app_store.list_events("busy", 50)
    assert [e.id for e in kept] == [e.id for e in before[:5]]  # the newest five, newest first
    assert len(await app_store.list_events("quiet", 50)) == 4  # under the bound: all there
    assert await _retention(app_store, clock).sweep() == 0


async def test_events_older_than_the_bound_go_even_under_the_count(app_store: SqlStore) -> None:
    clock = FixedClock(NOW)
    now_ms = int(NOW * 1000)
    await _machine_with_events(app_store, "old", 2, now_ms - 7_200_000)
    machine = await app_store.get_machine("old")
    assert machine is not None
    await app_store.save_machine(machine, event=make_event("old", "stop", "stopped", now_ms - 10))

    assert await _retention(app_store, clock).sweep() == 2
    assert [e.type for e in await app_store.list_events("old", 50)] == ["stop"]


async def test_a_machine_keeps_its_newest_versions_and_its_current_one(app_store: SqlStore) -> None:
    machine = make_machine("m1", updated_at="2024-05-01T10:00:00Z")
    await app_store.add_machine(machine, make_event("m1", timestamp=int(NOW * 1000)))
    for i in range(1, 8):
        machine = dataclasses.replace(machine, instance_id=ulid(), updated_at=f"2024-05-01T10:00:{i:02}Z")
        machine = await app_store.save_machine(machine, new_version=True)
    versions = await app_store.list_versions("m1")
    assert len(versions) == 8

    assert await _retention(app_store, FixedClock(NOW)).sweep() == 5

    kept = await app_store.list_versions("m1")
    assert [v.version for v in kept] == [v.version for v in versions[:3]]
    assert kept[0].version == machine.instance_id


async def test_destroyed_machines_go_after_the_bound_with_their_rows(app_store: SqlStore) -> None:
    clock = FixedClock(NOW)
    now_ms = int(NOW * 1000)
    for machine_id, destroyed_at in (("gone", NOW - 120), ("recent", NOW - 10)):
        machine = make_machine(machine_id)
        await app_store.add_machine(machine, make_event(machine_id, timestamp=now_ms - 200_000))
        destroyed = dataclasses.replace(
            machine, state=MachineState.DESTROYED, deleted=True, updated_at=rfc3339(destroyed_at)
        )
        await app_store.save_machine(destroyed, event=make_event(machine_id, "destroy", "destroyed", now_ms - 1))
    await _machine_with_events(app_store, "live", 3, now_ms - 200_000)
    live = await app_store.get_machine("live")
    assert live is not None
    await app_store.save_machine(dataclasses.replace(live, updated_at=rfc3339(NOW - 3600)))  # idle, not destroyed
    assert await app_store.get_machine("gone") is not None  # cached: the sweep must forget it

    assert await _retention(app_store, clock).sweep() == 4  # the machine, its two events and its version

    listed = [m.id for m in await app_store.list_machines("app1", include_deleted=True)]
    assert sorted(listed) == ["live", "recent"]
    assert await app_store.get_machine("gone") is None
    assert await app_store.list_events("gone", 50) == []
    assert await app_store.list_versions("gone") == []
    assert len(await app_store.list_events("live", 50)) == 3

    clock.at = NOW + 60
    assert await _retention(app_store, clock).sweep() == 4
    assert [m.id for m in await app_store.list_machines("app1", include_deleted=True)] == ["live"]


async def test_a_sweep_works_in_batches(app_store: SqlStore) -> None:
    now_ms = int(NOW * 1000)
    for i in range(7):
        await _machine_with_events(app_store, f"m{i}", 8, now_ms - 1000)

    assert await _retention(app_store, FixedClock(NOW), batch=2).sweep() == 7 * 3
    for i in range(7):
        assert len(await app_store.list_events(f"m{i}", 50)) == 5
