from __future__ import annotations

import uuid

import httpx

from tests.api.helpers import create_machine, delete_app, wait_app_gone, wait_for
from tests.support.server import Server


def test_app_create_get_list_delete(api: httpx.Client) -> None:
    name = f"app-{uuid.uuid4().hex[:8]}"
    created = api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == name and body["organization"]["slug"] == "personal"

    got = api.get(f"/v1/apps/{name}").json()
    assert got["name"] == name and got["machine_count"] == 0 and got["volume_count"] == 0
    listed = api.get("/v1/apps", params={"org_slug": "personal"}).json()
    assert name in [a["name"] for a in listed["apps"]] and listed["total_apps"] == len(listed["apps"])

    taken = api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
    assert taken.status_code == 422 and taken.json()["status"] == "name_taken"

    delete_app(api, name)
    missing = api.get(f"/v1/apps/{name}")
    assert missing.status_code == 404 and "error" in missing.json()


def test_delete_answers_at_once_and_takes_the_app_down_in_the_background(server: Server, app_name: str) -> None:
    with server.client() as api:
        image = server.image("busybox")
        machines = [create_machine(api, app_name, {"image": image}) for _ in range(3)]
        for machine in machines:
            wait_for(api, app_name, machine["id"], "started")
        assert api.delete(f"/v1/apps/{app_name}").status_code == 202
        # Everything under the app is gone at once; the app itself shows `destroying` until the last is down.
        assert api.get(f"/v1/apps/{app_name}/machines").status_code == 404
        assert api.get(f"/v1/apps/{app_name}/machines/{machines[0]['id']}").status_code == 404
        shown = api.get(f"/v1/apps/{app_name}")
        assert shown.status_code == 404 or shown.json()["status"] == "destroying"
        assert api.delete(f"/v1/apps/{app_name}").status_code in (202, 404)  # again, while it runs or after
        wait_app_gone(api, app_name)
        listed = api.get("/v1/apps", params={"org_slug": "personal"}).json()["apps"]
        assert app_name not in [a["name"] for a in listed]
        again = api.post("/v1/apps", json={"app_name": app_name, "org_slug": "personal"})
        assert again.status_code == 201  # the name is free once the app is gone


def test_app_names_follow_fly_rules(api: httpx.Client) -> None:
    for bad in ("UPPER", "-dash", "a" * 64, "under_score"):
        response = api.post("/v1/apps", json={"app_name": bad, "org_slug": "personal"})
        assert response.status_code == 422, bad
        assert "invalid app name" in response.json()["error"]
    assert api.post("/v1/apps", json={"org_slug": "personal"}).status_code == 400
    assert api.post("/v1/apps", content=b"{not json").status_code == 400
    assert api.get("/v1/apps").status_code == 400  # org_slug is required


def test_tokens_in_every_header_form(server: Server, app_name: str) -> None:
    for header in (f"Bearer {server.token}", f"FlyV1 {server.token}", f"Bearer FlyV1 {server.token}"):
        response = httpx.get(f"{server.api_url}/v1/apps/{app_name}", headers={"Authorization": header})
        assert response.status_code == 200, header
    assert httpx.get(f"{server.api_url}/v1/apps/{app_name}").status_code == 401
    wrong = httpx.get(f"{server.api_url}/v1/apps/{app_name}", headers={"Authorization": "Bearer fm2_nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]
    current = httpx.get(f"{server.api_url}/v1/tokens/current", headers={"Authorization": f"Bearer {server.token}"})
    assert current.json()["tokens"][0]["org_slug"] == "personal"


def test_another_organisations_app_is_absent(server: Server, app_name: str) -> None:
    server.cli("orgs", "create", "other-org")
    other = server.cli("tokens", "create", "--org", "other-org").strip()
    with server.client(other) as client:
        assert client.get(f"/v1/apps/{app_name}").status_code == 403  # taken: fly-go reads 403 so
        assert client.get(f"/v1/apps/{app_name}/machines").status_code == 404
        assert client.get("/v1/apps", params={"org_slug": "personal"}).status_code == 404


def test_regions_and_openapi(api: httpx.Client) -> None:
    regions = api.get("/v1/platform/regions").json()
    assert "iad" in [r["code"] for r in regions["regions"]] and regions["nearest"] == "iad"
    spec = api.get("/v1/openapi.json").json()
    assert "/apps/{app_name}/machines" in spec["paths"]
    assert "post" in spec["paths"]["/apps/{app_name}/machines/{machine_id}/start"]


def test_unknown_route_is_fly_shaped(api: httpx.Client) -> None:
    response = api.get("/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.json()


def test_org_wide_volume_list(api: httpx.Client, app_name: str) -> None:
    created = api.post(f"/v1/apps/{app_name}/volumes", json={"name": "orgwide", "region": "iad", "size_gb": 1}).json()
    listed = api.get("/v1/orgs/personal/volumes").json()["volumes"]
    assert any(v["id"] == created["id"] and v["app_name"] == app_name for v in listed)
    assert api.get("/v1/orgs/not-mine/volumes").status_code == 404
    assert api.get("/v1/orgs/not-mine/machines").status_code == 404
