"""Deploy tokens (a token that acts on one app only) against a real `aerodrome serve`: made by Fly's REST
`deploy_token` and by flyctl's `CreateLimitedAccessToken` with profile `deploy`, and refused everywhere outside
their app where an organisation token would be accepted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import wait_app_gone
from tests.support.server import Server

FIXTURES = Path(__file__).parent / "fixtures" / "graphql"
CREATE_LIMITED = (FIXTURES / "flyctl_create_limited_access_token.graphql").read_text()


@pytest.fixture
def other_app(api: httpx.Client) -> Iterator[str]:
    name = f"other-{uuid.uuid4().hex[:10]}"
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
    yield name
    api.delete(f"/v1/apps/{name}")
    wait_app_gone(api, name)


def _rest_deploy_token(api: httpx.Client, app: str, expiry: str | None = "24h") -> str:
    reply = api.post(f"/v1/apps/{app}/deploy_token", json={} if expiry is None else {"expiry": expiry})
    assert reply.status_code == 200, reply.text
    token = reply.json()["token"]
    assert token.startswith("FlyV1 fm2_")
    return str(token)


def _client(server: Server, header: str) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, headers={"Authorization": header}, timeout=90)


def test_a_deploy_token_acts_on_its_app_only(server: Server, api: httpx.Client, app_name: str, other_app: str) -> None:
    header = _rest_deploy_token(api, app_name)
    with _client(server, header) as deploy:
        assert deploy.get(f"/v1/apps/{app_name}").status_code == 200
        assert deploy.get(f"/v1/apps/{app_name}/machines").json() == []
        assert deploy.post(f"/v1/apps/{app_name}/secrets", json={"values": {"FROM_DEPLOY": "1"}}).status_code == 200
        listed = deploy.get("/v1/apps", params={"org_slug": "personal"}).json()["apps"]
        assert [a["name"] for a in listed] == [app_name]

        for method, path, body in [
            ("GET", f"/v1/apps/{other_app}", None),
            ("GET", f"/v1/apps/{other_app}/machines", None),
            ("POST", f"/v1/apps/{other_app}/secrets", {"values": {"X": "1"}}),
            ("POST", f"/v1/apps/{other_app}/deploy_token", {}),
            ("DELETE", f"/v1/apps/{other_app}", None),
            ("POST", "/v1/apps", {"app_name": f"new-{uuid.uuid4().hex[:8]}", "org_slug": "personal"}),
            ("GET", "/v1/tokens", None),
            ("POST", "/v1/tokens", {"name": "wider"}),
            ("GET", "/v1/orgs/personal/machines", None),
            ("GET", "/metrics", None),
        ]:
            refused = deploy.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
            assert f"may act on app {app_name!r} only" in refused.json()["error"]
    assert api.get(f"/v1/apps/{other_app}").status_code == 200  # nothing of it was touched


def test_graphql_apps_and_machines_are_those_of_the_app(
    server: Server, api: httpx.Client, app_name: str, other_app: str
) -> None:
    with _client(server, _rest_deploy_token(api, app_name)) as deploy:
        query = "query { apps { nodes { name } } }"
        assert deploy.post("/graphql", json={"query": query}).json()["data"]["apps"]["nodes"] == [{"name": app_name}]
        query = "query($name: String) { app(name: $name) { name } }"
        reply = deploy.post("/graphql", json={"query": query, "variables": {"name": other_app}}).json()
        assert reply["errors"][0]["message"].startswith(f"this token may act on app {app_name!r} only")


def test_flyctl_tokens_create_deploy_makes_a_token_of_the_app(
    server: Server, api: httpx.Client, app_name: str, other_app: str
) -> None:
    """`fly tokens create deploy` as flyctl ad0172f sends it: profile `deploy`, `{"app_id": app.ID}`, its
    default expiry (20 years, Go's Duration.String())."""
    org_id = api.post("/graphql", json={"query": 'query { organization(slug: "personal") { id } }'}).json()
    variables = {
        "name": "flyctl deploy token",
        "organizationId": org_id["data"]["organization"]["id"],
        "profile": "deploy",
        "profileParams": {"app_id": app_name},
        "expiry": "175200h0m0s",
    }
    reply = api.post("/graphql", json={"query": CREATE_LIMITED, "variables": variables}).json()
    header = reply["data"]["createLimitedAccessToken"]["limitedAccessToken"]["tokenHeader"]
    with _client(server, header) as deploy:
        assert deploy.get(f"/v1/apps/{app_name}").status_code == 200
        assert deploy.get(f"/v1/apps/{other_app}").status_code == 403
        wider = {**variables, "profile": "deploy_organization", "profileParams": {}}
        refused = deploy.post("/graphql", json={"query": CREATE_LIMITED, "variables": wider}).json()
        assert "may act on app" in refused["errors"][0]["message"]


@pytest.mark.parametrize("profile", ["readonly", "machine_exec", ""])
def test_a_profile_aerodrome_cannot_narrow_to_is_refused(api: httpx.Client, profile: object) -> None:
    """A token never grants more than its profile names: a profile with no meaning here makes no token at all."""
    org_id = api.post("/graphql", json={"query": 'query { organization(slug: "personal") { id } }'}).json()
    org = org_id["data"]["organization"]["id"]
    variables = {"name": "narrow", "organizationId": org, "profile": profile, "profileParams": {}, "expiry": ""}
    before = len(api.get("/v1/tokens").json()["tokens"])
    reply = api.post("/graphql", json={"query": CREATE_LIMITED, "variables": variables}).json()
    assert reply["data"] is None or reply["data"].get("createLimitedAccessToken") is None
    assert "is not available here" in reply["errors"][0]["message"]
    assert len(api.get("/v1/tokens").json()["tokens"]) == before


@pytest.mark.parametrize("expiry", ["forever", "-1h", "175201h", 0])
def test_a_bad_expiry_is_refused_clearly(api: httpx.Client, app_name: str, expiry: object) -> None:
    reply = api.post(f"/v1/apps/{app_name}/deploy_token", json={"expiry": expiry})
    assert reply.status_code == 400
    assert "expiry" in reply.json()["error"]


def test_an_absent_expiry_is_twenty_years(server: Server, api: httpx.Client, app_name: str) -> None:
    header = _rest_deploy_token(api, app_name, expiry=None)
    with _client(server, header) as deploy:
        assert deploy.get(f"/v1/apps/{app_name}").status_code == 200
    [listed] = [t for t in api.get("/v1/tokens").json()["tokens"] if t["name"] == f"{app_name} deploy token"]
    assert listed["app_name"] == app_name and listed["expires_at"] is not None


def test_fly_go_lists_deploy_tokens_with_their_app(api: httpx.Client, app_name: str, other_app: str) -> None:
    _rest_deploy_token(api, app_name, expiry="2h")
    app_query = (FIXTURES / "flygo_get_app_limited_access_tokens.graphql").read_text()
    org_query = (FIXTURES / "flygo_get_org_limited_access_tokens.graphql").read_text()
    listed = api.post("/graphql", json={"query": app_query, "variables": {"appName": app_name}}).json()
    [token] = listed["data"]["appLimitedAccessTokens"]["limitedAccessTokens"]["nodes"]
    assert token["name"] == f"{app_name} deploy token" and token["expiresAt"] != "9999-12-31T23:59:59Z"
    other = api.post("/graphql", json={"query": app_query, "variables": {"appName": other_app}}).json()
    assert other["data"]["appLimitedAccessTokens"]["limitedAccessTokens"]["nodes"] == []
    org = api.post("/graphql", json={"query": org_query, "variables": {"slug": "personal"}}).json()
    names = [t["name"] for t in org["data"]["orgLimitedAccessTokens"]["limitedAccessTokens"]["nodes"]]
    assert f"{app_name} deploy token" not in names


def test_another_apps_release_is_absent_to_a_deploy_token(
    server: Server, api: httpx.Client, app_name: str, other_app: str
) -> None:
    made = api.post("/api/v1/releases", json={"app_name": other_app, "image": "img", "strategy": "rolling"})
    release_id = made.json()["release"]["id"]
    with _client(server, _rest_deploy_token(api, app_name)) as deploy:
        refused = deploy.patch(f"/api/v1/releases/{release_id}", json={"status": "complete"})
        assert refused.status_code == 404 and refused.json() == {"error": f"release {release_id!r} not found"}
        mine = deploy.post("/api/v1/releases", json={"app_name": app_name, "image": "img", "strategy": "rolling"})
        done = deploy.patch(f"/api/v1/releases/{mine.json()['release']['id']}", json={"status": "complete"})
        assert done.status_code == 200 and done.json()["status"] == "complete"
    assert api.get(f"/api/v1/apps/{other_app}/releases").json()["releases"][0]["status"] == "pending"
