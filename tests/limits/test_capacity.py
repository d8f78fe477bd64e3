"""Every bounded range is given back when released, and a full one is refused with Fly's capacity error.

Machine addresses, organisation subnets and dedicated app addresses, each with a range small enough to fill:
allocate until it is full (a 503 `insufficient_capacity` naming the range, and nothing changed), release,
allocate again, and the same after a daemon restart.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time

import httpx

from tests.support.server import Server, running_server

# Two organisations of one machine each: 10.231.0.0/30 and 10.231.0.4/30 (machines at .2 and .6).
MACHINE_POOL = "10.231.0.0/29"
DEDICATED_V4 = "127.0.231.0/30"  # two addresses: .1 and .2
DEDICATED_V6 = "fdae:ad:231::/126"  # three addresses: ::1 to ::3


def ipv4_of(machine: dict[str, object]) -> str:
    """A machine's private IPv4 address: the host part of its private IPv6 address."""
    return str(ipaddress.IPv4Address(int(ipaddress.IPv6Address(str(machine["private_ip"]))) & 0xFFFF_FFFF))


def refused_for_capacity(response: httpx.Response, cause: str) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "insufficient_capacity" and cause in body["error"], body


def create_machine(api: httpx.Client, app: str, image: str) -> httpx.Response:
    return api.post(f"/v1/apps/{app}/machines", json={"config": {"image": image}, "skip_launch": True})


def org_client(server: Server, slug: str) -> httpx.Client:
    server.cli("orgs", "create", slug)
    return server.client(server.cli("tokens", "create", "--org", slug).strip())


def wait_app_gone(api: httpx.Client, app: str) -> None:
    deadline = time.monotonic() + 60
    while api.get(f"/v1/apps/{app}").status_code != 404:
        assert time.monotonic() < deadline, f"app {app} was not deleted"
        time.sleep(0.1)


def test_machine_addresses_and_org_subnets_come_back_once_released() -> None:
    with running_server("--org-prefix-len", "30", machine_pool=MACHINE_POOL) as server:
        image = server.push_image("busybox")
        with server.client() as first, org_client(server, "second") as second, org_client(server, "third") as third:
            apps = ((first, "cap-a", "personal"), (second, "cap-b", "second"), (third, "cap-c", "third"))
            for api, app, slug in apps:
                api.post("/v1/apps", json={"app_name": app, "org_slug": slug}).raise_for_status()
            held = create_machine(first, "cap-a", image).json()
            assert ipv4_of(held) == "10.231.0.2"
            refused_for_capacity(create_machine(first, "cap-a", image), "subnet 10.231.0.0/30 on this host is full")
            assert [m["id"] for m in first.get("/v1/apps/cap-a/machines").json()] == [held["id"]]
            assert ipv4_of(create_machine(second, "cap-b", image).json()) == "10.231.0.6"
            refused_for_capacity(create_machine(third, "cap-c", image), f"machine pool {MACHINE_POOL} holds 2 /30")

            # A destroyed machine gives its address back; a deleted app's organisation gives its subnet back.
            first.delete(f"/v1/apps/cap-a/machines/{held['id']}").raise_for_status()
            again = create_machine(first, "cap-a", image).json()
            assert ipv4_of(again) == "10.231.0.2"
            second.delete("/v1/apps/cap-b").raise_for_status()
            wait_app_gone(second, "cap-b")
            moved_in = create_machine(third, "cap-c", image).json()
            assert ipv4_of(moved_in) == "10.231.0.6"

        server.stop()
        server.start()
        with server.client() as first, org_client(server, "fourth") as fourth:
            assert ipv4_of(first.get(f"/v1/apps/cap-a/machines/{again['id']}").json()) == "10.231.0.2"
            refused_for_capacity(create_machine(first, "cap-a", image), "subnet 10.231.0.0/30 on this host is full")
            fourth.post("/v1/apps", json={"app_name": "cap-d", "org_slug": "fourth"}).raise_for_status()
            refused_for_capacity(create_machine(fourth, "cap-d", image), "no free organisation subnet")
            first.delete(f"/v1/apps/cap-a/machines/{again['id']}").raise_for_status()
            assert ipv4_of(create_machine(first, "cap-a", image).json()) == "10.231.0.2"
            fourth.delete("/v1/apps/cap-d").raise_for_status()


