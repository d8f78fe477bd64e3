"""The REST requests fly-go (flaps) and flyctl send, byte for byte, and the answers they read."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server

# exits 42 on SIGINT, so a graceful stop is told from a kill (137)
# the mark (on the tmpfs a start makes anew) says the trap is set: a SIGINT before it would be ignored by the
# machine's PID 1 and end in a kill
TRAP_INT = ["/bin/sh", "-c", "trap 'exit 42' INT; touch /dev/shm/trapped; while true; do sleep 0.1; done"]


def _wait_trapped(api: httpx.Client, app: str, machine_id: str) -> None:
    script = "for i in $(seq 300); do test -e /dev/shm/trapped && exit 0; sleep 0.05; done; exit 1"
    assert machine_exec(api, app, machine_id, "sh", "-c", script)["exit_code"] == 0, "the trap was never set"


def _exits(api: httpx.Client, app: str, machine_id: str) -> list[dict[str, Any]]:
    events = api.get(f"/v1/apps/{app}/machines/{machine_id}/events").json()
    return [e["request"]["exit_event"] for e in events if (e.get("request") or {}).get("exit_event")]


def test_fly_go_stop_body_means_the_default_grace(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "init": {"exec": TRAP_INT}, "restart": {"policy": "no"}})
    wait_for(api, app_name, machine["id"], "started")
    _wait_trapped(api, app_name, machine["id"])
    # flaps.Stop always marshals its Duration, so an unset timeout is "0s"
    stopped = api.post(
        f"/v1/apps/{app_name}/machines/{machine['id']}/stop", json={"id": machine["id"], "timeout": "0s"}
    )
    assert stopped.status_code == 200, stopped.text
    wait_for(api, app_name, machine["id"], "stopped")
    exit_event = _exits(api, app_name, machine["id"])[0]
    assert exit_event["exit_code"] == 42, exit_event  # SIGINT, trapped: not a kill


def test_restart_force_stop_kills(api: httpx.Client, app_name: str, image: str) -> None:
    volume = api.post(f"/v1/apps/{app_name}/volumes", json={"name": "marks", "region": "iad", "size_gb": 1}).json()
    # a graceful stop leaves a mark on the volume; a kill leaves none
    trap = "trap 'echo graceful >> /data/marks; exit 0' INT; touch /dev/shm/trapped; while true; do sleep 0.1; done"
    config = {
        "image": image,
        "init": {"exec": ["/bin/sh", "-c", trap]},
        "mounts": [{"volume": volume["id"], "path": "/data"}],
    }
    machine = create_machine(api, app_name, config)
    path = f"/v1/apps/{app_name}/machines/{machine['id']}"
    for params in ({"timeout": "10s"}, {"force_stop": "true", "timeout": "10s"}):
        wait_for(api, app_name, machine["id"], "started")
        _wait_trapped(api, app_name, machine["id"])
        assert api.post(f"{path}/restart", params=params).status_code == 200
    wait_for(api, app_name, machine["id"], "started")
    assert machine_exec(api, app_name, machine["id"], "cat", "/data/marks")["stdout"].split() == ["graceful"]


def test_new_app_is_pending_until_its_first_machine(api: httpx.Client, image: str) -> None:
    name = f"fly-{uuid.uuid4().hex[:8]}"
    # flaps.CreateApp: POST /apps?wait=true with every field of CreateAppRequest
    created = api.post(
        "/v1/apps?wait=true", json={"name": name, "org_slug": "personal", "network": "", "app_role_id": ""}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "pending" and body["app_role"] == ""
    assert body["cname_target"] == f"{name}.localhost"
    create_machine(api, name, {"image": image})
    assert api.get(f"/v1/apps/{name}").json()["status"] == "deployed"
    api.delete(f"/v1/apps/{name}")


def test_app_role_filter_matches_no_app(api: httpx.Client, app_name: str) -> None:
    # flyctl's remote builder lookup: ListApps{OrgSlug, AppRole: "remote-docker-builder"} takes apps[0]
    listed = api.get("/v1/apps", params={"org_slug": "personal", "app_role": "remote-docker-builder"}).json()
    assert listed == {"total_apps": 0, "apps": []}
    everything = api.get("/v1/apps", params={"org_slug": "personal"}).json()
    assert app_name in [a["name"] for a in everything["apps"]]


def test_another_organisations_app_name_is_forbidden(server: Server, app_name: str) -> None:
    org = f"org-{uuid.uuid4().hex[:6]}"
    server.cli("orgs", "create", org)
    with server.client(server.cli("tokens", "create", "--org", org).strip()) as other:
        taken = other.get(f"/v1/apps/{app_name}")
        assert taken.status_code == 403 and taken.json()["error"]
        assert other.get(f"/v1/apps/free-{uuid.uuid4().hex[:8]}").status_code == 404
        assert other.get(f"/v1/apps/{app_name}/machines").status_code == 404  # everything under it stays absent


def test_fly_go_volume_create_keeps_fly_defaults(api: httpx.Client, app_name: str) -> None:
    # flaps.CreateVolumeRequest: pointer fields left nil are sent as null
    body = {
        "name": "data",
        "region": "iad",
        "size_gb": 1,
        "encrypted": None,
        "require_unique_zone": False,
        "snapshot_id": None,
        "source_volume_id": None,
        "snapshot_retention": None,
        "auto_backup_enabled": None,
        "fstype": None,
        "compute": None,
        "compute_image": "",
    }
    created = api.post(f"/v1/apps/{app_name}/volumes", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["auto_backup_enabled"] is True and created.json()["fstype"] == "ext4"


def test_put_updates_a_machine(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "env": {"A": "1"}}, skip_launch=True)
    put = api.put(f"/v1/apps/{app_name}/machines/{machine['id']}", json={"config": {"image": image, "env": {"A": "2"}}})
    assert put.status_code == 200, put.text
    assert put.json()["config"]["env"] == {"A": "2"} and put.json()["instance_id"] != machine["instance_id"]


def test_include_leases(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    path = f"/v1/apps/{app_name}/machines/{machine['id']}"
    assert api.get(path, params={"include_leases": "true"}).json()["lease"] is None
    lease = api.post(f"{path}/lease", json={"ttl": 60, "description": "deploying"})
    assert lease.status_code == 201, lease.text
    got = api.get(path, params={"include_leases": "true"}).json()["lease"]
    assert got["description"] == "deploying" and got["owner"] and "nonce" not in got
    listed = api.get(f"/v1/apps/{app_name}/machines", params={"include_leases": "true"}).json()
    assert listed[0]["lease"]["description"] == "deploying"
    assert "lease" not in api.get(path).json()


def test_ps_sorted(api: httpx.Client, app_name: str, image: str) -> None:
    config = {"image": image, "init": {"exec": ["/bin/sh", "-c", "sleep 1000 & sleep 1001 & wait"]}}
    machine = create_machine(api, app_name, config)
    wait_for(api, app_name, machine["id"], "started")
    path = f"/v1/apps/{app_name}/machines/{machine['id']}/ps"
    pids: list[int] = []
    deadline = time.monotonic() + 30
    while len(pids) < 3 and time.monotonic() < deadline:  # the shell forks its children after `started`
        pids = [p["pid"] for p in api.get(path, params={"sort_by": "pid", "order": "desc"}).json()]
    assert len(pids) >= 3 and pids == sorted(pids, reverse=True)
    assert api.get(path, params={"sort_by": "nope"}).status_code == 400
    assert api.get(path, params={"sort_by": "rss", "order": "sideways"}).status_code == 400


def test_processes_entry_runs_when_init_has_none(api: httpx.Client, app_name: str, image: str) -> None:
    # flyctl `machine run IMAGE --entrypoint … CMD`: the command goes in processes[0], not init
    process = {
        "entrypoint": ["/bin/sh", "-c"],
        "cmd": ["echo $GREETING > /tmp/out; sleep 1000"],
        "env": {"GREETING": "hi"},
    }
    machine = create_machine(api, app_name, {"image": image, "env": {"GREETING": "no"}, "processes": [process]})
    wait_for(api, app_name, machine["id"], "started")
    assert machine_exec(api, app_name, machine["id"], "cat", "/tmp/out")["stdout"].strip() == "hi"
    two = api.post(f"/v1/apps/{app_name}/machines", json={"config": {"image": image, "processes": [process, process]}})
    assert two.status_code == 400 and "at most one" in two.json()["error"]


def test_request_id_and_openapi_descriptions(api: httpx.Client) -> None:
    response = api.get("/v1/openapi.json")
    first = response.headers["fly-request-id"]
    assert first and api.get("/v1/platform/regions").headers["fly-request-id"] != first
    assert api.get("/v1/apps/nothing-here").headers["fly-request-id"]
    schemas = response.json()["components"]["schemas"]
    assert schemas["Lease"]["properties"]["description"] == {"type": "string"}
    assert "description" in schemas["CreateLeaseRequest"]["properties"]


def test_org_volumes_filter_and_page(api: httpx.Client, app_name: str) -> None:
    made = [
        api.post(f"/v1/apps/{app_name}/volumes", json={"name": f"v{i}", "region": region, "size_gb": 1}).json()["id"]
        for i, region in enumerate(("iad", "iad", "ams"))
    ]
    mine = {v["id"] for v in api.get("/v1/orgs/personal/volumes").json()["volumes"]} & set(made)
    assert mine == set(made)
    in_ams = api.get("/v1/orgs/personal/volumes", params={"region": "ams"}).json()["volumes"]
    assert made[2] in [v["id"] for v in in_ams] and all(v["region"] == "ams" for v in in_ams)
    seen: list[str] = []
    cursor = ""
    while True:
        page = api.get("/v1/orgs/personal/volumes", params={"limit": 1, "cursor": cursor}).json()
        assert len(page["volumes"]) <= 1
        seen += [v["id"] for v in page["volumes"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(made) <= set(seen) and len(seen) == len(set(seen))
    assert api.get("/v1/orgs/personal/volumes", params={"state": "destroyed"}).json()["volumes"] == []


def test_placements(api: httpx.Client) -> None:
    # flaps.GetPlacementsRequest, with its nil pointers as null
    body = {"compute": None, "region": "iad,ams", "count": 3, "volume_name": "", "volume_size_bytes": 0}
    placed = api.post("/v1/platform/placements", json={**body, "weights": None, "org_slug": "personal"})
    assert placed.status_code == 200, placed.text
    assert [(p["region"], p["count"]) for p in placed.json()["regions"]] == [("iad", 2), ("ams", 1)]
    assert api.post("/v1/platform/placements", json={"count": 1}).json()["regions"][0]["region"] == "iad"
    assert api.post("/v1/platform/placements", json={"count": 1, "region": "nowhere"}).status_code == 400
    assert api.post("/v1/platform/placements", json={"count": 1, "org_slug": "not-mine"}).status_code == 404
