from __future__ import annotations

import dataclasses

import pytest

from aerodrome.core import AlreadyExistsError, IPAddress, NotFoundError, Secret, VolumeSnapshot
from aerodrome.store import SqlStore
from tests.store.factories import make_app, make_volume


def secret(name: str, ciphertext: bytes, app_name: str = "app1", at: str = "2024-05-01T10:00:00Z") -> Secret:
    return Secret(app_name, name, ciphertext, f"digest-{name}", 0, at, at)


def address(ip_id: str, value: str, app_name: str = "app1") -> IPAddress:
    return IPAddress(
        id=ip_id,
        app_name=app_name,
        address=value,
        type="v6",
        region="global",
        network="default",
        service_name="",
        created_at=f"2024-05-01T10:00:0{ip_id[-1]}Z",
    )


async def test_volume_round_trip_and_save(app_store: SqlStore) -> None:
    volume = make_volume("vol_1", encrypted=True, snapshot_retention=9, auto_backup_enabled=False, host="h2")
    await app_store.add_volume(volume)
    assert await app_store.get_volume("vol_1") == volume
    attached = dataclasses.replace(volume, attached_machine_id="m1", size_gb=5)
    await app_store.save_volume(attached)
    assert await app_store.get_volume("vol_1") == attached
    assert await app_store.get_volume("vol_absent") is None
    with pytest.raises(NotFoundError):
        await app_store.save_volume(make_volume("vol_absent"))


async def test_list_volumes_hides_destroyed(app_store: SqlStore) -> None:
    await app_store.add_volume(make_volume("vol_1"))
    await app_store.add_volume(make_volume("vol_2", state="destroyed"))
    assert [volume.id for volume in await app_store.list_volumes("app1")] == ["vol_1"]
    everything = await app_store.list_volumes("app1", include_destroyed=True)
    assert [volume.id for volume in everything] == ["vol_1", "vol_2"]


async def test_snapshots(app_store: SqlStore) -> None:
    await app_store.add_volume(make_volume("vol_1"))
    snapshots = [
        VolumeSnapshot(
            id=f"vs_{index}",
            volume_id="vol_1",
            size=1024 * index,
            volume_size=2**40,
            digest=f"sha256:{index}",
            status="created",
            created_at=f"2024-05-0{index}T00:00:00Z",
            retention_days=index,
        )
        for index in (2, 1)
    ]
    for snapshot in snapshots:
        await app_store.add_snapshot(snapshot)
    assert await app_store.get_snapshot("vs_2") == snapshots[0]
    assert await app_store.get_snapshot("vs_9") is None
    assert await app_store.list_snapshots("vol_1") == snapshots[::-1]


async def test_put_secrets_upserts_deletes_and_versions(app_store: SqlStore) -> None:
    assert await app_store.secrets_version("app1") == 0
    first = await app_store.put_secrets("app1", [secret("A", b"\x00\xff"), secret("B", b"b")], [])
    assert first == 1
    later = "2024-06-01T00:00:00Z"
    second = await app_store.put_secrets("app1", [secret("A", b"new", at=later)], ["B", "NEVER_SET"])
    assert second == 2
    assert await app_store.secrets_version("app1") == 2
    assert await app_store.list_secrets("app1") == [
        Secret("app1", "A", b"new", "digest-A", 2, "2024-05-01T10:00:00Z", later)
    ]


async def test_put_secrets_for_unknown_app(app_store: SqlStore) -> None:
    with pytest.raises(NotFoundError):
        await app_store.put_secrets("ghost", [secret("A", b"a", "ghost")], [])
    assert await app_store.secrets_version("ghost") == 0


async def test_secrets_are_per_app(app_store: SqlStore) -> None:
    await app_store.add_app(make_app("app2"))
    await app_store.put_secrets("app1", [secret("A", b"1")], [])
    await app_store.put_secrets("app2", [secret("A", b"2", "app2")], [])
    assert [s.ciphertext for s in await app_store.list_secrets("app2")] == [b"2"]
    assert await app_store.secrets_version("app2") == 1


async def test_ip_addresses(app_store: SqlStore) -> None:
    await app_store.add_app(make_app("app2"))
    first, second = address("ip1", "fdaa::1"), address("ip2", "10.1.0.1", "app2")
    await app_store.add_ip(first)
    await app_store.add_ip(second)
    assert await app_store.list_ips() == [first, second]
    assert await app_store.list_ips("app2") == [second]
    with pytest.raises(AlreadyExistsError):
        await app_store.add_ip(address("ip3", "fdaa::1"))
    await app_store.delete_ip("ip1")
    assert await app_store.list_ips() == [second]
    await app_store.add_ip(address("ip3", "fdaa::1"))  # released addresses can be allocated again