def pool_route() -> str:
    listing = ["ip", "-6", "route", "show", "exact", DEDICATED_V6, "type", "unreachable"]
    return subprocess.run(listing, check=True, capture_output=True, text=True).stdout.strip()


def allocate(api: httpx.Client, app: str, type_: str) -> httpx.Response:
    return api.post(f"/v1/apps/{app}/ip_assignments", json={"type": type_})


def graphql_allocate(server: Server, api: httpx.Client, app: str, type_: str) -> dict[str, object]:
    mutation = "mutation($i: AllocateIPAddressInput!) { allocateIpAddress(input: $i) { ipAddress { address } } }"
    variables = {"i": {"appId": app, "type": type_, "region": ""}}
    response = api.post(f"{server.api_url}/graphql", json={"query": mutation, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_dedicated_addresses_come_back_and_a_full_pool_is_refused() -> None:
    assert not pool_route(), f"a route for {DEDICATED_V6} is already on the host"
    flags = ("--dedicated-ipv4-pool", DEDICATED_V4, "--dedicated-ipv6-pool", DEDICATED_V6)
    with running_server(*flags) as server, server.client() as api:
        for app in ("ded-a", "ded-b"):
            api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).raise_for_status()
        assert [allocate(api, "ded-a", "v4").json()["ip"] for _ in range(2)] == ["127.0.231.1", "127.0.231.2"]
        refused_for_capacity(allocate(api, "ded-b", "v4"), f"pool {DEDICATED_V4} is full: its 2 addresses")
        errors = graphql_allocate(server, api, "ded-b", "v4")["errors"]
        assert isinstance(errors, list) and errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", errors
        assert f"pool {DEDICATED_V4} is full" in errors[0]["message"]
        assert api.delete("/v1/apps/ded-a/ip_assignments/127.0.231.1").status_code == 204
        assert allocate(api, "ded-b", "v4").json()["ip"] == "127.0.231.1"

        # The v6 pool's unreachable route is there while one of its addresses is bound, and only then.
        assert not pool_route()
        v6 = [allocate(api, "ded-a", "v6").json()["ip"] for _ in range(3)]
        assert v6 == ["fdae:ad:231::1", "fdae:ad:231::2", "fdae:ad:231::3"] and pool_route()
        refused_for_capacity(allocate(api, "ded-b", "v6"), f"pool {DEDICATED_V6} is full: its 3 addresses")
        api.delete("/v1/apps/ded-a").raise_for_status()  # a deleted app's addresses come back
        wait_app_gone(api, "ded-a")
        assert not pool_route()
        assert [allocate(api, "ded-b", "v4").json()["ip"]] == ["127.0.231.2"]
        assert [allocate(api, "ded-b", "v6").json()["ip"] for _ in range(3)] == v6

        # A restart binds them again; the route goes at shutdown and comes back with the addresses.
        server.stop()
        assert not pool_route()
        server.start()
        listed = sorted(ip["ip"] for ip in api.get("/v1/apps/ded-b/ip_assignments").json()["ips"])
        assert listed == sorted(["127.0.231.1", "127.0.231.2", *v6]) and pool_route()
        for address in v6:
            assert api.delete(f"/v1/apps/ded-b/ip_assignments/{address}").status_code == 204
        assert not pool_route()

        # A route that was there before the daemon is not the daemon's to remove.
        subprocess.run(["ip", "-6", "route", "add", "unreachable", DEDICATED_V6], check=True)
        try:
            assert allocate(api, "ded-b", "v6").json()["ip"] == v6[0]
            assert api.delete(f"/v1/apps/ded-b/ip_assignments/{v6[0]}").status_code == 204
            server.stop()
            assert pool_route()
            server.start()
        finally:
            subprocess.run(["ip", "-6", "route", "del", "unreachable", DEDICATED_V6], check=False)
