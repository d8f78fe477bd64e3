from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.exc import IntegrityError

from aerodrome.core import Lease, MachineState, MachineVersion, NotFoundError
from aerodrome.store import SqlStore
from tests.store.factories import ORG, make_app, make_event, make_machine

S = MachineState


async def test_machine_round_trip_with_lease(app_store: SqlStore) -> None:
    lease = Lease(nonce="abc123", owner="me@example.com", description="deploy", expires_at=1_714_557_600, version="v1")
    machine = make_machine(
        "m1", lease=lease, cordoned=True, restart_count=3, host="host-b", state=S.STARTED, private_ipv4="172.19.0.2"
    )
    await app_store.add_machine(machine, make_event("m1"))
    assert await app_store.get_machine("m1") == machine
    assert await app_store.get_machine("m1", "app1") == machine
    assert await app_store.get_machine("m1", "other-app") is None
    assert await app_store.get_machine("absent") is None


async def test_json_columns_round_trip_exactly(app_store: SqlStore) -> None:
    config = {
        "zeta": 1,
        "alpha": [1, 2.5, None, True, "é✈"],
        "nested": {"deep": {"empty": {}, "list": [], "big": 2**53, "neg": -0.125}},
        "services": [{"ports": [{"port": 443, "handlers": ["tls", "http"]}]}],
    }
    await app_store.add_machine(make_machine("m1", config=config, image_ref={}), make_event("m1"))
    stored = await app_store.get_machine("m1")
    assert stored is not None
    assert stored.config == config
    assert list(stored.config) == list(config)  # key order survives too
    assert stored.image_ref == {}


async def test_add_machine_writes_first_version_and_launch_event(app_store: SqlStore) -> None:
    machine = make_machine("m1")
    event = make_event("m1")
    await app_store.add_machine(machine, event)
    assert await app_store.list_events("m1") == [event]
    assert await app_store.list_versions("m1") == [
        MachineVersion(version=machine.instance_id, config=machine.config, created_at=machine.updated_at)
    ]


async def test_list_machines_filters(app_store: SqlStore) -> None:
    await app_store.add_app(make_app("app2"))
    rows = [
        make_machine("m1", state=S.STARTED, region="ord"),
        make_machine("m2", state=S.STOPPED, region="ams"),
        make_machine("m3", state=S.DESTROYED, region="ord", deleted=True),
        make_machine("m4", state=S.STARTED, region="ams"),
        make_machine("m5", "app2", state=S.STARTED),
    ]
    for machine in rows:
        await app_store.add_machine(machine, make_event(machine.id))

    async def ids(**filters: object) -> list[str]:
        return [machine.id for machine in await app_store.list_machines("app1", **filters)]  # type: ignore[arg-type]

    assert await ids() == ["m1", "m2", "m4"]
    assert await ids(include_deleted=True) == ["m1", "m2", "m3", "m4"]
    assert await ids(region="ams") == ["m2", "m4"]
    assert await ids(states=[S.STARTED]) == ["m1", "m4"]
    assert await ids(states=[S.STOPPED, S.DESTROYED], include_deleted=True) == ["m2", "m3"]
    assert [machine.id for machine in await app_store.live_machines()] == ["m1", "m2", "m4", "m5"]


async def test_list_org_machines_pages_by_id(app_store: SqlStore) -> None:
    await app_store.ensure_org("other", "Other")
    await app_store.add_app(make_app("app2"))
    await app_store.add_app(make_app("foreign", org_slug="other"))
    for index, machine_id in enumerate(["m5", "m1", "m4", "m2", "m3"]):
        app_name = "app1" if index % 2 else "app2"
        updated = f"2024-05-0{index + 1}T00:00:00Z"
        await app_store.add_machine(make_machine(machine_id, app_name, updated_at=updated), make_event(machine_id))
    await app_store.add_machine(make_machine("m0", "foreign"), make_event("m0"))

    first = await app_store.list_org_machines(ORG, limit=2)
    assert [machine.id for machine in first] == ["m1", "m2"]
    rest = await app_store.list_org_machines(ORG, after_id=first[-1].id)
    assert [machine.id for machine in rest] == ["m3", "m4", "m5"]
    recent = await app_store.list_org_machines(ORG, updated_after="2024-05-03T00:00:00Z")
    assert [machine.id for machine in recent] == ["m2", "m3"]
    assert [machine.id for machine in await app_store.list_org_machines("other")] == ["m0"]


async def test_save_machine_writes_state_event_and_version(app_store: SqlStore) -> None:
    machine = make_machine("m1")
    await app_store.add_machine(machine, make_event("m1", timestamp=1_000))
    updated = dataclasses.replace(
        machine, state=S.STARTED, instance_id="01HXVERSION2", config={"image": "alpine"}, updated_at="2024-05-02"
    )
    start = make_event("m1", "start", "started", timestamp=2_000)
    saved = await app_store.save_machine(updated, event=start, new_version=True)

    assert saved == dataclasses.replace(updated, row_version=updated.row_version + 1)
    assert await app_store.get_machine("m1") == saved
    assert (await app_store.list_events("m1"))[0] == start
    versions = await app_store.list_versions("m1")
    assert [version.version for version in versions] == ["01HXVERSION2", machine.instance_id]
    assert versions[0].config == {"image": "alpine"}


async def test_save_machine_is_all_or_nothing(app_store: SqlStore) -> None:
    machine = make_machine("m1")
    launch = make_event("m1")
    await app_store.add_machine(machine, launch)
    changed = dataclasses.replace(machine, state=S.STARTED, instance_id="01HXNEW")
    # Reusing the launch event's id makes the last statement of the transaction fail.
    with pytest.raises(IntegrityError):
        await app_store.save_machine(changed, event=launch, new_version=True)

    assert await app_store.get_machine("m1") == machine
    assert [version.version for version in await app_store.list_versions("m1")] == [machine.instance_id]
    assert await app_store.list_events("m1") == [launch]
    # The connection is usable after the rollback.
    await app_store.save_machine(changed, event=make_event("m1", "start", timestamp=5), new_version=True)
    assert len(await app_store.list_versions("m1")) == 2


async def test_save_unknown_machine_is_not_found(app_store: SqlStore) -> None:
    with pytest.raises(NotFoundError):
        await app_store.save_machine(make_machine("ghost"))


async def test_events_newest_first_with_limit(app_store: SqlStore) -> None:
    machine = make_machine("m1")
    await app_store.add_machine(machine, make_event("m1", timestamp=1))
    for timestamp in range(2, 30):
        machine = await app_store.save_machine(machine, event=make_event("m1", "update", timestamp=timestamp))
    events = await app_store.list_events("m1", limit=5)
    assert [event.timestamp for event in events] == [29, 28, 27, 26, 25]
    assert len(await app_store.list_events("m1")) == 20


async def test_set_and_clear_lease(app_store: SqlStore) -> None:
    await app_store.add_machine(make_machine("m1"), make_event("m1"))
    lease = Lease(nonce="n1", owner="o", description="", expires_at=99, version="v")
    await app_store.set_lease("m1", lease)
    stored = await app_store.get_machine("m1")
    assert stored is not None and stored.lease == lease
    await app_store.set_lease("m1", None)
    stored = await app_store.get_machine("m1")
    assert stored is not None and stored.lease is None
    with pytest.raises(NotFoundError):
        await app_store.set_lease("ghost", lease)
