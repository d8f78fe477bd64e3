"""PostgreSQL's fewer round trips and decodes: a machine's GET in one read, listings that decode only changed rows."""

from __future__ import annotations

import asyncio
import dataclasses

from aerodrome.core import MachineState
from aerodrome.store import SqlStore
from tests.store.factories import make_app, make_event, make_machine


async def test_the_read_ahead_answers_as_the_point_reads_do(app_store: SqlStore) -> None:
    machine = make_machine("m1", state=MachineState.STARTED)
    await app_store.add_machine(machine, make_event("m1", timestamp=1_000))
    for at in range(2_000, 14_000, 1_000):
        await app_store.add_event(machine, make_event("m1", "start", "started", timestamp=at))
    expected = (await app_store.get_app("app1"), machine, await app_store.list_events("m1", 10))
    async with app_store.reading_machine("app1", "m1", 10):
        got = (await app_store.get_app("app1"), await app_store.get_machine("m1", "app1"))
        assert (*got, await app_store.list_events("m1", 10)) == expected
        # each part answers once; the next read goes to the database, and answers the same
        assert await app_store.list_events("m1", 10) == expected[2]
        assert await app_store.get_machine("m1", "other-app") is None


async def test_absent_app_and_machine_read_ahead_as_absent(app_store: SqlStore) -> None:
    async with app_store.reading_machine("no-such-app", "no-such-machine", 10):
        assert await app_store.get_app("no-such-app") is None
        assert await app_store.get_machine("no-such-machine") is None
        assert await app_store.list_events("no-such-machine", 10) == []


async def test_a_write_drops_what_was_read_ahead(app_store: SqlStore) -> None:
    machine = make_machine("m1")
    await app_store.add_machine(machine, make_event("m1"))
    async with app_store.reading_machine("app1", "m1", 10):
        saved = await app_store.save_machine(dataclasses.replace(machine, state=MachineState.STARTED))
        assert await app_store.get_machine("m1") == saved
        assert [e.type for e in await app_store.list_events("m1", 10)] == ["launch"]


async def test_another_request_never_sees_this_ones_read_ahead(app_store: SqlStore) -> None:
    await app_store.add_app(make_app("app2"))
    machine = make_machine("m1")
    await app_store.add_machine(machine, make_event("m1"))
    inside = asyncio.Event()
    changed = asyncio.Event()

    async def reader() -> None:
        async with app_store.reading_machine("app1", "m1", 10):
            inside.set()
            await changed.wait()

    async def writer() -> None:
        await inside.wait()
        saved = await app_store.save_machine(dataclasses.replace(machine, state=MachineState.STARTED))
        assert await app_store.get_machine("m1") == saved  # not the other task's older view
        changed.set()

    await asyncio.gather(reader(), writer())


async def test_listings_decode_only_changed_rows_and_stay_exact(app_store: SqlStore) -> None:
    first = [make_machine(f"m{i}", created_at=f"2024-05-01T10:00:0{i}Z") for i in range(4)]
    for machine in first:
        await app_store.add_machine(machine, make_event(machine.id))
    listed = await app_store.list_machines("app1")
    assert listed == first
    saved = await app_store.save_machine(dataclasses.replace(first[1], state=MachineState.STARTED))
    again = await app_store.list_machines("app1")
    assert again == [first[0], saved, first[2], first[3]]
    assert again[0] is listed[0]  # an unchanged machine is the same record, whose JSON the API reuses
    destroyed = await app_store.save_machine(dataclasses.replace(first[2], state=MachineState.DESTROYED))
    assert await app_store.list_machines("app1") == [first[0], saved, first[3]]
    assert await app_store.list_machines("app1", include_deleted=True) == [first[0], saved, destroyed, first[3]]
    assert await app_store.list_machines("app1", states=[MachineState.STARTED]) == [saved]
