"""From inside real machines: the private network's names, the API at `_api.internal:4280` and on /.fly/api, the
environment Fly sets, and that nothing else of the host opens to machines.

Each test runs `aerodrome serve --dns` on a host of its own (tests/isolation/hostns.py), so its resolver's
addresses (fdaa::3 and 169.254.0.3) are the test's alone, and deleting the namespaces removes whatever is left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from aerodrome.inside import RESOLVER_IPV4, RESOLVER_IPV6
from aerodrome.runtime.runc.layout import Layout
from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.api.test_token_checks import check_machine_tokens
from tests.isolation.conftest import python_files
from tests.isolation.hostns import OwnHost, gateways, own_host
from tests.isolation.test_network import aerodrome_leftovers, connect_from, delete_app, received, second_org
from tests.runtime.runc_fixtures import host_leftovers
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

IDLE = ("sleep", "3600")
FLY_API_CLIENT = Path(__file__).parent / "fly_api_client.py"


@pytest.fixture
def host() -> Iterator[OwnHost]:
    with own_host() as made:
        yield made


def machine(api: httpx.Client, server: Server, app: str, **config: Any) -> dict[str, Any]:
    made = create_machine(api, app, {"image": server.image("busybox"), "init": {"exec": list(IDLE)}, **config})
    wait_for(api, app, made["id"], "started")
    return made


def app(api: httpx.Client, name: str, org: str = "personal") -> None:
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": org}).status_code == 201


def lookup(api: httpx.Client, app_: str, inside: dict[str, Any], name: str, kind: str = "AAAA") -> str:
    """What busybox's nslookup, in the machine, prints for `name` (via /etc/resolv.conf's resolver)."""
    result = machine_exec(api, app_, inside["id"], "nslookup", f"-type={kind}", name)
    return str(result["stdout"]) + str(result["stderr"])


def v4(peer: dict[str, Any]) -> str:
    return gateways(peer["private_ip"])[0]


def test_names_answer_the_callers_organisation_with_started_machines_only(host: OwnHost) -> None:
    with running_server("--dns") as server:
        server.push_image("busybox")
        other_token = second_org(server)
        with server.client() as api, server.client(other_token) as other:
            try:
                app(api, "in-a")
                app(api, "in-b")
                app(other, "in-c", "second")
                a1 = machine(api, server, "in-a")
                a2 = machine(api, server, "in-a", metadata={"fly_process_group": "worker"})
                b1 = machine(api, server, "in-b")
                c1 = machine(other, server, "in-c")
                check_names(api, a1, a2, b1, c1)
                check_texts(api, a1, a2, b1)
                check_isolated(api, other, a1, c1)
                check_strangers_refused()
                # a stop shows in the very next answer
                assert api.post(f"/v1/apps/in-a/machines/{a2['id']}/stop").status_code == 200
                wait_for(api, "in-a", a2["id"], "stopped")
                after = lookup(api, "in-a", a1, "in-a.internal")
                assert a1["private_ip"] in after and a2["private_ip"] not in after
            finally:
                delete_app(other, "in-c")
    assert aerodrome_leftovers(host, server.machine_pool) == []


def check_names(api: httpx.Client, a1: dict[str, Any], a2: dict[str, Any], b1: dict[str, Any], c1: Any) -> None:
    resolv = machine_exec(api, "in-a", a1["id"], "cat", "/etc/resolv.conf")["stdout"]
    assert resolv == f"nameserver {RESOLVER_IPV6}\nnameserver {RESOLVER_IPV4}\n"
    both = (a1["private_ip"], a2["private_ip"])
    for name in ("in-a.internal", "global.in-a.internal", "iad.in-a.internal", "top2.nearest.of.in-a.internal"):
        found = lookup(api, "in-a", a1, name)
        assert all(ip in found for ip in both), (name, found)
        assert b1["private_ip"] not in found
    one = lookup(api, "in-a", a1, "top1.nearest.of.in-a.internal")
    assert sum(ip in one for ip in both) == 1
    vm = lookup(api, "in-a", a1, f"{a2['id']}.vm.in-a.internal")
    assert a2["private_ip"] in vm and a1["private_ip"] not in vm
    workers = lookup(api, "in-a", a1, "worker.process.in-a.internal")
    assert a2["private_ip"] in workers and a1["private_ip"] not in workers
    apps = lookup(api, "in-a", a1, "app.process.in-a.internal")
    assert a1["private_ip"] in apps and a2["private_ip"] not in apps
    assert a2["private_ip"] not in lookup(api, "in-a", a1, "ord.in-a.internal")
    assert v4(b1) in lookup(api, "in-a", a1, "in-b.internal", "A")  # another app of the organisation, over IPv4
    assert RESOLVER_IPV6 in lookup(api, "in-a", a1, "_api.internal")


def check_texts(api: httpx.Client, a1: dict[str, Any], a2: dict[str, Any], b1: dict[str, Any]) -> None:
    vms = lookup(api, "in-a", a1, "vms.in-a.internal", "TXT")
    assert f"{a1['id']} iad" in vms and f"{a2['id']} iad" in vms
    assert "iad" in lookup(api, "in-a", a1, "regions.in-a.internal", "TXT")
    assert "in-a,in-b" in lookup(api, "in-a", a1, "_apps.internal", "TXT")
    instances = lookup(api, "in-a", a1, "_instances.internal", "TXT")
    assert f"instance={b1['id']},app=in-b,ip={b1['private_ip']},region=iad" in instances


def check_isolated(api: httpx.Client, other: httpx.Client, a1: dict[str, Any], c1: dict[str, Any]) -> None:
    """Each organisation's names are its own: the other's apps do not exist."""
    across = lookup(api, "in-a", a1, "in-c.internal")
    assert "NXDOMAIN" in across and c1["private_ip"] not in across
    assert "in-a" not in lookup(other, "in-c", c1, "_apps.internal", "TXT")
    assert a1["private_ip"] not in lookup(other, "in-c", c1, "_instances.internal", "TXT")
    assert "NXDOMAIN" in lookup(other, "in-c", c1, "in-a.internal")


def check_strangers_refused() -> None:
    """Whoever is not a machine (here the host itself) is refused, over UDP and over TCP alike."""
    query = dns.message.make_query("in-a.internal", "AAAA")
    for ask in (dns.query.udp, dns.query.tcp):
        assert ask(query, RESOLVER_IPV4, timeout=5).rcode() == dns.rcode.REFUSED


def wget_api(api: httpx.Client, app_: str, inside: dict[str, Any], path: str, token: str | None) -> dict[str, Any]:
    """GET `path` of http://_api.internal:4280 from inside: the name resolved by the machine's resolver (busybox's
    static wget cannot resolve names itself), then the request to the address it answered."""
    header = f"--header 'Authorization: Bearer {token}'" if token else ""
    script = (
        "addr=$(nslookup -type=AAAA _api.internal | awk '/^Address: /{a=$2} END{print a}'); "
        f'exec timeout 10 wget -qO- {header} "http://[$addr]:4280{path}"'
    )
    return machine_exec(api, app_, inside["id"], "sh", "-c", script)


def test_the_api_is_reachable_from_inside_and_nothing_else_of_the_host(host: OwnHost) -> None:
    interpreter, files, modes = python_files(FLY_API_CLIENT)
    with running_server("--dns") as server:
        server.push_image("busybox", files={**files, "/fly_api_client.py": FLY_API_CLIENT.read_bytes()}, modes=modes)
        with server.client() as api:
            app(api, "api-a")
            app(api, "api-b")
            a1 = machine(api, server, "api-a", env={"PRIMARY_REGION": "ord"}, guest={"memory_mb": 512})
            url = "/v1/apps/api-a/machines"
            listed = wget_api(api, "api-a", a1, url, server.token)
            assert listed["exit_code"] == 0, listed
            assert [m["id"] for m in json.loads(listed["stdout"])] == [a1["id"]]
            refused = wget_api(api, "api-a", a1, url, None)
            assert refused["exit_code"] != 0 and "401" in refused["stderr"]
            check_fly_socket(server, api, a1, interpreter)
            check_machine_tokens(server, a1, "api-a")
            check_environment(api, a1)
            server.stop()  # the machine keeps running; the next daemon serves its socket again
            server.start()
            check_fly_socket(server, api, a1, interpreter)
            # the service addresses open only their ports; the gateways and the host none
            gateway4, gateway6 = gateways(a1["private_ip"])[1:]
            listeners = {
                name: host.listen(address)
                for name, address in {
                    "resolver v6": RESOLVER_IPV6,
                    "resolver v4": RESOLVER_IPV4,
                    "gateway v4": gateway4,
                    "gateway v6": gateway6,
                }.items()
            }
            connect_from(api, "api-a", a1, {n: lst.sock.getsockname()[:2] for n, lst in listeners.items()})
            assert received(listeners) == dict.fromkeys(listeners, False)
            delete_app(api, "api-a")
            delete_app(api, "api-b")
            assert asyncio.run(host_leftovers(server.data_dir / "runtime", [a1["id"]])) == []
    assert aerodrome_leftovers(host, server.machine_pool) == []


def check_fly_socket(server: Server, api: httpx.Client, a1: dict[str, Any], interpreter: str) -> None:
    """/.fly/api is in the machine, and the daemon serves it without a token, for the machine's own app only."""
    paths = [f"/v1/apps/api-a/machines/{a1['id']}", "/v1/apps/api-b/machines", "/v1/apps"]
    called = machine_exec(api, "api-a", a1["id"], interpreter, "-I", "-S", "/fly_api_client.py", *paths)
    assert called["exit_code"] == 0, called
    (own_status, own), (other_status, other), (apps_status, _) = json.loads(called["stdout"])
    assert own_status == 200 and own["id"] == a1["id"]
    assert other_status == 403 and "error" in other and apps_status == 403
    # the same socket, from the host's side: a path that climbs out of the app is refused too
    socket_path = Layout(server.data_dir / "runtime").machine(a1["id"]).fly / "api"
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://flaps") as fly:
        own = fly.get(f"/v1/apps/api-a/machines/{a1['id']}")
        assert own.status_code == 200 and own.json()["id"] == a1["id"]
        for path in ("/v1/apps/api-b/machines", "/v1/apps", "/v1/apps/api-a/../api-b/machines"):
            refused = fly.get(path)
            assert refused.status_code == 403 and "error" in refused.json(), path


def check_environment(api: httpx.Client, a1: dict[str, Any]) -> None:
    lines = machine_exec(api, "api-a", a1["id"], "env")["stdout"].splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert env["FLY_APP_NAME"] == "api-a"
    assert env["FLY_MACHINE_ID"] == env["FLY_ALLOC_ID"] == a1["id"]
    assert env["FLY_REGION"] == "iad" and env["PRIMARY_REGION"] == "ord"
    assert env["FLY_PRIVATE_IP"] == env["FLY_PUBLIC_IP"] == a1["private_ip"]
    assert env["FLY_MACHINE_VERSION"] == a1["instance_id"]
    assert env["FLY_IMAGE_REF"] == a1["config"]["image"]
    assert env["FLY_PROCESS_GROUP"] == "app" and env["FLY_VM_MEMORY_MB"] == "512"
    hosts = machine_exec(api, "api-a", a1["id"], "cat", "/etc/hosts")["stdout"]
    assert f"{a1['private_ip']}\t{a1['id']} fly-local-6pn" in hosts
    assert machine_exec(api, "api-a", a1["id"], "hostname")["stdout"].strip() == a1["id"]
