"""The store's memory of what it wrote, and writes that share one commit: reads agree with the database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from aerodrome.core import FailedPreconditionError, Lease, MachineState, NotFoundError, Secret
from aerodrome.store import SqlStore
from tests.store.factories import ORG, make_app, make_event, make_machine

S = MachineState


@pytest.fixture
async def other(database_url: str, app_store: SqlStore) -> AsyncIterator[SqlStore]:
    """A second store on the same database: it reads what is on disk, not what the first one remembers."""
    reader = await SqlStore.open(database_url)
    try:
        yield reader
    finally:
        await reader.close()


async def test_concurrent_writes_share_a_commit_and_a_failed_one_is_undone_alone(
    app_store: SqlStore, other: SqlStore
) -> None:
    await app_store.add_machine(make_machine("taken"), make_event("taken"))
    writes = [app_store.add_machine(make_machine(f"m{i}"), make_event(f"m{i}")) for i in range(20)]
    writes.insert(7, app_store.add_machine(make_machine("taken"), make_event("taken", timestamp=2_000)))
    writes.insert(12, app_store.save_machine(make_machine("absent")))
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(o).__name__ for o in outcomes if o is not None] == ["IntegrityError", "NotFoundError"]
    assert {m.id for m in await other.list_machines("app1")} == {"taken", *(f"m{i}" for i in range(20))}
    assert len(await other.list_events("taken")) == 1


async def test_reads_follow_every_write(app_store: SqlStore, other: SqlStore) -> None:
    machine = make_machine("m1")
    await app_store.add_machine(machine, make_event("m1"))
    assert [m.id for m in await app_store.list_machines("app1", states=[S.CREATED])] == ["m1"]

    started = dataclasses.replace(machine, state=S.STARTED, config={"image": "other"})
    started = await app_store.save_machine(started, event=make_event("m1", "start", "started", timestamp=2_000))
    lease = Lease("nonce", "me", "", 2**40, machine.instance_id)
    await app_store.set_lease("m1", lease)
    for store in (app_store, other):
        leased = dataclasses.replace(started, lease=lease, row_version=started.row_version + 1)
        assert await store.get_machine("m1", "app1") == leased
        assert await store.list_machines("app1", states=[S.CREATED]) == []
        assert [m.state for m in await store.list_machines("app1")] == [S.STARTED]
        assert [e.type for e in await store.list_events("m1", limit=1)] == ["start"]
        assert [e.type for e in await store.list_events("m1")] == ["start", "launch"]

    with pytest.raises(NotFoundError):
        await app_store.save_machine(make_machine("absent"))
    assert await app_store.get_machine("absent") is None

    await app_store.put_secrets("app1", [Secret("app1", "A", b"c", "d", 0, "t", "t")], [])
    assert [s.name for s in await app_store.list_secrets("app1")] == ["A"]
    await app_store.put_secrets("app1", [], ["A"])
    assert await app_store.list_secrets("app1") == []

    await app_store.set_app_status("app1", "destroying")
    assert (await app_store.get_app("app1")).status == "destroying"  # type: ignore[union-attr]
    await app_store.delete_app("app1")
    assert await app_store.get_app("app1") is None
    assert await app_store.get_machine("m1") is None
    assert await app_store.list_events("m1") == []


async def test_a_listing_finds_machines_it_has_not_seen(app_store: SqlStore, other: SqlStore) -> None:
    await app_store.add_machine(make_machine("m1", created_at="2024-05-01T10:00:01Z"), make_event("m1"))
    await other.add_machine(make_machine("m0"), make_event("m0"))  # written behind the first store's back
    assert [m.id for m in await app_store.list_machines("app1")] == ["m0", "m1"]


async def test_an_organisation_made_by_another_process_is_found(app_store: SqlStore, other: SqlStore) -> None:
    assert await app_store.get_org("later") is None
    await other.ensure_org("later", "Later")
    assert (await app_store.get_org("later")).name == "Later"  # type: ignore[union-attr]
    assert (await app_store.get_org(ORG)).slug == ORG  # type: ignore[union-attr]


async def test_an_app_made_again_after_deletion_is_the_new_one(app_store: SqlStore) -> None:
    await app_store.get_app("app1")
    await app_store.delete_app("app1")
    await app_store.add_app(dataclasses.replace(make_app(), id="second"))
    assert (await app_store.get_app("app1")).id == "second"  # type: ignore[union-attr]


async def test_a_write_from_a_stale_read_is_refused_and_writes_nothing(app_store: SqlStore, other: SqlStore) -> None:
    machine = make_machine("m1")
    await app_store.add_machine(machine, make_event("m1", timestamp=1))
    read_here, read_there = await app_store.get_machine("m1"), await other.get_machine("m1")
    assert read_here is not None and read_there is not None
    started = await app_store.save_machine(dataclasses.replace(read_here, state=S.STARTED))
    assert started.row_version == read_here.row_version + 1
    with pytest.raises(FailedPreconditionError, match="changed by another request"):
        await other.save_machine(
            dataclasses.replace(read_there, state=S.STOPPED), event=make_event("m1", "stop", "stopped", timestamp=2)
        )
    assert await other.get_machine("m1") == started
    assert [e.type for e in await other.list_events("m1")] == ["launch"]
    await app_store.set_lease("m1", Lease("nonce", "me", "", 2**40, machine.instance_id))  # a write of the row too
    with pytest.raises(FailedPreconditionError):
        await app_store.save_machine(dataclasses.replace(started, state=S.STOPPED))
    fresh = await app_store.get_machine("m1")
    assert fresh is not None and fresh.lease is not None and fresh.state is S.STARTED


async def test_a_lease_granted_from_a_stale_read_is_refused(app_store: SqlStore, other: SqlStore) -> None:
    """Two replicas granting the lease at once: the one that read the row before the other's grant is refused."""
    await app_store.add_machine(make_machine("m1"), make_event("m1"))
    read_here, read_there = await app_store.get_machine("m1"), await other.get_machine("m1")
    assert read_here is not None and read_there is not None
    mine, theirs = Lease("mine", "a", "", 2**40, "v1"), Lease("theirs", "b", "", 2**40, "v1")
    await app_store.set_lease("m1", mine, read_version=read_here.row_version)
    with pytest.raises(FailedPreconditionError, match="changed by another request"):
        await other.set_lease("m1", theirs, read_version=read_there.row_version)
    with pytest.raises(NotFoundError):
        await other.set_lease("absent", theirs, read_version=0)
    held = await other.get_machine("m1")
    assert held is not None and held.lease == mine
