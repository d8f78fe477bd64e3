from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from aerodrome.control import IPs
from aerodrome.core import IPAddress, SystemClock, UnavailableError
from aerodrome.store import SqlStore
from tests.store.factories import make_app
from tests.support.server import Server

ASSIGNMENT_KEYS = {"ip", "region", "service_name", "shared", "created_at"}


def test_round_trip(server: Server, api: httpx.Client, app_name: str) -> None:
    base = f"/v1/apps/{app_name}/ip_assignments"
    assert api.get(base).json() == {"ips": []}

    v4 = api.post(base, json={"type": "v4", "region": "", "org_slug": "personal", "service_name": "web"})
    assert v4.status_code == 200, v4.text
    dedicated = v4.json()
    assert set(dedicated) == ASSIGNMENT_KEYS
    assert dedicated["shared"] is False and dedicated["service_name"] == "web" and dedicated["region"] == "global"
    assert ipaddress.ip_address(dedicated["ip"]) in ipaddress.ip_network(server.dedicated_pools[0])

    shared = api.post(base, json={"type": "shared_v4"}).json()
    assert shared["shared"] is True and shared["ip"] == "127.0.0.1"
    assert api.post(base, json={"type": "shared_v4"}).json() == shared  # one shared address per app

    v6 = api.post(base, json={"type": "v6", "region": "iad"}).json()
    assert ipaddress.ip_address(v6["ip"]) in ipaddress.ip_network(server.dedicated_pools[1]) and v6["region"] == "iad"

    listed = api.get(base).json()["ips"]
    assert sorted(ip["ip"] for ip in listed) == sorted([dedicated["ip"], shared["ip"], v6["ip"]])

    assert api.delete(f"{base}/{dedicated['ip']}").status_code == 204
    assert api.delete(f"{base}/127.0.0.1").status_code == 204
    # Any spelling of an IPv6 address names it.
    assert api.delete(f"{base}/{ipaddress.ip_address(v6['ip']).exploded}").status_code == 204
    assert api.get(base).json() == {"ips": []}
    missing = api.delete(f"{base}/{dedicated['ip']}")
    assert missing.status_code == 404 and "error" in missing.json()


def test_rest_and_graphql_share_the_addresses(server: Server, api: httpx.Client, app_name: str) -> None:
    ip = api.post(f"/v1/apps/{app_name}/ip_assignments", json={"type": "private_v6"}).json()["ip"]
    query = "query($n: String!) { app(name: $n) { ipAddresses { nodes { address type } } } }"
    body = api.post(f"{server.api_url}/graphql", json={"query": query, "variables": {"n": app_name}}).json()
    assert body["data"]["app"]["ipAddresses"]["nodes"] == [{"address": ip, "type": "private_v6"}]


def test_bad_requests(api: httpx.Client, app_name: str) -> None:
    base = f"/v1/apps/{app_name}/ip_assignments"
    assert api.post(base, json={"type": "v5"}).status_code == 400
    assert api.post(base, json={"type": 4}).status_code == 400
    assert api.post(base, json={"region": "iad"}).status_code == 400
    assert api.post(base, content=b"{not json").status_code == 400
    assert api.post(base, json={"type": "v4", "org_slug": "someone-else"}).status_code == 404
    assert api.get("/v1/apps/no-such-app-here/ip_assignments").status_code == 404


def test_another_organisation_gets_not_found(server: Server, api: httpx.Client, app_name: str) -> None:
    ip = api.post(f"/v1/apps/{app_name}/ip_assignments", json={"type": "v4"}).json()["ip"]
    server.cli("orgs", "create", "other-org")
    other = server.cli("tokens", "create", "--org", "other-org").strip()
    with server.client(other) as client:
        assert client.get(f"/v1/apps/{app_name}/ip_assignments").status_code == 404
        assert client.post(f"/v1/apps/{app_name}/ip_assignments", json={"type": "v4"}).status_code == 404
        assert client.delete(f"/v1/apps/{app_name}/ip_assignments/{ip}").status_code == 404
    assert [a["ip"] for a in api.get(f"/v1/apps/{app_name}/ip_assignments").json()["ips"]] == [ip]
    unauthenticated = httpx.get(f"{server.api_url}/v1/apps/{app_name}/ip_assignments")
    assert unauthenticated.status_code == 401


async def test_edge_hooks(tmp_path: Path) -> None:
    """What the edge subscribes to and binds at start; in-process over a real SQLite store."""
    store = SqlStore.open_sqlite(tmp_path / "aerodrome.db")
    try:
        org = await store.ensure_org("personal", "Personal")
        apps = [make_app("one"), make_app("two")]
        for app in apps:
            await store.add_app(app)
        ips = IPs(store, SystemClock(), shared_v4="127.0.0.1", pool_v4="127.0.1.0/30")
        seen: list[tuple[str, str, str]] = []

        async def allocated(ip: IPAddress) -> None:
            seen.append(("allocated", ip.app_name, ip.address))

        async def released(ip: IPAddress) -> None:
            seen.append(("released", ip.app_name, ip.address))

        ips.subscribe(allocated=allocated, released=released)
        first = await ips.allocate(apps[0], org, "v4")
        second = await ips.allocate(apps[1], org, "v4")
        await ips.allocate(apps[1], org, "shared_v4")
        assert (first.address, second.address) == ("127.0.1.1", "127.0.1.2")
        with pytest.raises(UnavailableError):  # a /30 holds two hosts
            await ips.allocate(apps[0], org, "v4")

        dedicated = await ips.dedicated()
        assert sorted((ip.app_name, ip.address) for ip in dedicated) == [("one", "127.0.1.1"), ("two", "127.0.1.2")]
        await ips.release_all(apps[1])
        assert seen[:3] == [
            ("allocated", "one", "127.0.1.1"),
            ("allocated", "two", "127.0.1.2"),
            ("allocated", "two", "127.0.0.1"),
        ]
        assert sorted(seen[3:]) == [("released", "two", "127.0.0.1"), ("released", "two", "127.0.1.2")]
        assert [ip.address for ip in await ips.dedicated()] == ["127.0.1.1"]
    finally:
        await store.close()
