"""Machines are contained: from inside real machines, what they reach and what they do not, seen by the listener.

Each test runs a real `aerodrome serve` on a host of its own (hostns.py): a network namespace with IPv4
forwarding off, an uplink to an "outside" namespace that holds stand-ins for the internet, a LAN, a CGNAT
address and the cloud metadata service, and an interface with addresses of the host's own. A connection that
should not happen is checked where it would land: the listener must have accepted nothing.
"""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aerodrome.cli.pools import release_pool
from aerodrome.runtime.runc.network import host_iface_name
from tests.api.helpers import create_machine, machine_exec, wait_app_gone, wait_for
from tests.isolation.hostns import (
    ALLOWED_LAN,
    HOST_ADDRESS4,
    HOST_ADDRESS6,
    OUTSIDE,
    PORT,
    UPLINK_ADDRESS,
    Listener,
    OwnHost,
    gateways,
    own_host,
)
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

# Every machine listens on PORT and appends the first line of each connection to /tmp/hits.
LISTENER = (
    "/bin/sh",
    "-c",
    "printf '#!/bin/sh\\nread line; echo \"$line\" >> /tmp/hits\\n' > /tmp/hit; chmod +x /tmp/hit; "
    f"touch /tmp/hits; exec nc -ll -p {PORT} -e /tmp/hit",
)
CONNECT_TIMEOUT = 2  # seconds each attempt from a machine waits for a connection that is dropped


@pytest.fixture
def host() -> Iterator[OwnHost]:
    with own_host() as made:
        yield made


def second_org(server: Server) -> str:
    """A token of a second organisation."""
    server.cli("orgs", "create", "second")
    return server.cli("tokens", "create", "--org", "second").strip()


def listening_machine(server: Server, api: httpx.Client, app: str, org: str = "personal") -> dict[str, Any]:
    assert api.post("/v1/apps", json={"app_name": app, "org_slug": org}).status_code == 201
    image = server.image("busybox")
    machine = create_machine(api, app, {"image": image, "init": {"exec": list(LISTENER)}})
    wait_for(api, app, machine["id"], "started")
    script = f"for i in $(seq 100); do netstat -ltn | grep -q ':{PORT} ' && exit 0; sleep 0.05; done; exit 1"
    assert machine_exec(api, app, machine["id"], "sh", "-c", script)["exit_code"] == 0
    return machine


def connect_from(api: httpx.Client, app: str, machine: dict[str, Any], targets: dict[str, tuple[str, int]]) -> None:
    """From inside the machine, open a connection to every target at once and send the target's name."""
    lines = [
        f"{{ echo '{name}' | nc -w {CONNECT_TIMEOUT} {address} {port}; }} >/dev/null 2>&1 &"
        for name, (address, port) in targets.items()
    ]
    machine_exec(api, app, machine["id"], "sh", "-c", "\n".join([*lines, "wait"]))
    # Every attempt has ended (connected, or dropped until its timeout); a machine's listener writes its line
    # down a moment after the client is done.
    time.sleep(0.3)


def hits(api: httpx.Client, app: str, machine: dict[str, Any]) -> set[str]:
    return set(machine_exec(api, app, machine["id"], "cat", "/tmp/hits")["stdout"].splitlines())


def delete_app(api: httpx.Client, app: str) -> None:
    if api.delete(f"/v1/apps/{app}").status_code == 202:
        wait_app_gone(api, app)


def host_listeners(t: OwnHost, *machines: dict[str, Any]) -> dict[str, Listener]:
    """Listeners on the host's addresses: its own interface's, the uplink's, each organisation's gateways."""
    found = {
        "host v4": t.listen(HOST_ADDRESS4),
        "host v6": t.listen(HOST_ADDRESS6),
        "uplink address": t.listen(UPLINK_ADDRESS),
    }
    for n, machine in enumerate(machines):
        _, gateway4, gateway6 = gateways(machine["private_ip"])
        found[f"gateway{n} v4"] = t.listen(gateway4)
        found[f"gateway{n} v6"] = t.listen(gateway6)
    return found


def outside_listeners(t: OwnHost) -> dict[str, Listener]:
    return {
        name: t.listen(address, 80 if name == "metadata" else PORT, outside=True) for name, address in OUTSIDE.items()
    }


