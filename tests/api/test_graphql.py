from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import delete_app
from tests.support.server import Server

GraphQL = Callable[..., dict[str, Any]]

# The seed guide's two calls, as the shell hands them to curl (`\$input` is `$input` after the heredoc).
SEED_SHARED_V4 = """
    {
      "query": "mutation($input: AllocateIPAddressInput!) { allocateIpAddress(input: $input) { app { sharedIpAddress } } }",
      "variables": {
        "input": {
          "appId": "APP_NAME",
          "type": "shared_v4",
          "region": ""
        }
      }
    }
"""  # noqa: E501
SEED_V6 = """
    {
      "query": "mutation($input: AllocateIPAddressInput!) { allocateIpAddress(input: $input) { ipAddress { id address type region createdAt } } }",
      "variables": {
        "input": {
          "appId": "APP_NAME",
          "type": "v6",
          "region": ""
        }
      }
    }
"""  # noqa: E501

ALLOCATE = (
    "mutation($input: AllocateIPAddressInput!) { allocateIpAddress(input: $input) "
    "{ ipAddress { id address type region createdAt } } }"
)
# fly-go's list query (resource_ip_addresses.go).
LIST = (
    "query($appName: String!) { app(name: $appName) { ipAddresses { nodes { id address type region createdAt "
    "network { name organization { slug } } serviceName } } sharedIpAddress } }"
)
RELEASE = "mutation($input: ReleaseIPAddressInput!) { releaseIpAddress(input: $input) { clientMutationId } }"
# flyctl's GetAppCompact, with its aliases.
APP_COMPACT = """
query ($appName: String!) {
  appcompact: app(name: $appName) {
    id internalNumericId name hostname cnameTarget deployed network status appUrl platformVersion
    organization { id internalNumericId slug paidPlan }
    postgresAppRole: role { name }
  }
}
"""


def _post(server: Server, body: object, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or server.token}", "Content-Type": "application/json"}
    if isinstance(body, str):
        return httpx.post(f"{server.api_url}/graphql", content=body, headers=headers, timeout=30)
    return httpx.post(f"{server.api_url}/graphql", json=body, headers=headers, timeout=30)


