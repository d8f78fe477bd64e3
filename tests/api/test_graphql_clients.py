"""The GraphQL documents fly-go and flyctl send, verbatim (tests/api/fixtures/graphql/), each validated against
the schema the server serves (the standard introspection query nests deeper than the server's depth limit, so
the schema object itself) and executed against a real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLSchema, parse, validate

from aerodrome.api.graphql import schema
from tests.api.helpers import create_machine, delete_app
from tests.support.server import Server

FIXTURES = Path(__file__).parent / "fixtures" / "graphql"
DOCUMENTS = sorted(p.stem for p in FIXTURES.glob("*.graphql"))
# Fly's static egress addresses have no meaning here: refused with a reason, never a validation error
REFUSED = {
    "flygo_allocate_egress_ip_address": "not available",
    "flygo_allocate_app_scoped_egress_ip_address": "not available",
    "flygo_release_egress_ip_address": "not found",
    "flygo_release_app_scoped_egress_ip_address": "not found",
    # Fly tracks versions of its own images only: `fly status` reads this answer as no update to offer
    "flygo_get_latest_image_details": "Unknown repository",
}


@dataclass
class World:
    server: Server
    app: str
    org_id: str
    machine_id: str
    volume_id: str
    doomed_app: str
    released_ip: str
    host: str
    doomed_host: str
    token_id: str
    logout_token: str
    release_id: str


def _post(server: Server, query: str, variables: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token or server.token}"}
    response = httpx.post(
        f"{server.api_url}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:8]
    app, doomed = f"gqlc-{suffix}", f"gqlc-doomed-{suffix}"
    with server.client() as api:
        for name in (app, doomed):
            assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
        machine = create_machine(api, app, {"image": server.image("busybox")}, skip_launch=True)
        volume = api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
        api.post(f"/v1/apps/{app}/secrets/GREETING", json={"value": "hi"})
        host, doomed_host = f"www.{suffix}.example.com", f"old.{suffix}.example.com"
        for hostname in (host, doomed_host):
            assert api.post(f"/v1/apps/{app}/certificates/acme", json={"hostname": hostname}).status_code == 201
        ip = api.post(f"/v1/apps/{app}/ip_assignments", json={"type": "v6"}).json()["ip"]
        org_id = _post(server, '{ organization(slug: "personal") { id } }', {})["data"]["organization"]["id"]
        server.cli("tokens", "create", "--name", f"revoke-{suffix}")
        server.cli("tokens", "create", "--name", f"logout-{suffix}")
        logout_token = server.cli("tokens", "create", "--name", f"logout2-{suffix}").strip()
        tokens = {t["name"]: t["id"] for t in api.get("/v1/tokens").json()["tokens"]}
        pending = api.post("/api/v1/releases", json={"app_name": app, "image": server.image("busybox")})
        release_id = pending.json()["release"]["id"]
        yield World(
            server, app, org_id, machine["id"], volume["id"], doomed, ip, host, doomed_host,
            tokens[f"revoke-{suffix}"], logout_token, release_id,
        )  # fmt: skip
        delete_app(api, app)


def _variables(world: World, name: str) -> dict[str, Any]:
    app = world.app
    new_app = f"gqlc-new-{uuid.uuid4().hex[:8]}"
    by_document: dict[str, dict[str, Any]] = {
        "flyctl_create_app": {"input": {"organizationId": world.org_id, "name": new_app}},
        "flygo_create_app": {"input": {"organizationId": world.org_id, "name": new_app, "machines": True}},
        "flygo_delete_app": {"appId": world.doomed_app},
        "flyctl_get_apps_by_role": {"role": "", "organizationId": world.org_id},
        "flygo_get_apps_page": {"org": world.org_id, "role": None, "after": None},
        "flyctl_set_secrets": {"input": {"appId": app, "secrets": [{"key": "FROM_FLYCTL", "value": "1"}]}},
        "flygo_set_secrets": {"input": {"appId": app, "secrets": [{"key": "FROM_FLYGO", "value": "1"}]}},
        "flygo_unset_secrets": {"input": {"appId": app, "keys": ["FROM_FLYGO"]}},
        "flyctl_create_limited_access_token": {
            "name": "deploy",
            "organizationId": world.org_id,
            "profile": "deploy_organization",  # `fly tokens create org`
            "profileParams": None,
            "expiry": "",
        },
        "flygo_add_certificate": {"appId": app, "hostname": f"new.{uuid.uuid4().hex[:8]}.example.com"},
        "flygo_check_app_certificate": {"input": {"appId": app, "hostname": world.host}},
        "flygo_delete_certificate": {"appId": app, "hostname": world.doomed_host},
        "flygo_allocate_ip_address": {"input": {"appId": app, "type": "v6", "region": ""}},
        "flygo_allocate_shared_ip_address": {"input": {"appId": app, "type": "shared_v4"}},
        "flygo_release_ip_address": {"input": {"appId": app, "ip": world.released_ip}},
        "flygo_allocate_egress_ip_address": {"input": {"appId": app, "machineId": world.machine_id}},
        "flygo_allocate_app_scoped_egress_ip_address": {"input": {"appId": app, "region": "iad"}},
        "flygo_release_egress_ip_address": {"input": {"appId": app, "machineId": world.machine_id, "ip": "1.2.3.4"}},
        "flygo_release_app_scoped_egress_ip_address": {"input": {"appId": app, "ip": "1.2.3.4"}},
        "flygo_revoke_limited_access_token": {"input": {"id": world.token_id}},
        "flygo_get_machine": {"machineId": world.machine_id},
        "flygo_create_release": {
            "input": {
                "appId": app,
                "definition": {"app": app},
                "image": world.server.image("busybox"),
                "platformVersion": "machines",
                "strategy": "ROLLING",
            }
        },
        "flygo_update_release": {"input": {"releaseId": world.release_id, "status": "complete"}},
        "flygo_get_app_name_from_volume": {"id": world.volume_id},
        "flygo_get_app_name_state_from_volume": {"id": world.volume_id},
        "flygo_get_snapshots_from_volume": {"id": world.volume_id},
        "flygo_get_organizations": {"admin": True},
        "flygo_create_organization": {"input": {"name": f"gqlc org {uuid.uuid4().hex[:8]}"}},
        "flygo_get_app_releases_machines": {"appName": app, "limit": 25},
        "flygo_resolve_image_for_app": {"appName": app, "imageRef": world.server.image("busybox")},
        "flygo_get_latest_image_details": {"image": "library/busybox:latest", "flyVersion": None},
        "flyctl_list_organization_add_ons": {"orgSlug": "personal", "addOnType": "tigris"},
    }
    if name in by_document:
        return by_document[name]
    return {"appName": app, "name": app, "slug": "personal"}  # unused variables are ignored


def _check_answer(world: World, name: str, data: dict[str, Any]) -> None:
    """Each document's answer says what the server holds."""
    app = data.get("app") or data.get("appcompact") or data.get("appbasic") or {}
    if name in ("flygo_get_app", "flygo_get_app_compact", "flygo_get_app_basic", "flyctl_get_app"):
        assert app["name"] == world.app and app["organization"]["slug"] == "personal"
    if name == "flygo_get_app":
        assert app["machines"]["nodes"][0]["id"] == world.machine_id and app["status"] == "deployed"
    if name == "flyctl_get_app":
        assert "GREETING" in [s["name"] for s in app["secrets"]]
    if name == "flygo_get_app_secrets":
        assert "GREETING" in [s["name"] for s in app["secrets"]]
    if name == "flygo_get_apps_page":
        assert world.app in [a["name"] for a in data["apps"]["nodes"]]
    if name == "flygo_get_app_certificates":
        assert world.host in [c["hostname"] for c in data["appcertscompact"]["certificates"]["nodes"]]
    if name == "flygo_get_ip_addresses":
        assert app["ipAddresses"]["nodes"] is not None
    if name == "flygo_get_machine":
        assert data["gqlmachine"]["app"]["name"] == world.app
    if name.startswith("flygo_get_app_name") and "volume" in name:
        assert data["volume"]["app"]["name"] == world.app
    if name == "flygo_app_name_available":
        assert data["appNameAvailable"] is False
    if name == "flygo_get_organizations":
        assert [o["slug"] for o in data["organizations"]["nodes"]] == ["personal"]
        assert isinstance(data["organizations"]["nodes"][0]["internalNumericId"], str)  # BigInt: fly-go's Go string
    if name == "flygo_resolve_image_for_app":  # pulled as the app's machines pull it
        image = app["image"]
        assert image["digest"].startswith("sha256:") and image["id"] == image["digest"]
        assert image["ref"] == world.server.image("busybox") and int(image["compressedSize"]) > 0
    if name == "flyctl_config_current_release":  # no fly.toml is kept: flyctl reads the config from the machines
        assert app["currentReleaseUnprocessed"]["configDefinition"] is None
    if name == "flyctl_list_organization_add_ons":
        assert data["organization"]["addOns"]["nodes"] == []
    if name == "flygo_create_organization":
        created = data["createOrganization"]["organization"]
        assert created["name"].startswith("gqlc org ") and created["slug"] == created["name"].replace(" ", "-")
    if name == "flygo_platform_regions":
        assert "iad" in [r["code"] for r in data["platform"]["regions"]]
    if name == "flyctl_create_limited_access_token":
        header = data["createLimitedAccessToken"]["limitedAccessToken"]["tokenHeader"]
        assert _post(world.server, "{ viewer { ... on Macaroon { email } } }", {}, header.split()[1]).get("data")
    if name == "flygo_get_app_releases_machines":  # the world's machine create, then its secret
        assert [r["reason"] for r in app["releases"]["nodes"]][-2:] == ["change secrets", "deploy"]
    if name == "flygo_get_app_current_release_machines":
        assert app["currentRelease"]["status"] == "complete" and app["currentRelease"]["version"] >= 2
    if name in ("flyctl_set_secrets", "flygo_set_secrets"):
        assert data["setSecrets"]["release"]["reason"] == "change secrets"
    if name == "flygo_create_release":
        assert data["createRelease"]["release"]["version"] >= 1
    if name == "flygo_update_release":
        assert data["updateRelease"]["release"]["id"] == world.release_id
    if name == "flygo_check_app_certificate":
        assert data["checkCertificate"]["certificate"]["hostname"] == world.host


