"""flyctl's build tracking (internal/uiex/builders.go) and its lease release after `machine destroy`
(internal/machine/lease.go), with the bodies flyctl ad0172f sends, against a real `aerodrome serve`."""

from __future__ import annotations

import httpx

from tests.api.helpers import create_machine


def test_a_build_is_created_then_finished(api: httpx.Client, app_name: str) -> None:
    created = api.post(
        "/api/v1/builds",
        json={"app_name": app_name, "builder_type": "local", "strategies_available": ["imageRef"]},
    )
    assert created.status_code == 200, created.text
    build = created.json()
    assert build["status"] == "started" and isinstance(build["id"], int)
    finish = {
        "build_id": build["id"],
        "app_name": app_name,
        "machine_id": "",
        "status": "completed",
        "strategies_attempted": [{"error": "", "note": "", "result": "success", "strategy": "imageRef"}],
        "builder_meta": {"builder_type": "local", "buildkit_enabled": False, "docker_version": "", "platform": "",
                         "remote_app_name": "", "remote_machine_id": ""},
        "final_image": {"id": "sha256:00", "size_bytes": 0, "tag": "registry/app:latest"},
        "timings": {"build_and_push_ms": 0, "build_ms": 0, "builder_init_ms": 0, "context_build_ms": 0,
                    "image_build_ms": 0, "push_ms": 0},
        "logs": "",
    }  # fmt: skip
    finished = api.post("/api/v1/builds/finish", json=finish)
    assert finished.status_code == 200 and finished.json()["id"] == build["id"]
    assert finished.json()["status"] == "completed" and finished.json()["wallclock_time_ms"] >= 0

    unknown = api.post("/api/v1/builds/finish", json={**finish, "build_id": build["id"] + 10_000})
    assert unknown.status_code == 404 and unknown.json() == {"error": f"build {build['id'] + 10_000} not found"}
    bad = api.post("/api/v1/builds/finish", json={**finish, "status": "exploded"})
    assert bad.status_code == 400 and "invalid status" in bad.json()["error"]
    missing = api.post("/api/v1/builds", json={"app_name": "no-such-app", "builder_type": "local"})
    assert missing.status_code == 404


def test_releasing_a_destroyed_machines_lease_finds_no_lease(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    url = f"/v1/apps/{app_name}/machines/{machine['id']}"
    nonce = api.post(f"{url}/lease", json={"ttl": 120}).json()["data"]["nonce"]
    headers = {"fly-machine-lease-nonce": nonce}
    assert api.delete(url, params={"force": "true"}, headers=headers).status_code == 200
    released = api.delete(f"{url}/lease", headers=headers)
    assert released.status_code == 404 and released.json() == {"error": "lease not found"}
