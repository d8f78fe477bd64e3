from __future__ import annotations

import pytest

from aerodrome.core import (
    APP_DESTROYING,
    AlreadyExistsError,
    IPAddress,
    MachineState,
    NotFoundError,
    Secret,
    Token,
    VolumeSnapshot,
)
from aerodrome.store import SqlStore
from tests.store.factories import ORG, make_app, make_event, make_machine, make_volume


async def test_ensure_org_creates_once(store: SqlStore) -> None:
    first = await store.ensure_org(ORG, "Personal")
    again = await store.ensure_org(ORG, "Another name")
    assert again == first
    assert await store.get_org(ORG) == first
    assert await store.get_org("nobody") is None


async def test_list_orgs_by_slug(store: SqlStore) -> None:
    await store.ensure_org("zeta", "Z")
    await store.ensure_org("alpha", "A")
    orgs = await store.list_orgs()
    assert [org.slug for org in orgs] == ["alpha", "zeta"]
    assert len({org.internal_numeric_id for org in orgs}) == 2


async def test_tokens_are_found_by_hash(store: SqlStore) -> None:
    await store.ensure_org(ORG, "Personal")
    token = Token(id="tok1", org_slug=ORG, name="deploy", created_at="2024-05-01T10:00:00Z")
    await store.add_token(token, "hash-1")
    assert await store.find_token("hash-1") == token
    assert await store.find_token("hash-2") is None


async def test_token_for_unknown_org_is_refused(store: SqlStore) -> None:
    with pytest.raises(NotFoundError):
        await store.add_token(Token(id="t", org_slug="nobody", name="n", created_at="x"), "h")


async def test_app_round_trip_and_listing(app_store: SqlStore) -> None:
    await app_store.add_app(make_app("app0"))
    assert await app_store.get_app("app1") == make_app()
    assert await app_store.get_app("absent") is None
    assert [app.name for app in await app_store.list_apps(ORG)] == ["app0", "app1"]
    assert await app_store.list_apps("other") == []
    assert [app.name for app in await app_store.list_apps(None)] == ["app0", "app1"]


async def test_app_status_is_durable_and_an_unknown_app_is_refused(app_store: SqlStore) -> None:
    await app_store.set_app_status("app1", APP_DESTROYING)
    app = await app_store.get_app("app1")
    assert app is not None and app.destroying
    with pytest.raises(NotFoundError):
        await app_store.set_app_status("absent", APP_DESTROYING)


async def test_taken_app_name_is_refused(app_store: SqlStore) -> None:
    with pytest.raises(AlreadyExistsError):
        await app_store.add_app(make_app())


async def test_app_in_unknown_org_is_refused(app_store: SqlStore) -> None:
    with pytest.raises(NotFoundError):
        await app_store.add_app(make_app("orphan", org_slug="nobody"))


async def test_app_counts_ignore_destroyed(app_store: SqlStore) -> None:
    states = {"m1": MachineState.STARTED, "m2": MachineState.STOPPED, "m3": MachineState.DESTROYED}
    for machine_id, state in states.items():
        await app_store.add_machine(make_machine(machine_id, state=state), make_event(machine_id))
    await app_store.add_volume(make_volume("vol_1"))
    await app_store.add_volume(make_volume("vol_2", state="destroyed"))
    assert await app_store.app_counts("app1") == (2, 1)
    assert await app_store.app_counts("absent") == (0, 0)


async def test_delete_app_removes_every_row(app_store: SqlStore) -> None:
    await app_store.add_app(make_app("keep"))
    for app_name in ("app1", "keep"):
        machine_id, volume_id = f"m-{app_name}", f"vol_{app_name}"
        await app_store.add_machine(make_machine(machine_id, app_name), make_event(machine_id))
        await app_store.add_volume(make_volume(volume_id, app_name))
        await app_store.add_snapshot(
            VolumeSnapshot(
                id=f"vs_{app_name}",
                volume_id=volume_id,
                size=1,
                volume_size=2,
                digest="d",
                status="created",
                created_at="t",
            )
        )
        await app_store.put_secrets(app_name, [Secret(app_name, "S", b"c", "d", 0, "t", "t")], [])
        await app_store.add_ip(
            IPAddress(
                id=f"ip-{app_name}",
                app_name=app_name,
                address=f"10.0.0.{1 + len(await app_store.list_ips())}",
                type="v4",
                region="global",
                network="",
                service_name="",
                created_at="t",
            )
        )

    await app_store.delete_app("app1")

    assert await app_store.get_app("app1") is None
    assert await app_store.get_machine("m-app1") is None
    assert await app_store.list_events("m-app1") == []
    assert await app_store.list_versions("m-app1") == []
    assert await app_store.get_volume("vol_app1") is None
    assert await app_store.get_snapshot("vs_app1") is None
    assert await app_store.list_secrets("app1") == []
    assert [ip.app_name for ip in await app_store.list_ips()] == ["keep"]
    assert await app_store.get_machine("m-keep") is not None
    assert await app_store.get_snapshot("vs_keep") is not None
    # The name is free again.
    await app_store.add_app(make_app())