def received(listeners: dict[str, Listener]) -> dict[str, bool]:
    """Whether each listener got the connection meant for it (and nothing else got any)."""
    got = {name: listener.received() for name, listener in listeners.items()}
    strays = {name: lines for name, lines in got.items() if set(lines) - {name}}
    assert not strays, f"connections reached listeners they were not sent to: {strays}"
    return {name: name in lines for name, lines in got.items()}


def targets_of(listeners: dict[str, Listener]) -> dict[str, tuple[str, int]]:
    return {name: listener.sock.getsockname()[:2] for name, listener in listeners.items()}


def aerodrome_leftovers(t: OwnHost, pool: str) -> list[str]:
    """What the daemon installs on its host, still there."""
    rules = [line for line in t.iptables().splitlines() if "AERODROME" in line or "ad-+" in line or "aerodrome" in line]
    routes = [
        line for line in t.routes().splitlines() if line.startswith(("unreachable " + pool, "unreachable fdaa::/16"))
    ]
    return rules + routes


def test_machines_reach_their_organisation_the_internet_and_allowed_networks_only(host: OwnHost) -> None:
    t = host
    assert t.sysctl("ipv4/ip_forward") == "0" and t.sysctl("ipv6/conf/all/forwarding") == "0"
    with running_server("--egress", "--egress-allow", ALLOWED_LAN) as server:
        server.push_image("busybox")
        other_token = second_org(server)
        with server.client() as api, server.client(other_token) as other:
            try:
                source = listening_machine(server, api, "iso-a")
                peer = listening_machine(server, api, "iso-a2")  # the same organisation, another app
                stranger = listening_machine(server, other, "iso-b", "second")
                machine_targets = {
                    "same org v4": (gateways(peer["private_ip"])[0], PORT),
                    "same org v6": (peer["private_ip"], PORT),
                    "other org v4": (gateways(stranger["private_ip"])[0], PORT),
                    "other org v6": (stranger["private_ip"], PORT),
                }
                listeners = {**host_listeners(t, source, stranger), **outside_listeners(t)}
                connect_from(api, "iso-a", source, {**machine_targets, **targets_of(listeners)})

                in_machines = hits(api, "iso-a2", peer) | hits(other, "iso-b", stranger)
                reached = {name: name in in_machines for name in machine_targets} | received(listeners)
                expected = {name: False for name in reached}
                expected |= dict.fromkeys(["same org v4", "same org v6", "public", "allowed LAN"], True)
                assert reached == expected

                check_forwarding_per_interface(t, source)
                check_org_rules_go_with_the_org(t, other, stranger, source)
            finally:
                delete_app(other, "iso-b")
    assert aerodrome_leftovers(t, server.machine_pool) == []
    assert t.sysctl(f"ipv4/conf/{t.uplink}/forwarding") == "0", "the uplink forwards after the daemon left"
    assert t.sysctl("ipv4/ip_forward") == "0" and t.sysctl("ipv6/conf/all/forwarding") == "0"


def check_forwarding_per_interface(t: OwnHost, machine: dict[str, Any]) -> None:
    """Machines' traffic was forwarded (same org, the internet) with the host-wide switches off."""
    veth = host_iface_name(machine["id"])
    assert t.sysctl("ipv4/ip_forward") == "0" and t.sysctl("ipv6/conf/all/forwarding") == "0"
    assert t.sysctl(f"ipv4/conf/{veth}/forwarding") == "1"
    assert t.sysctl(f"ipv6/conf/{veth}/force_forwarding") == "1"
    assert t.sysctl(f"ipv4/conf/{t.uplink}/forwarding") == "1"  # return traffic of egress
    assert t.sysctl(f"ipv4/conf/{t.own}/forwarding") == "0"
    assert '"aerodrome: uplink0 forwards to machines only" -j DROP' in t.iptables()


def org_rules(machine: dict[str, Any]) -> list[str]:
    """The rules that open a machine's organisation to itself: IPv4, IPv6, and its flycast addresses."""
    subnet4 = ipaddress.IPv4Network((gateways(machine["private_ip"])[0], 20), strict=False)
    subnet6 = ipaddress.IPv6Network((machine["private_ip"], 64), strict=False)
    return [f"-s {subnet4} -d {subnet4} -j ACCEPT", f"-s {subnet6} -d {subnet6} -j ACCEPT", f"-s {subnet6} -d"]


