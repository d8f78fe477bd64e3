"""Organisation tokens against a real `aerodrome serve`: named, listed without secrets, revoked at once."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import msgpack
import pytest

from tests.support.server import Server, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as running:
        running.cli("orgs", "create", "other")
        yield running


def tokens_cli(server: Server, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLY_API_TOKEN": token, "FLY_API_HOSTNAME": server.api_url}
    argv = [sys.executable, "-m", "aerodrome", "tokens", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_tokens_are_listed_by_name_without_secrets_and_a_revoked_one_is_refused_at_once(server: Server) -> None:
    first = server.cli("tokens", "create", "--name", "deploy").strip()
    second = server.cli("tokens", "create", "--name", "ci").strip()
    with server.client(first) as one, server.client(second) as two:
        assert one.get("/v1/tokens/current").status_code == 200  # remembered by the server from here on
        listed = one.get("/v1/tokens").json()["tokens"]
        by_name = {t["name"]: t for t in listed}
        assert {"deploy", "ci"} <= set(by_name)
        assert all(t["org_slug"] == "personal" and not t["revoked"] for t in listed)
        assert by_name["deploy"]["last_used_at"] is not None
        text = json.dumps(listed)
        assert first not in text and second not in text and "secret" not in text

        revoked = one.delete(f"/v1/tokens/{by_name['ci']['id']}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked"] and revoked.json()["revoked_at"]
        refused = two.get("/v1/tokens/current")
        assert refused.status_code == 401
        assert "error" in refused.json()
        assert two.get("/v1/apps", params={"org_slug": "personal"}).status_code == 401
        assert one.get("/v1/tokens/current").status_code == 200
        again = {t["name"]: t for t in one.get("/v1/tokens").json()["tokens"]}
        assert again["ci"]["revoked"] and not again["deploy"]["revoked"]


def test_another_organisations_token_is_absent(server: Server) -> None:
    other = server.cli("tokens", "create", "--org", "other", "--name", "theirs").strip()
    with server.client(other) as theirs, server.client() as mine:
        (their_token,) = theirs.get("/v1/tokens").json()["tokens"]
        assert their_token["name"] == "theirs"
        assert all(t["org_slug"] == "personal" for t in mine.get("/v1/tokens").json()["tokens"])
        assert mine.delete(f"/v1/tokens/{their_token['id']}").status_code == 404
        assert mine.get("/v1/tokens", params={"org_slug": "other"}).status_code == 404
        assert theirs.get("/v1/tokens/current").status_code == 200


def test_graphql_deletes_a_limited_access_token_by_id(server: Server) -> None:
    doomed = server.cli("tokens", "create", "--name", "graphql").strip()
    with server.client(doomed) as it, server.client() as mine:
        assert it.get("/v1/tokens/current").status_code == 200
        token_id = it.get("/v1/tokens/current").json()["tokens"][0]["token_id"]
        mutation = "mutation($id: ID) { deleteLimitedAccessToken(input: {id: $id}) { token } }"
        reply = mine.post("/graphql", json={"query": mutation, "variables": {"id": token_id}}).json()
        assert reply == {"data": {"deleteLimitedAccessToken": {"token": token_id}}}
        assert it.get("/v1/tokens/current").status_code == 401
        missing = mine.post("/graphql", json={"query": mutation, "variables": {"id": "nope"}}).json()
        assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_the_cli_lists_and_revokes_through_the_api(server: Server) -> None:
    kept = server.cli("tokens", "create", "--name", "cli-kept").strip()
    doomed = server.cli("tokens", "create", "--name", "cli-doomed").strip()
    listed = tokens_cli(server, kept, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {t["name"]: t for t in json.loads(listed.stdout)}
    assert kept not in listed.stdout and doomed not in listed.stdout
    with server.client(doomed) as it:
        assert it.get("/v1/tokens/current").status_code == 200
        revoked = tokens_cli(server, kept, "revoke", by_name["cli-doomed"]["id"], "--json")
        assert revoked.returncode == 0, revoked.stderr
        assert json.loads(revoked.stdout)["revoked"] is True
        assert it.get("/v1/tokens/current").status_code == 401
    after = {t["name"]: t for t in json.loads(tokens_cli(server, kept, "list", "--json").stdout)}
    assert after["cli-doomed"]["revoked"] and not after["cli-kept"]["revoked"]
    table = tokens_cli(server, kept, "list")
    assert table.returncode == 0 and "cli-kept" in table.stdout
    assert tokens_cli(server, kept, "list", "--org", "other").returncode == 3  # not found: another organisation's
    missing = tokens_cli(server, kept, "revoke", "nope")
    assert missing.returncode == 3 and "404" in missing.stderr
    assert tokens_cli(server, doomed, "list").returncode == 1  # the revoked token itself is refused


# flyctl ad0172f's `apps list`, captured: fly-go sends an `fm2_` token as `FlyV1`, once it has decoded it as a macaroon
FLYCTL_APPS_LIST = (
    '{"query":"query($org: ID, $after: String) { apps(type: \\"container\\", first: 200, after: $after, '
    "organizationId: $org) { pageInfo { hasNextPage endCursor } nodes { id name deployed hostname platformVersion "
    'network organization { slug name } currentRelease { createdAt status } status } } }","variables":null}\n'
)
FLYCTL_HEADERS = {
    "User-Agent": "flyctl-ad0172face30/2026.12.3-dev.1796287049 (interactive=false; parent=other)",
    "Accept": "application/json; charset=utf-8",
    "Content-Type": "application/json; charset=utf-8",
    "Fly-Client-Interactive": "false",
    "Fly-Client-Parent": "other",
}


def test_a_token_is_a_macaroon_fly_go_keeps_and_its_flyv1_header_authenticates(server: Server) -> None:
    secret = server.cli("tokens", "create", "--name", "flyctl").strip()
    assert secret.startswith("fm2_")
    # superfly/macaroon's form: fly-go drops an fm2_ token that does not decode, or whose validity has ended
    nonce, location, caveats, tail = msgpack.unpackb(base64.b64decode(secret.removeprefix("fm2_")))
    assert location == "https://api.fly.io/v1" and caveats == []  # no ValidityWindow caveat: it never expires
    assert len(nonce) == 3 and len(nonce[1]) == 16 and nonce[2] is False and len(tail) == 32
    reply = httpx.post(
        f"{server.api_url}/graphql",
        headers={**FLYCTL_HEADERS, "Authorization": f"FlyV1 {secret}"},
        content=FLYCTL_APPS_LIST,
    )
    assert reply.status_code == 200 and "errors" not in reply.json(), reply.text
    assert reply.json()["data"]["apps"]["pageInfo"]["hasNextPage"] is False
    # what flyctl sent while it dropped the old form of token: no credential, GraphQL's UNAUTHORIZED
    empty = httpx.post(
        f"{server.api_url}/graphql", headers={**FLYCTL_HEADERS, "Authorization": "Bearer"}, content=FLYCTL_APPS_LIST
    )
    assert empty.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"


def test_a_token_makes_another_of_its_organisation(server: Server) -> None:
    with server.client() as mine:
        created = mine.post("/v1/tokens", json={"name": "made-by-api"})
        assert created.status_code == 201
        body = created.json()
        assert body["token"].startswith("fm2_") and body["name"] == "made-by-api" and body["org_slug"] == "personal"
        listed = {t["id"]: t for t in mine.get("/v1/tokens").json()["tokens"]}
        assert listed[body["id"]]["name"] == "made-by-api" and body["token"] not in json.dumps(listed)
        assert mine.post("/v1/tokens").status_code == 201  # no body: an unnamed token
        assert mine.post("/v1/tokens", json={"org_slug": "other"}).status_code == 404
        too_long = mine.post("/v1/tokens", json={"name": "x" * 101})
        assert too_long.status_code == 400 and "error" in too_long.json()
        assert mine.post("/v1/tokens", json={"name": 7}).status_code == 400
    with server.client(body["token"]) as made:
        assert made.get("/v1/tokens/current").json()["tokens"][0]["token_id"] == body["id"]
    with server.client("fm2_nope") as stranger:
        assert stranger.post("/v1/tokens", json={"name": "x"}).status_code == 401


def test_graphql_creates_an_organisation_with_its_first_token(server: Server) -> None:
    mutation = (
        "mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { "
        "organization { slug name type } token } }"
    )
    with server.client() as mine:
        reply = mine.post("/graphql", json={"query": mutation, "variables": {"input": {"name": "Team Blue 2"}}})
        payload = reply.json()["data"]["createOrganization"]
        assert payload["organization"] == {"slug": "team-blue-2", "name": "Team Blue 2", "type": "SHARED"}
        again = mine.post("/graphql", json={"query": mutation, "variables": {"input": {"name": "Team Blue 2"}}})
        assert again.json()["errors"][0]["extensions"]["code"] != "NOT_FOUND" and "already exists" in again.text
        for bad in ({"name": "x", "slug": "Not A Slug"}, {"name": ""}, {"name": "!!!"}):
            refused = mine.post("/graphql", json={"query": mutation, "variables": {"input": bad}}).json()
            assert refused["errors"] and refused.get("data", {}).get("createOrganization") is None, bad
    with server.client(payload["token"]) as theirs:
        assert theirs.get("/v1/tokens/current").json()["tokens"][0]["org_slug"] == "team-blue-2"
        assert theirs.get("/v1/apps", params={"org_slug": "personal"}).status_code == 404
        assert theirs.get("/v1/apps", params={"org_slug": "team-blue-2"}).json()["apps"] == []
