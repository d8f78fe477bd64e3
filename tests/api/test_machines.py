from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.api.helpers import create_machine, http_inside, machine_exec, wait_for


def test_create_validates_config(api: httpx.Client, app_name: str, image: str) -> None:
    url = f"/v1/apps/{app_name}/machines"
    cases = [
        ({}, "image is required"),
        ({"image": image, "guest": {"memory_mb": 300}}, "multiple of 256"),
        ({"image": image, "guest": {"cpu_kind": "gpu"}}, "cpu_kind"),
        ({"image": image, "restart": {"policy": "sometimes"}}, "restart policy"),
        ({"image": image, "services": [{"internal_port": 70000}]}, "internal_port"),
        ({"image": image, "mounts": [{"volume": "x", "path": "rel"}]}, "absolute path"),
        ({"image": image, "files": [{"guest_path": "/../etc/x", "raw_value": ""}]}, "escapes"),
    ]
    for config, message in cases:
        response = api.post(url, json={"config": config})
        assert response.status_code == 400, (config, response.text)
        assert message in response.json()["error"]
    assert api.post(url, json={"region": "nowhere", "config": {"image": image}}).status_code == 400


def test_unknown_image_is_named_in_the_error(api: httpx.Client, app_name: str, server_registry: str) -> None:
    response = api.post(f"/v1/apps/{app_name}/machines", json={"config": {"image": f"{server_registry}/nope:v9"}})
    assert response.status_code == 404
    assert "nope:v9" in response.json()["error"]