def check_org_rules_go_with_the_org(
    t: OwnHost, other: httpx.Client, stranger: dict[str, Any], source: dict[str, Any]
) -> None:
    """Deleting the second organisation's only app takes its subnets' rules off the host, and only those."""
    assert all(rule in t.iptables() for rule in org_rules(stranger) + org_rules(source))
    delete_app(other, "iso-b")
    rules = t.iptables()
    assert [rule for rule in org_rules(stranger) if rule in rules] == []
    assert all(rule in rules for rule in org_rules(source))


def test_without_egress_machines_reach_only_the_allowed_networks(host: OwnHost) -> None:
    t = host
    with running_server("--egress-allow", ALLOWED_LAN) as server:  # the test servers run with --no-egress
        server.push_image("busybox")
        with server.client() as api:
            source = listening_machine(server, api, "iso-a")
            listeners = outside_listeners(t)
            connect_from(api, "iso-a", source, targets_of(listeners))
            assert received(listeners) == {name: name == "allowed LAN" for name in OUTSIDE}
            assert t.sysctl(f"ipv4/conf/{t.uplink}/forwarding") == "1"
    assert aerodrome_leftovers(t, server.machine_pool) == []
    assert t.sysctl(f"ipv4/conf/{t.uplink}/forwarding") == "0"


ACCEPT_ALL = "\n".join(
    f"{tool} -I {chain} 1 -j ACCEPT" for tool in ("iptables", "ip6tables") for chain in ("INPUT", "FORWARD")
)


def test_a_host_accept_rule_before_aerodrome_opens_nothing_to_machines(host: OwnHost) -> None:
    """The host's ACCEPTs ahead of aerodrome's jumps, before the daemon starts and again while it is down."""
    t = host
    t.sh(ACCEPT_ALL)
    with running_server() as server:
        server.push_image("busybox")
        other_token = second_org(server)
        with server.client() as api, server.client(other_token) as other:
            try:
                source = listening_machine(server, api, "iso-a")
                stranger = listening_machine(server, other, "iso-b", "second")
                check_nothing_reached(t, api, source, stranger, other)

                server.stop()  # machines keep running; the host's rules move ahead again meanwhile
                t.sh(ACCEPT_ALL)
                server.start()
                first = t.sh("iptables -S INPUT 1; iptables -S FORWARD 1; iptables -S FORWARD 2; ip6tables -S INPUT 1")
                assert all("ad-+" in rule for rule in first.splitlines()), first
                check_nothing_reached(t, api, source, stranger, other)
            finally:
                delete_app(other, "iso-b")
    assert aerodrome_leftovers(t, server.machine_pool) == []
    assert t.sh("iptables -S INPUT; ip6tables -S FORWARD").count("-j ACCEPT") == 4  # the host's, untouched


def check_nothing_reached(
    t: OwnHost, api: httpx.Client, source: dict[str, Any], stranger: dict[str, Any], other: httpx.Client
) -> None:
    for listener in t.listeners:
        listener.close()
    t.listeners.clear()
    listeners = {**host_listeners(t, source), **outside_listeners(t)}
    machine_targets = {
        "other org v4": (gateways(stranger["private_ip"])[0], PORT),
        "other org v6": (stranger["private_ip"], PORT),
    }
    connect_from(api, "iso-a", source, {**machine_targets, **targets_of(listeners)})
    assert hits(other, "iso-b", stranger) == set()
    assert received(listeners) == {name: False for name in listeners}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_route_in_the_machine_pool_refuses_the_start_and_is_left_alone(host: OwnHost, family: str) -> None:
    t = host
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-serve-"))
    server = Server(workdir)
    pool_base = server.machine_pool.rsplit(".", 2)[0]
    prefix = f"{pool_base}.5.0/24" if family == "ipv4" else "fdaa:0:99::/48"
    overlapped = f"the machine IPv4 pool {server.machine_pool}" if family == "ipv4" else "the machines' IPv6 prefix"
    t.sh(f"ip route add {prefix} dev {t.own}")
    show = f"ip -{family[-1]} route show {prefix}"
    before = t.sh(show)
    try:
        with pytest.raises(RuntimeError, match="exited early"):
            server.start()
        assert server.process is not None and server.process.returncode == 2
        log = server.log_path.read_text()
        assert (
            f"aerodrome: the host already has a unicast route to {prefix} dev {t.own}, which overlaps {overlapped}"
            in log
        )
        assert "Traceback" not in log, log
        assert t.sh(show) == before != ""
        assert aerodrome_leftovers(t, server.machine_pool) == []
    finally:
        server.stop()
        release_pool(server.machine_pool)
        shutil.rmtree(workdir)  # the start was refused: no machine, no mount
