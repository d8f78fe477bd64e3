"""Volumes through the API, against a real `aerodrome serve`: real ext4 images on loop devices in real machines.

The server runs with one volume "GB" = 16 MiB and an auto-extend check every second.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import after_passes, create_machine, machine_exec, wait_for
from tests.support.server import Server, running_server
from tests.support.skips import skip_by_host
from tests.support.volumes import host_leftovers, online_resize_allowed

UNIT_KIB = 16 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--volume-check-interval", "1") as started:
        started.push_image("busybox")
        data_dir = started.data_dir
        yield started
    assert host_leftovers(data_dir) == []


def new_volume(api: httpx.Client, app: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "iad", "size_gb": 1, **body})
    assert response.status_code == 200, response.text
    volume: dict[str, Any] = response.json()
    return volume


def get_volume(api: httpx.Client, app: str, vol_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/apps/{app}/volumes/{vol_id}")
    assert response.status_code == 200, response.text
    volume: dict[str, Any] = response.json()
    return volume


def run(api: httpx.Client, app: str, mid: str, script: str) -> str:
    result = machine_exec(api, app, mid, "sh", "-c", script)
    assert result["exit_code"] == 0, result
    return str(result["stdout"])


def started(api: httpx.Client, app: str, image: str, vol_id: str, **mount: Any) -> str:
    machine = create_machine(api, app, {"image": image, "mounts": [{"volume": vol_id, "path": "/data", **mount}]})
    wait_for(api, app, machine["id"], "started")
    return str(machine["id"])


def action(api: httpx.Client, app: str, mid: str, verb: str, state: str) -> None:
    response = api.post(f"/v1/apps/{app}/machines/{mid}/{verb}")
    assert response.status_code == 200, response.text
    wait_for(api, app, mid, state)


def df_kib(api: httpx.Client, app: str, mid: str) -> int:
    return int(run(api, app, mid, "df -k /data | tail -n 1 | awk '{print $2}'"))


def test_create_get_list_update_delete(api: httpx.Client, app_name: str) -> None:
    base = f"/v1/apps/{app_name}/volumes"
    volume = new_volume(api, app_name, size_gb=2)
    assert volume["id"].startswith("vol_") and volume["state"] == "created" and volume["fstype"] == "ext4"
    assert volume["size_gb"] == 2 and volume["region"] == "iad" and volume["attached_machine_id"] is None
    got = get_volume(api, app_name, volume["id"])
    assert got["block_size"] == 4096 and got["bytes_total"] == got["blocks"] * 4096
    assert 0 < got["bytes_used"] < got["bytes_total"] <= 2 * UNIT_KIB * 1024
    assert [v["id"] for v in api.get(base).json()] == [volume["id"]]
    assert api.get(base, params={"summary": "true"}).json()[0]["id"] == volume["id"]
    updated = api.put(f"{base}/{volume['id']}", json={"snapshot_retention": 10, "auto_backup_enabled": False})
    assert updated.json()["snapshot_retention"] == 10 and updated.json()["auto_backup_enabled"] is False
    raw = new_volume(api, app_name, name="scratch", fstype="raw")
    assert get_volume(api, app_name, raw["id"])["bytes_total"] == 0  # no filesystem to count
    deleted = api.delete(f"{base}/{volume['id']}")
    assert deleted.status_code == 200 and deleted.json()["state"] == "destroyed"
    assert api.get(f"{base}/{volume['id']}").status_code == 404
    assert [v["id"] for v in api.get(base).json()] == [raw["id"]]


def test_create_validates(api: httpx.Client, app_name: str) -> None:
    base = f"/v1/apps/{app_name}/volumes"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"name": "Bad-Name"}, 400, "name"),
        ({"name": "x" * 31}, 400, "name"),
        ({"size_gb": 0}, 400, "size_gb"),
        ({"size_gb": 501}, 400, "size_gb"),
        ({"fstype": "xfs"}, 400, "fstype"),
        ({"snapshot_id": "vs_nope"}, 404, "snapshot"),
        ({"source_volume_id": "vol_nope"}, 404, "not found"),
        ({"snapshot_id": "vs_a", "source_volume_id": "vol_b"}, 400, "either"),
        ({"region": "nowhere"}, 400, "region"),
    ]
    for body, status, words in cases:
        response = api.post(base, json={"name": "data", "region": "iad", **body})
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["error"], body


def test_mount_autoextend_fields_are_validated_as_fly_does(api: httpx.Client, app_name: str, image: str) -> None:
    volume = new_volume(api, app_name)
    bad = [
        {"extend_threshold_percent": 49, "add_size_gb": 1, "size_gb_limit": 5},
        {"extend_threshold_percent": 100, "add_size_gb": 1},
        {"extend_threshold_percent": 80},
        {"extend_threshold_percent": 80, "add_size_gb": 101},
        {"extend_threshold_percent": 80, "add_size_gb": 1, "size_gb_limit": 501},
        {"add_size_gb": 1, "size_gb_limit": 5},
    ]
    for fields in bad:
        config = {"image": image, "mounts": [{"volume": volume["id"], "path": "/data", **fields}]}
        response = api.post(f"/v1/apps/{app_name}/machines", json={"config": config, "skip_launch": True})
        assert response.status_code == 400, (fields, response.text)
        assert "mounts." in response.json()["error"]
    assert get_volume(api, app_name, volume["id"])["attached_machine_id"] is None
    good = {"extend_threshold_percent": 80, "add_size_gb": 1}  # size_gb_limit is optional, as in flyctl
    config = {"image": image, "mounts": [{"volume": volume["id"], "path": "/data", **good}]}
    machine = create_machine(api, app_name, config, skip_launch=True)
    assert get_volume(api, app_name, volume["id"])["attached_machine_id"] == machine["id"]


def test_data_survives_stop_start_update_suspend_restart_and_destroy(
    api: httpx.Client, app_name: str, image: str
) -> None:
    volume = new_volume(api, app_name)
    mid = started(api, app_name, image, volume["id"])
    base = f"/v1/apps/{app_name}/machines/{mid}"
    run(api, app_name, mid, "echo kept > /data/note && sync")
    assert get_volume(api, app_name, volume["id"])["attached_machine_id"] == mid
    action(api, app_name, mid, "stop", "stopped")
    action(api, app_name, mid, "start", "started")
    assert run(api, app_name, mid, "cat /data/note") == "kept\n"
    config = {"image": image, "env": {"V": "2"}, "mounts": [{"volume": volume["id"], "path": "/data"}]}
    assert api.post(base, json={"config": config}).status_code == 200
    wait_for(api, app_name, mid, "started")
    assert run(api, app_name, mid, "echo $V; cat /data/note") == "2\nkept\n"
    action(api, app_name, mid, "suspend", "suspended")
    action(api, app_name, mid, "start", "started")
    action(api, app_name, mid, "restart", "started")
    assert run(api, app_name, mid, "cat /data/note") == "kept\n"

    refused = api.delete(f"/v1/apps/{app_name}/volumes/{volume['id']}")
    assert refused.status_code == 412
    assert refused.json()["error"] == f"failed_precondition: volume is currently bound to machine: {mid}"

    assert api.delete(base, params={"force": "true"}).status_code == 200
    assert get_volume(api, app_name, volume["id"])["attached_machine_id"] is None
    successor = started(api, app_name, image, "data")  # by name: the unattached volume in the region
    assert run(api, app_name, successor, "cat /data/note") == "kept\n"


def test_filling_the_volume_is_enospc_and_harms_nothing_else(api: httpx.Client, app_name: str, image: str) -> None:
    volume = new_volume(api, app_name)
    mid = started(api, app_name, image, volume["id"])
    run(api, app_name, mid, "echo before > /data/note && sync")
    result = machine_exec(api, app_name, mid, "sh", "-c", "dd if=/dev/zero of=/data/fill bs=1M count=64 && sync")
    assert result["exit_code"] != 0 and "No space left on device" in result["stderr"], result
    used = get_volume(api, app_name, volume["id"])
    assert used["bytes_used"] > 0.85 * used["bytes_total"]  # ext4 keeps a few blocks back for its metadata
    assert run(api, app_name, mid, "cat /data/note; echo ok > /tmp/elsewhere; cat /tmp/elsewhere") == "before\nok\n"
    run(api, app_name, mid, "rm /data/fill && echo again > /data/note2 && sync")
    assert run(api, app_name, mid, "cat /data/note2") == "again\n"
    assert api.get(f"/v1/apps/{app_name}/machines/{mid}").json()["state"] == "started"


def test_extend_answers_needs_restart_and_the_start_grows_it(api: httpx.Client, app_name: str, image: str) -> None:
    base = f"/v1/apps/{app_name}/volumes"
    loose = new_volume(api, app_name, name="loose")
    body = api.put(f"{base}/{loose['id']}/extend", json={"size_gb": 2}).json()
    assert body["needs_restart"] is False and body["volume"]["size_gb"] == 2  # unattached: grown at once
    assert body["volume"]["bytes_total"] >= loose["bytes_total"] + UNIT_KIB * 1024
    assert api.put(f"{base}/{loose['id']}/extend", json={"size_gb": 2}).status_code == 400  # not larger

    volume = new_volume(api, app_name)
    mid = started(api, app_name, image, volume["id"])
    before = df_kib(api, app_name, mid)
    extended = api.put(f"{base}/{volume['id']}/extend", json={"size_gb": 3})
    assert extended.status_code == 200 and extended.json()["volume"]["size_gb"] == 3
    if extended.json()["needs_restart"]:
        assert df_kib(api, app_name, mid) == before
        action(api, app_name, mid, "restart", "started")
    assert df_kib(api, app_name, mid) > 2.5 * before


def test_autoextend_grows_the_volume_up_to_its_limit(api: httpx.Client, app_name: str, image: str) -> None:
    volume = new_volume(api, app_name)
    policy = {"extend_threshold_percent": 60, "add_size_gb": 1, "size_gb_limit": 2}
    mid = started(api, app_name, image, volume["id"], **policy)
    before = df_kib(api, app_name, mid)
    run(api, app_name, mid, "dd if=/dev/zero of=/data/a bs=1M count=8 && sync")  # 75% of 10.6 MiB usable
    event = wait_for_event(api, app_name, mid, "volume_extend")
    request = event["request"]
    assert request["volume_id"] == volume["id"] and (request["old_size_gb"], request["new_size_gb"]) == (1, 2)
    assert event["source"] == "flyd" and get_volume(api, app_name, volume["id"])["size_gb"] == 2
    assert request["needs_restart"] is not online_resize_allowed()
    if request["needs_restart"]:
        action(api, app_name, mid, "stop", "stopped")
        action(api, app_name, mid, "start", "started")
    assert df_kib(api, app_name, mid) > 1.8 * before
    run(api, app_name, mid, "dd if=/dev/zero of=/data/b bs=1M count=10 && sync")  # 68% of 26.6 MiB usable
    after_passes(api, "volume-autoextend", 3)  # the limit holds
    assert get_volume(api, app_name, volume["id"])["size_gb"] == 2
    assert len(events_of(api, app_name, mid, "volume_extend")) == 1


def test_autoextend_online_where_the_host_allows_it(api: httpx.Client, app_name: str, image: str) -> None:
    if not online_resize_allowed():
        skip_by_host("online ext4 resize needs CAP_SYS_RESOURCE, which this host withholds")
    volume = new_volume(api, app_name)
    mid = started(api, app_name, image, volume["id"], extend_threshold_percent=50, add_size_gb=1)
    before = df_kib(api, app_name, mid)
    run(api, app_name, mid, "dd if=/dev/zero of=/data/a bs=1M count=8 && sync")
    assert wait_for_event(api, app_name, mid, "volume_extend")["request"]["needs_restart"] is False
    assert df_kib(api, app_name, mid) > 1.8 * before


def test_snapshot_then_restore_and_fork_are_identical(api: httpx.Client, app_name: str, image: str) -> None:
    base = f"/v1/apps/{app_name}/volumes"
    volume = new_volume(api, app_name, size_gb=2)
    mid = started(api, app_name, image, volume["id"])
    digest = run(
        api,
        app_name,
        mid,
        "dd if=/dev/urandom of=/data/blob bs=1k count=4096 2>/dev/null; sync; sha256sum /data/blob | cut -d' ' -f1",
    )
    snapshot = api.post(f"{base}/{volume['id']}/snapshots")
    assert snapshot.status_code == 200, snapshot.text
    snap = snapshot.json()
    assert snap["id"] and snap["digest"] and snap["volume_size"] == 2 * UNIT_KIB * 1024 and snap["status"]
    assert [s["id"] for s in api.get(f"{base}/{volume['id']}/snapshots").json()] == [snap["id"]]
    run(api, app_name, mid, "echo changed >> /data/blob && sync")  # the snapshot keeps the earlier bytes

    restored = new_volume(api, app_name, name="restored", snapshot_id=snap["id"], size_gb=None)
    assert restored["size_gb"] == 2
    forked = new_volume(api, app_name, name="forked", source_volume_id=volume["id"], size_gb=3)
    assert forked["size_gb"] == 3
    first = started(api, app_name, image, restored["id"])
    assert run(api, app_name, first, "sha256sum /data/blob | cut -d' ' -f1") == digest
    second = started(api, app_name, image, forked["id"])
    assert run(api, app_name, second, "tail -c 8 /data/blob") == "changed\n"
    assert df_kib(api, app_name, second) > df_kib(api, app_name, first)  # grown to its size_gb


def test_mount_conflicts_fail_at_create_and_reserve_nothing(api: httpx.Client, app_name: str, image: str) -> None:
    volume = new_volume(api, app_name)
    owner = create_machine(
        api, app_name, {"image": image, "mounts": [{"volume": volume["id"], "path": "/d"}]}, skip_launch=True
    )
    url = f"/v1/apps/{app_name}/machines"

    def attempt(ref: str, region: str = "iad") -> httpx.Response:
        config = {"image": image, "mounts": [{"volume": ref, "path": "/data"}]}
        return api.post(url, json={"config": config, "region": region, "skip_launch": True})

    taken = attempt(volume["id"])
    assert taken.status_code == 412 and f"already attached to machine {owner['id']}" in taken.json()["error"]
    assert attempt("data").status_code == 412  # by name: every volume so named is attached
    far = new_volume(api, app_name, name="far", region="ams")
    mismatch = attempt(far["id"])
    assert mismatch.status_code == 400 and "region" in mismatch.json()["error"]
    other_app = f"test-{uuid.uuid4().hex[:10]}"
    assert api.post("/v1/apps", json={"app_name": other_app, "org_slug": "personal"}).status_code == 201
    try:
        foreign = new_volume(api, other_app)
        missing = attempt(foreign["id"])
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
    finally:
        api.delete(f"/v1/apps/{other_app}")
    raw = new_volume(api, app_name, name="raw", fstype="raw")
    unmountable = attempt(raw["id"])  # reserved, then the host refuses to mount it: the reservation is undone
    assert unmountable.status_code == 412 and "raw" in unmountable.json()["error"]
    for vol in (volume, far, raw):
        expected = owner["id"] if vol is volume else None
        assert get_volume(api, app_name, vol["id"])["attached_machine_id"] == expected
    assert [m["id"] for m in api.get(url).json()] == [owner["id"]]


def events_of(api: httpx.Client, app: str, mid: str, kind: str) -> list[dict[str, Any]]:
    events = api.get(f"/v1/apps/{app}/machines/{mid}/events", params={"limit": 50}).json()
    return [e for e in events if e["type"] == kind]


def wait_for_event(api: httpx.Client, app: str, mid: str, kind: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events_of(api, app, mid, kind)
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {kind} event on machine {mid} within {timeout} s")