@pytest.fixture(scope="module")
def served_schema() -> GraphQLSchema:
    return schema()


def test_there_are_59_documents() -> None:
    # 53 for apps, organisations, IPs, certificates, secrets, releases, regions, volumes, tokens and machines,
    # fly-go's createRelease, updateRelease and createOrganization, and three the flyctl binary sent: its config
    # from the current release (secrets set, deploy), the latest image (status) and the organisation's add-ons
    # (apps destroy)
    assert len(DOCUMENTS) == 59


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_validates_and_executes(world: World, served_schema: GraphQLSchema, name: str) -> None:
    text = (FIXTURES / f"{name}.graphql").read_text()
    assert validate(served_schema, parse(text)) == []
    token = world.logout_token if name == "flyctl_log_out" else None
    body = _post(world.server, text, _variables(world, name), token)
    if name in REFUSED:
        assert body["errors"] and REFUSED[name] in body["errors"][0]["message"], body
        assert all(e["extensions"]["code"] != "GRAPHQL_VALIDATION_FAILED" for e in body["errors"])
        return
    assert "errors" not in body, body
    _check_answer(world, name, body["data"])
    if name == "flyctl_log_out":  # the token is revoked, as Fly ends the session
        assert _post(world.server, "{ viewer { ... on Macaroon { email } } }", {}, token)["errors"]
