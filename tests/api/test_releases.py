"""Releases, as flyctl makes and reads them through its UIEX API and GraphQL, and as other clients' deploys and
secret changes make them."""

from __future__ import annotations

import uuid

import httpx

from tests.api.helpers import create_machine
from tests.support.server import Server

CURRENT = "query ($appName: String!) { app(name: $appName) { version currentRelease { version status inProgress } } }"
SET_SECRETS = "mutation ($input: SetSecretsInput!) { setSecrets(input: $input) { release { version reason } } }"


def _gql(api: httpx.Client, query: str, **variables: object) -> dict[str, object]:
    body = api.post("/graphql", json={"query": query, "variables": variables}).json()
    assert "errors" not in body, body
    data: dict[str, object] = body["data"]
    return data


def test_flyctl_release_lifecycle(api: httpx.Client, app_name: str, image: str) -> None:
    assert api.get(f"/api/v1/apps/{app_name}/releases/current").status_code == 404  # flyctl: no release yet
    # uiex.CreateReleaseRequest, as `fly deploy` sends it
    created = api.post(
        "/api/v1/releases",
        json={
            "app_name": app_name,
            "build_id": 0,
            "definition": {"app": app_name},
            "image": image,
            "strategy": "ROLLING",
        },
    )
    assert created.status_code == 201, created.text
    release = created.json()["release"]
    assert release["version"] == 1 and release["status"] == "pending" and release["in_progress"]
    assert release["strategy"] == "ROLLING" and release["image_ref"] == image

    # machines tagged with the release are part of it, not new releases
    metadata = {"fly_release_id": release["id"], "fly_release_version": "1"}
    create_machine(api, app_name, {"image": image, "metadata": metadata}, skip_launch=True)
    done = api.patch(f"/api/v1/releases/{release['id']}", json={"status": "complete", "metadata": {"ok": True}})
    assert done.status_code == 200 and done.json()["status"] == "complete" and done.json()["stable"]
    listed = api.get(f"/api/v1/apps/{app_name}/releases", params={"limit": 10}).json()["releases"]
    assert [r["version"] for r in listed] == [1]
    assert api.get(f"/api/v1/apps/{app_name}/releases/current").json()["id"] == release["id"]
    assert _gql(api, CURRENT, appName=app_name)["app"] == {
        "version": 1,
        "currentRelease": {"version": 1, "status": "complete", "inProgress": False},
    }


def test_untagged_deploys_and_secret_changes_are_releases(
    server: Server, api: httpx.Client, app_name: str, image: str
) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    create_machine(api, app_name, {"image": image}, skip_launch=True)  # the same image: no new release
    server.push_image("busybox", "next")
    other = server.image("busybox", "next")
    update = api.post(f"/v1/apps/{app_name}/machines/{machine['id']}", json={"config": {"image": other}})
    assert update.status_code == 200, update.text
    assert api.post(f"/v1/apps/{app_name}/secrets", json={"values": {"A": "1"}}).status_code == 200
    releases = api.get(f"/api/v1/apps/{app_name}/releases").json()["releases"]
    assert [(r["version"], r["reason"], r["image_ref"]) for r in releases] == [
        (3, "change secrets", other),  # a secrets change keeps the image
        (2, "deploy", other),
        (1, "deploy", image),
    ]
    answer = _gql(api, SET_SECRETS, input={"appId": app_name, "secrets": [{"key": "B", "value": "2"}]})
    assert answer["setSecrets"] == {"release": {"version": releases[0]["version"] + 1, "reason": "change secrets"}}
    unprocessed = "query ($a: String!) { app(name: $a) { releasesUnprocessed(first: 2) { nodes { version } } } }"
    nodes = _gql(api, unprocessed, a=app_name)["app"]["releasesUnprocessed"]["nodes"]  # type: ignore[index]
    assert [n["version"] for n in nodes] == [releases[0]["version"] + 1, releases[0]["version"]]


def test_releases_and_organisations_are_the_callers_own(server: Server, api: httpx.Client, app_name: str) -> None:
    org = api.get("/api/v1/organizations/personal").json()
    assert org["slug"] == "personal" and org["billing_status"] == "CURRENT" and org["personal"]
    assert api.get("/api/v1/organizations", params={"admin": "true"}).json()["organizations"][0]["slug"] == "personal"
    assert api.get("/api/v1/organizations/not-mine").status_code == 404
    release = api.post("/api/v1/releases", json={"app_name": app_name, "image": "x"}).json()["release"]
    other_org = f"org-{uuid.uuid4().hex[:6]}"
    server.cli("orgs", "create", other_org)
    with server.client(server.cli("tokens", "create", "--org", other_org).strip()) as other:
        assert other.patch(f"/api/v1/releases/{release['id']}", json={"status": "failed"}).status_code == 404
        assert other.get(f"/api/v1/apps/{app_name}/releases").status_code == 404
    assert api.patch(f"/api/v1/releases/{release['id']}", json={"status": 7}).status_code == 400
    assert api.post("/api/v1/releases", json={"app_name": "absent-app", "image": "x"}).status_code == 404
