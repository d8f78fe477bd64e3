from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from aerodrome.core import MachineState
from aerodrome.store import SqlStore, create_store_engine, sqlite_url
from aerodrome.store.mapping import machine_to_row
from aerodrome.store.schema import machines
from tests.store.factories import ORG, make_app, make_machine

COUNT = 10_000
REGIONS = ("ord", "ams", "syd", "nrt")
STATES = (MachineState.STARTED, MachineState.STOPPED, MachineState.SUSPENDED, MachineState.DESTROYED)


def bulk_insert(path: Path) -> None:
    """One multi-row INSERT of COUNT machines, in one transaction."""
    rows = [
        machine_to_row(
            make_machine(
                f"{n:014x}", region=REGIONS[n % 4], state=STATES[n % 4], deleted=STATES[n % 4].value == "destroyed"
            )
        )
        for n in range(COUNT)
    ]
    engine = create_store_engine(sqlite_url(path))
    try:
        with engine.begin() as connection:
            connection.execute(insert(machines), rows)
    finally:
        engine.dispose()


async def test_ten_thousand_machines(tmp_path: Path) -> None:
    path = tmp_path / "bulk.db"
    store = SqlStore.open_sqlite(path)
    try:
        await store.ensure_org(ORG, "Personal")
        await store.add_app(make_app())
        bulk_insert(path)

        everything = await store.list_machines("app1", include_deleted=True)
        assert len(everything) == COUNT
        assert {machine.id for machine in everything} == {f"{n:014x}" for n in range(COUNT)}
        live = await store.list_machines("app1")
        assert len(live) == COUNT * 3 // 4
        in_sydney = await store.list_machines("app1", region="syd")
        assert {machine.state for machine in in_sydney} == {MachineState.SUSPENDED}
        assert len(in_sydney) == COUNT // 4

        pages: list[str] = []
        cursor = None
        while page := await store.list_org_machines(ORG, include_deleted=True, after_id=cursor, limit=1000):
            pages.extend(machine.id for machine in page)
            cursor = page[-1].id
        assert pages == sorted(machine.id for machine in everything)
        assert await store.app_counts("app1") == (COUNT * 3 // 4, 0)
    finally:
        await store.close()
