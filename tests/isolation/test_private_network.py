"""The private network across hosts (6PN): three `aerodrome agent` hosts, each in a network namespace of its own,
and one `serve` in another, joined by a bridge (tests/support/hosts.py). Machines of one organisation on
different hosts reach each other at their IPv6 addresses; another organisation's machine is refused; the edge
serves an app whose machine is on another host, over the same routes; the machines' lifecycle works on every
host, and nothing is left behind in any namespace."""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aerodrome.core import HostState
from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.hosts import REGIONS, Cluster, new_cluster
from tests.support.services import SELF_NAMING, http_service

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]
HOSTS = ["host-a", "host-b", "host-c"]
SERVICE = http_service(autostart=False)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """The hosts and serve; afterwards everything destroyed through the API and every host checked clean."""
    made = new_cluster(HOSTS)
    assert made.server is not None
    try:
        yield made
        made.server.destroy_everything()
        machine_ids = made.server.machine_ids()
        made.stop()
        found = made.leftovers(machine_ids)
    finally:
        made.close()
    shutil.rmtree(made.workdir, ignore_errors=True)
    assert found == [], "the test left on the hosts:\n  " + "\n  ".join(found)


def org_of(private_ip: str) -> int:
    """The organisation's network id in a 6PN address (network.org_prefix6: the third and fourth groups)."""
    return int(ipaddress.IPv6Address(private_ip)) >> 64 & 0xFFFF_FFFF


def machine_on(api: httpx.Client, app: str, host: str, org: str, image: str, **extra: Any) -> dict[str, Any]:
    """A started machine of a new app of `org`, placed on `host` by asking its region."""
    assert api.post("/v1/apps", json={"app_name": app, "org_slug": org}).status_code == 201, app
    config = {"image": image, "init": {"exec": ["sh", "-c", SELF_NAMING]}, **extra}
    machine = create_machine(api, app, config, region=REGIONS[HOSTS.index(host)])
    wait_for(api, app, machine["id"], "started")
    return machine


def running_on(cluster: Cluster, host: str, machine_id: str) -> bool:
    agent = next(agent for agent in cluster.agents if agent.name == host)
    return agent.status(machine_id).state is HostState.RUNNING


def fetch_from(api: httpx.Client, app: str, machine: dict[str, Any], address: str) -> dict[str, Any]:
    """The page at http://[address]:8080/, from inside the machine (tried a few times: a dropped connection
    waits out nc's 2 s each); exit_code 0 only once a page came back."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    answer = f"out=$({request} | nc -w 2 {address} 8080)"
    script = f'for i in 1 2 3; do {answer}; case "$out" in *" 200 OK"*) echo "$out"; exit 0;; esac; done; exit 1'
    return machine_exec(api, app, machine["id"], "sh", "-c", script)


def test_one_organisation_reaches_across_hosts_and_no_other_does(cluster: Cluster) -> None:
    server = cluster.server
    assert server is not None
    image = server.push_image("busybox")
    server.cli("orgs", "create", "second")
    second = server.cli("tokens", "create", "--org", "second").strip()
    with server.client() as api, server.client(second) as other_api:
        on_a = machine_on(api, "six-a", "host-a", "personal", image)
        on_b = machine_on(api, "six-b", "host-b", "personal", image)
        stranger = machine_on(other_api, "six-other", "host-c", "second", image)
        for host, machine in (("host-a", on_a), ("host-b", on_b), ("host-c", stranger)):
            assert running_on(cluster, host, machine["id"])
        assert org_of(on_a["private_ip"]) == org_of(on_b["private_ip"]) != org_of(stranger["private_ip"])

        # the same organisation, both ways across hosts
        assert fetch_from(api, "six-a", on_a, on_b["private_ip"])["stdout"].splitlines()[-1] == on_b["id"]
        assert fetch_from(api, "six-b", on_b, on_a["private_ip"])["stdout"].splitlines()[-1] == on_a["id"]
        # another organisation's machine on a third host: routed, and dropped by the firewall
        refused = fetch_from(other_api, "six-other", stranger, on_a["private_ip"])
        assert refused["exit_code"] != 0 and on_a["id"] not in refused["stdout"], refused
        # nor the other way
        assert fetch_from(api, "six-a", on_a, stranger["private_ip"])["exit_code"] != 0
        # IPv4 private addresses stay on their host (the low 32 bits of the 6PN address)
        ipv4 = ipaddress.IPv4Address(int(ipaddress.IPv6Address(on_b["private_ip"])) & 0xFFFF_FFFF)
        assert fetch_from(api, "six-a", on_a, str(ipv4))["exit_code"] != 0

        # the lifecycle of a machine on another host: stop, start, and it is reached again
        assert api.post(f"/v1/apps/six-b/machines/{on_b['id']}/stop").status_code == 200
        wait_for(api, "six-b", on_b["id"], "stopped")
        assert fetch_from(api, "six-a", on_a, on_b["private_ip"])["exit_code"] != 0
        assert api.post(f"/v1/apps/six-b/machines/{on_b['id']}/start").status_code == 200
        wait_for(api, "six-b", on_b["id"], "started")
        assert fetch_from(api, "six-a", on_a, on_b["private_ip"])["stdout"].splitlines()[-1] == on_b["id"]


def test_the_edge_serves_a_machine_on_another_host(cluster: Cluster) -> None:
    server = cluster.server
    assert server is not None
    image = server.push_image("busybox")
    with server.client() as api:
        machine = machine_on(api, "far", "host-c", "personal", image, services=[SERVICE])
        assert running_on(cluster, "host-c", machine["id"])
        url = f"http://127.0.0.1:{server.edge_http_port}/"
        for _ in range(3):
            response = httpx.get(url, headers={"host": "far.localhost"}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.text.strip() == machine["id"]