def test_lifecycle_start_stop_suspend_resume_destroy(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    mid = machine["id"]
    assert machine["state"] == "created" and len(mid) == 14 and len(machine["instance_id"]) == 26
    assert machine["image_ref"]["repository"].endswith("busybox") and machine["image_ref"]["digest"]
    base = f"/v1/apps/{app_name}/machines/{mid}"

    started = api.post(f"{base}/start")
    assert started.status_code == 200 and started.json()["previous_state"] == "created"
    wait_for(api, app_name, mid, "started")
    assert "hello from aerodrome" in http_inside(api, app_name, mid)
    assert api.post(f"{base}/start").status_code == 412  # already started

    assert api.post(f"{base}/suspend").status_code == 200
    wait_for(api, app_name, mid, "suspended")
    resumed = api.post(f"{base}/start")
    assert resumed.json()["previous_state"] == "suspended"
    wait_for(api, app_name, mid, "started")

    assert api.post(f"{base}/stop", json={"signal": "SIGTERM", "timeout": "5s"}).status_code == 200
    wait_for(api, app_name, mid, "stopped")
    types = [e["type"] for e in api.get(f"{base}/events").json()]
    assert types[0] == "stop" and types[-1] == "launch" and "suspend" in types

    restarted = api.post(f"{base}/start")
    assert restarted.status_code == 200, restarted.text
    wait_for(api, app_name, mid, "started")
    refused = api.delete(base)
    assert refused.status_code == 412 and "force" in refused.json()["error"]
    assert api.delete(base, params={"force": "true"}).status_code == 200
    assert api.get(base).json()["state"] == "destroyed"
    assert mid not in [m["id"] for m in api.get(f"/v1/apps/{app_name}/machines").json()]
    assert mid in [m["id"] for m in api.get(f"/v1/apps/{app_name}/machines", params={"include_deleted": "1"}).json()]


def test_create_launches_and_list_filters(api: httpx.Client, app_name: str, image: str) -> None:
    running = create_machine(api, app_name, {"image": image, "metadata": {"role": "web"}})
    resting = create_machine(api, app_name, {"image": image}, skip_launch=True, name="resting-one")
    wait_for(api, app_name, running["id"], "started")
    url = f"/v1/apps/{app_name}/machines"
    assert [m["id"] for m in api.get(url, params={"state": "started"}).json()] == [running["id"]]
    assert [m["name"] for m in api.get(url, params={"state": "created"}).json()] == ["resting-one"]
    assert [m["id"] for m in api.get(url, params={"metadata.role": "web"}).json()] == [running["id"]]
    summary = api.get(url, params={"summary": "true"}).json()
    assert {m["id"] for m in summary} == {running["id"], resting["id"]} and "config" not in summary[0]
    org = api.get("/v1/orgs/personal/machines", params={"limit": 1}).json()
    assert len(org["machines"]) == 1 and org["next_cursor"]


def test_update_makes_a_new_version(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "env": {"COLOR": "red"}})
    mid, first = machine["id"], machine["instance_id"]
    wait_for(api, app_name, mid, "started")
    base = f"/v1/apps/{app_name}/machines/{mid}"
    stale = api.post(base, json={"config": {"image": image}, "current_version": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
    assert stale.status_code == 412
    updated = api.post(base, json={"config": {"image": image, "env": {"COLOR": "blue"}}, "current_version": first})
    assert updated.status_code == 200, updated.text
    second = updated.json()["instance_id"]
    assert second != first
    wait_for(api, app_name, mid, "started")
    assert machine_exec(api, app_name, mid, "sh", "-c", "echo $COLOR")["stdout"].strip() == "blue"
    assert [v["version"] for v in api.get(f"{base}/versions").json()] == [second, first]


def test_exit_codes_and_restart_policy_no(api: httpx.Client, app_name: str, image: str) -> None:
    config = {"image": image, "init": {"exec": ["/bin/sh", "-c", "exit 3"]}, "restart": {"policy": "no"}}
    machine = create_machine(api, app_name, config)
    wait_for(api, app_name, machine["id"], "stopped")
    events = api.get(f"/v1/apps/{app_name}/machines/{machine['id']}/events").json()
    exits = [e for e in events if e["type"] == "exit"]
    assert exits and exits[0]["request"]["exit_event"]["exit_code"] == 3
    assert exits[0]["source"] == "flyd"


def test_on_failure_restarts_until_max_retries(api: httpx.Client, app_name: str, image: str) -> None:
    config = {
        "image": image,
        "init": {"exec": ["/bin/sh", "-c", "exit 1"]},
        "restart": {"policy": "on-failure", "max_retries": 2},
    }
    machine = create_machine(api, app_name, config)
    wait_for(api, app_name, machine["id"], "stopped", timeout=30)
    events = api.get(f"/v1/apps/{app_name}/machines/{machine['id']}/events", params={"limit": 50}).json()
    exits = [e for e in events if e["type"] == "exit"]
    assert len(exits) == 3  # the first run and two restarts
    assert [e["request"]["exit_event"]["restarting"] for e in exits] == [False, True, True]


def test_wait_times_out_with_408(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    url = f"/v1/apps/{app_name}/machines/{machine['id']}/wait"
    response = api.get(url, params={"state": "started", "timeout": 1})
    assert response.status_code == 408 and "error" in response.json()
    assert api.get(url, params={"state": "bogus"}).status_code == 400
    assert api.get(url, params={"state": "settled", "timeout": 1}).json()["state"] == "created"


def test_signal_and_exec_and_ps(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(
        api, app_name, {"image": image, "files": [{"guest_path": "/etc/greeting", "raw_value": "aGVsbG8="}]}
    )
    mid = machine["id"]
    wait_for(api, app_name, mid, "started")
    assert machine_exec(api, app_name, mid, "cat", "/etc/greeting")["stdout"] == "hello"
    assert machine_exec(api, app_name, mid, "hostname")["stdout"].strip() == mid
    failing = machine_exec(api, app_name, mid, "sh", "-c", "echo oops >&2; exit 7")
    assert failing["exit_code"] == 7 and failing["stderr"].strip() == "oops"
    processes = api.get(f"/v1/apps/{app_name}/machines/{mid}/ps").json()
    assert any("httpd" in p["command"] for p in processes)
    assert api.post(f"/v1/apps/{app_name}/machines/{mid}/signal", json={"signal": "SIGKILL"}).status_code == 200
    killed = next_exit(api, app_name, mid, seen=0)
    assert (killed["exit_code"], killed["signal"], killed["signal_name"]) == (137, 9, "SIGKILL")
    assert (killed["requested_stop"], killed["restarting"]) == (False, True)  # on-failure: it comes back
    wait_for(api, app_name, mid, "started")
    assert api.post(f"/v1/apps/{app_name}/machines/{mid}/signal", json={"signal": 9}).status_code == 200  # by number
    assert next_exit(api, app_name, mid, seen=1)["signal_name"] == "SIGKILL"
    refused = api.post(f"/v1/apps/{app_name}/machines/{mid}/signal", json={"signal": "SIGNOPE"})
    assert (refused.status_code, refused.json()) == (400, {"error": "invalid signal: 'SIGNOPE'"})


def next_exit(api: httpx.Client, app: str, machine_id: str, *, seen: int, timeout: float = 30) -> dict[str, object]:
    """The exit event after the `seen` ones the machine had, waited for with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        events = api.get(f"/v1/apps/{app}/machines/{machine_id}/events", params={"limit": 50}).json()
        exits = [e["request"]["exit_event"] for e in reversed(events) if e["type"] == "exit"]
        if len(exits) > seen:
            event: dict[str, object] = exits[seen]
            return event
        assert time.monotonic() < deadline, f"no exit after {seen} in {timeout} s"
        time.sleep(0.05)


def test_always_restarts_even_after_a_clean_exit(api: httpx.Client, app_name: str, image: str) -> None:
    config = {"image": image, "init": {"exec": ["/bin/sh", "-c", "sleep 0.2; exit 0"]}, "restart": {"policy": "always"}}
    machine = create_machine(api, app_name, config)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    deadline = time.monotonic() + 60  # a guard against hanging: each run lasts 0.2 s, then a backoff
    while True:
        exits = [e for e in api.get(f"{base}/events", params={"limit": 50}).json() if e["type"] == "exit"]
        if len(exits) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(exits) >= 2 and all(e["request"]["exit_event"]["restarting"] for e in exits)
    assert all(e["request"]["exit_event"]["exit_code"] == 0 for e in exits)
    assert api.delete(base, params={"force": "true"}).status_code == 200


def test_memory_limit_changes_in_place(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "guest": {"memory_mb": 256}})
    mid = machine["id"]
    wait_for(api, app_name, mid, "started")
    base = f"/v1/apps/{app_name}/machines/{mid}"
    before = api.get(f"{base}/memory").json()
    assert before["limit_mb"] == 256 and 0 < before["available_mb"] <= 256
    assert api.put(f"{base}/memory", json={"limit_mb": 300}).status_code == 400
    changed = api.put(f"{base}/memory", json={"limit_mb": 512})
    assert changed.status_code == 200 and changed.json()["limit_mb"] == 512
    current = api.get(base).json()
    assert current["config"]["guest"]["memory_mb"] == 512 and current["instance_id"] == machine["instance_id"]
    cgroup = Path(f"/sys/fs/cgroup/memory/aerodrome/{mid}/memory.limit_in_bytes")
    assert int(cgroup.read_text()) == 512 * 1024 * 1024  # applied live, not only recorded
    # the new limit holds across a stop and start
    api.post(f"{base}/stop")
    wait_for(api, app_name, mid, "stopped")
    api.post(f"{base}/start")
    wait_for(api, app_name, mid, "started")
    assert api.get(f"{base}/memory").json()["limit_mb"] == 512


def test_memory_reclaim_gives_back_page_cache(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "guest": {"memory_mb": 512}})
    mid = machine["id"]
    wait_for(api, app_name, mid, "started")
    base = f"/v1/apps/{app_name}/machines/{mid}"
    # 64 MB written through the page cache, charged to the machine
    machine_exec(api, app_name, mid, "sh", "-c", "dd if=/dev/zero of=/tmp/cache bs=1M count=64 2>/dev/null")
    before = api.get(f"{base}/memory").json()["available_mb"]
    reclaimed = api.post(f"{base}/memory/reclaim", json={"amount_mb": 48})
    assert reclaimed.status_code == 200 and reclaimed.json()["actual_mb"] > 0
    assert api.get(f"{base}/memory").json()["available_mb"] > before
    assert machine_exec(api, app_name, mid, "sh", "-c", "wc -c < /tmp/cache")["stdout"].strip() == str(64 * 2**20)
    assert api.post(f"{base}/memory/reclaim", json={"amount_mb": 0}).status_code == 400