@pytest.fixture
def gql(server: Server) -> Iterator[GraphQL]:
    def run(query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        response = _post(server, {"query": query, "variables": variables}, token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    yield run


@pytest.fixture
def other_token(server: Server) -> str:
    server.cli("orgs", "create", "other-org")
    return server.cli("tokens", "create", "--org", "other-org").strip()


def allocate(gql: GraphQL, app: str, type_: str, **extra: str) -> dict[str, Any]:
    body = gql(ALLOCATE, input={"appId": app, "type": type_, "region": "", **extra})
    assert "errors" not in body, body
    node: dict[str, Any] = body["data"]["allocateIpAddress"]["ipAddress"]
    return node


def test_seed_calls_verbatim(server: Server, app_name: str) -> None:
    shared = _post(server, SEED_SHARED_V4.replace("APP_NAME", app_name))
    assert shared.status_code == 200
    assert shared.json() == {"data": {"allocateIpAddress": {"app": {"sharedIpAddress": "127.0.0.1"}}}}

    v6 = _post(server, SEED_V6.replace("APP_NAME", app_name))
    assert v6.status_code == 200
    node = v6.json()["data"]["allocateIpAddress"]["ipAddress"]
    assert set(node) == {"id", "address", "type", "region", "createdAt"}
    assert node["type"] == "v6" and node["region"] == "global" and node["id"]
    assert ipaddress.ip_address(node["address"]) in ipaddress.ip_network(server.dedicated_pools[1])
    assert node["createdAt"].endswith("Z")


def test_list_with_fly_go_query(gql: GraphQL, app_name: str) -> None:
    v4 = allocate(gql, app_name, "v4")
    v6 = allocate(gql, app_name, "v6", region="iad")
    flycast = allocate(gql, app_name, "private_v6", serviceName="db")
    assert ipaddress.ip_address(flycast["address"]) in ipaddress.ip_network("fdaa::/16")
    shared = gql(ALLOCATE, input={"appId": app_name, "type": "shared_v4"})
    assert shared["data"]["allocateIpAddress"]["ipAddress"] is None

    app = gql(LIST, appName=app_name)["data"]["app"]
    assert app["sharedIpAddress"] == "127.0.0.1"
    nodes = {node["address"]: node for node in app["ipAddresses"]["nodes"]}
    assert set(nodes) == {v4["address"], v6["address"], flycast["address"]}  # the shared v4 is not a node
    assert nodes[v4["address"]]["network"] is None and nodes[v4["address"]]["region"] == "global"
    assert nodes[v6["address"]]["region"] == "iad"
    assert nodes[flycast["address"]]["network"] == {"name": "default", "organization": {"slug": "personal"}}
    assert nodes[flycast["address"]]["serviceName"] == "db"

    paged = gql(
        "query($n: String!, $a: String!) { app(name: $n) { ipAddresses(first: 2) { totalCount "
        "pageInfo { hasNextPage } edges { cursor node { address } } } ipAddress(address: $a) { type } } }",
        n=app_name,
        a=v6["address"],
    )["data"]["app"]
    assert paged["ipAddresses"]["totalCount"] == 3 and paged["ipAddresses"]["pageInfo"]["hasNextPage"] is True
    assert len(paged["ipAddresses"]["edges"]) == 2 and paged["ipAddress"] == {"type": "v6"}


def test_release_by_address_and_by_id(gql: GraphQL, app_name: str) -> None:
    first = allocate(gql, app_name, "v4")
    second = allocate(gql, app_name, "v6")
    gql(ALLOCATE, input={"appId": app_name, "type": "shared_v4"})

    assert gql(RELEASE, input={"appId": app_name, "ip": first["address"]}) == {
        "data": {"releaseIpAddress": {"clientMutationId": None}}
    }
    assert "errors" not in gql(RELEASE, input={"ipAddressId": second["id"]})
    assert "errors" not in gql(RELEASE, input={"appId": app_name, "ip": "127.0.0.1"})

    app = gql(LIST, appName=app_name)["data"]["app"]
    assert app == {"ipAddresses": {"nodes": []}, "sharedIpAddress": None}
    again = gql(RELEASE, input={"appId": app_name, "ip": first["address"]})
    assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_v4_addresses_are_distinct_inside_the_pool(server: Server, gql: GraphQL, app_name: str) -> None:
    addresses = [allocate(gql, app_name, "v4")["address"] for _ in range(4)]
    assert len(set(addresses)) == 4
    pool = ipaddress.ip_network(server.dedicated_pools[0])
    assert all(ipaddress.ip_address(a) in pool for a in addresses)
    assert str(pool.network_address) not in addresses and str(pool.broadcast_address) not in addresses

    gql(RELEASE, input={"appId": app_name, "ip": addresses[1]})
    reused = allocate(gql, app_name, "v4")["address"]
    assert reused not in (addresses[0], addresses[2], addresses[3])  # never an address still allocated


def test_deleting_an_app_frees_its_addresses(api: httpx.Client, gql: GraphQL) -> None:
    name = f"test-{uuid.uuid4().hex[:10]}"
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
    freed = allocate(gql, name, "v4")["address"]
    delete_app(api, name)

    successor = f"test-{uuid.uuid4().hex[:10]}"
    assert api.post("/v1/apps", json={"app_name": successor, "org_slug": "personal"}).status_code == 201
    try:
        # Addresses go lowest-free first, so the deleted app's address is the next one handed out.
        assert allocate(gql, successor, "v4")["address"] == freed
    finally:
        api.delete(f"/v1/apps/{successor}")


def test_app_queries(gql: GraphQL, app_name: str) -> None:
    compact = gql(APP_COMPACT, appName=app_name)["data"]["appcompact"]
    assert compact["id"] == app_name and compact["name"] == app_name
    assert compact["hostname"] == f"{app_name}.localhost" and compact["appUrl"] == f"https://{app_name}.localhost"
    assert compact["deployed"] is False and compact["status"] == "pending" and compact["network"] == "default"
    assert compact["platformVersion"] == "machines" and compact["postgresAppRole"] is None
    assert compact["organization"]["slug"] == "personal" and compact["organization"]["paidPlan"] is False
    assert isinstance(compact["internalNumericId"], int)

    full = gql(
        "query($n: String) { app(name: $n) { organization { id slug name internalNumericId } ipAddresses "
        "{ totalCount } sharedIpAddress } }",
        n=app_name,
    )["data"]["app"]
    assert full["organization"]["name"] == "Personal" and full["organization"]["id"] == compact["organization"]["id"]
    assert full["ipAddresses"] == {"totalCount": 0} and full["sharedIpAddress"] is None


def test_unknown_app(gql: GraphQL) -> None:
    body = gql(LIST, appName="no-such-app-here")
    assert body["data"] == {"app": None}
    error = body["errors"][0]
    assert "Could not find App" in error["message"]
    assert error["path"] == ["app"] and error["extensions"]["code"] == "NOT_FOUND"
    mutation = gql(ALLOCATE, input={"appId": "no-such-app-here", "type": "v4"})
    assert "Could not find App" in mutation["errors"][0]["message"]


def test_another_organisations_app_is_not_found(gql: GraphQL, app_name: str, other_token: str) -> None:
    allocate(gql, app_name, "v4")
    listed = gql(LIST, token=other_token, appName=app_name)
    assert listed["data"] == {"app": None} and "Could not find App" in listed["errors"][0]["message"]
    taken = gql(ALLOCATE, token=other_token, input={"appId": app_name, "type": "v4"})
    assert taken["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    released = gql(RELEASE, token=other_token, input={"appId": app_name, "ip": "127.0.0.1"})
    assert "Could not find App" in released["errors"][0]["message"]


def test_protocol_errors(server: Server, gql: GraphQL) -> None:
    for header in (None, "Bearer fm2_nope"):
        headers = {"Authorization": header} if header else {}
        response = httpx.post(f"{server.api_url}/graphql", json={"query": '{ app(name: "x") { id } }'}, headers=headers)
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
    flyv1 = httpx.post(
        f"{server.api_url}/graphql",
        json={"query": '{ organization(slug: "personal") { slug } }'},
        headers={"Authorization": f"FlyV1 {server.token}"},
    )
    assert flyv1.json() == {"data": {"organization": {"slug": "personal"}}}

    assert _post(server, "{not json").status_code == 400
    assert _post(server, {"variables": {}}).status_code == 400

    unknown_field = gql('{ app(name: "x") { noSuchField } }')
    assert unknown_field["data"] is None and unknown_field["errors"][0]["extensions"]["code"]
    bad_type = gql(ALLOCATE, input={"appId": "x", "type": "v5"})
    assert bad_type["data"] is None and "v5" in bad_type["errors"][0]["message"]
