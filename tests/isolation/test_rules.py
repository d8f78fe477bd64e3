"""The decisions behind the isolation rules, without a host: which routes clash with the machines' ranges, what
egress may be opened, how aerodrome's rules get ahead of the host's, and what an egress change writes."""

from __future__ import annotations

import ipaddress

import pytest

from aerodrome.core import InvalidArgumentError
from aerodrome.runtime.runc.egress import OUT_CHAIN, Egress, check_allow, check_uplink, out_chain, plan
from aerodrome.runtime.runc.iptables import first_in_chain, parse
from aerodrome.runtime.runc.routes import Network, conflict

POOL = "172.30.0.0/16"
POOL4 = ipaddress.IPv4Network(POOL)
PREFIX6 = ipaddress.IPv6Network("fdaa::/16")


@pytest.mark.parametrize(
    ("route", "prefix"),
    [
        ({"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"}, POOL4),
        ({"type": "unreachable", "dst": POOL}, POOL4),  # aerodrome's own
        ({"dst": "172.30.0.5", "dev": "ad-0123456789ab"}, POOL4),  # a machine's
        ({"type": "local", "dst": "172.30.0.1", "dev": "ad-0123456789ab", "table": "local"}, POOL4),  # its gateway
        ({"dst": "192.0.2.0/24", "dev": "eth0"}, POOL4),
        ({"type": "unreachable", "dst": "fdaa::/16", "dev": "lo"}, PREFIX6),
        ({"dst": "fdaa::1:1:0:cde0:d071", "dev": "lo"}, PREFIX6),  # a flycast address the edge bound
        ({"type": "local", "dst": "fdaa::1:1:0:cde0:d071", "dev": "lo", "table": "local"}, PREFIX6),
        ({"dst": "fd00::/64", "dev": "eth0"}, PREFIX6),
        ({"type": "local", "dst": "fdaa:0:0:1::1", "dev": "if14852", "table": "local"}, PREFIX6),  # device gone
    ],
)
def test_routes_that_leave_the_machine_ranges_to_aerodrome(route: dict[str, str], prefix: Network) -> None:
    assert not conflict(route, prefix)


@pytest.mark.parametrize(
    ("route", "prefix"),
    [
        ({"dst": "172.30.5.0/24", "dev": "eth1"}, POOL4),  # inside the pool
        ({"dst": "172.16.0.0/12", "dev": "tun0"}, POOL4),  # around it: a VPN's
        ({"type": "unreachable", "dst": "172.30.0.0/17"}, POOL4),  # not exactly the pool's
        ({"type": "unreachable", "dst": POOL, "table": "100"}, POOL4),  # not in the main table
        ({"type": "local", "dst": "172.30.9.9", "dev": "eth0", "table": "local"}, POOL4),  # a host address in it
        ({"dst": "fc00::/7", "dev": "wg0"}, PREFIX6),
        ({"dst": "fdaa:0:99::/48", "dev": "eth1"}, PREFIX6),
        ({"dst": "fdaa::1:0:0:0:5", "dev": "lo"}, PREFIX6),  # on lo, but no flycast address
    ],
)
def test_routes_that_claim_part_of_the_machine_ranges(route: dict[str, str], prefix: Network) -> None:
    assert conflict(route, prefix)


def test_allowed_networks_are_ipv4_outside_the_pool_and_spelled_for_iptables() -> None:
    assert check_allow(["192.168.1.10", " 10.0.0.0/8", "192.168.1.10/32"], POOL) == ("192.168.1.10/32", "10.0.0.0/8")
    for bad, reason in [
        ("192.168.1.10/24", "has host bits set"),
        ("fd12::/64", "IPv6 has no egress"),
        ("172.30.4.0/24", "overlaps the machine pool"),
        ("172.16.0.0/12", "overlaps the machine pool"),
        ("lan", "not a network"),
    ]:
        with pytest.raises(InvalidArgumentError, match=reason):
            check_allow([bad], POOL)


def test_an_uplink_is_an_interface_name() -> None:
    assert check_uplink("eth0.100") == "eth0.100"
    for bad in ("../../all", "eth0 -j ACCEPT", "a" * 16, ""):
        with pytest.raises(InvalidArgumentError, match="not an interface name"):
            check_uplink(bad)


JUMP_IN = "-i ad-+ -j AERODROME"
JUMP_OUT = "-o ad-+ -j AERODROME"


def test_aerodromes_rules_are_put_first_once() -> None:
    assert first_in_chain([JUMP_OUT, JUMP_IN, "-j ACCEPT"], "FORWARD", [JUMP_IN, JUMP_OUT]) == []
    behind = first_in_chain(["-j ACCEPT", JUMP_IN, JUMP_OUT], "FORWARD", [JUMP_IN, JUMP_OUT])
    assert behind == [
        f"-D FORWARD {JUMP_IN}",
        f"-D FORWARD {JUMP_OUT}",
        f"-I FORWARD 1 {JUMP_OUT}",
        f"-I FORWARD 1 {JUMP_IN}",
    ]
    twice = first_in_chain([JUMP_IN, "-j ACCEPT", JUMP_IN], "FORWARD", [JUMP_IN])
    assert twice == [f"-D FORWARD {JUMP_IN}", f"-D FORWARD {JUMP_IN}", f"-I FORWARD 1 {JUMP_IN}"]


def _saved(filter_rules: list[str], nat_rules: list[str]) -> str:
    """Rules as iptables-save prints them."""
    filter_table = ["*filter", ":FORWARD ACCEPT [0:0]", ":AERODROME - [0:0]", f":{OUT_CHAIN} - [0:0]", *filter_rules]
    return "\n".join([*filter_table, "COMMIT", "*nat", ":POSTROUTING ACCEPT [0:0]", *nat_rules, "COMMIT"])


def test_turning_a_pools_egress_off_keeps_other_pools_egress() -> None:
    other = "172.31.0.0/16"
    out = out_chain({POOL: ["192.168.5.0/24"], other: ["10.1.0.0/16"]}, [POOL, other])
    tables = parse(
        _saved(
            [
                f"-A AERODROME -s {POOL} -o eth9 -j {OUT_CHAIN}",
                f"-A AERODROME -s {POOL} -o eth8 -j ACCEPT",  # an older version's egress
                f"-A AERODROME -s {other} -o eth9 -j {OUT_CHAIN}",
                *(f"-A {OUT_CHAIN} {rule}" for rule in out),
            ],
            [f"-A POSTROUTING -s {POOL} -o eth9 -j MASQUERADE", f"-A POSTROUTING -s {other} -o eth9 -j MASQUERADE"],
        )
    )
    change = plan(tables, POOL, Egress())
    assert change.script["nat"] == [f"-D POSTROUTING -s {POOL} -o eth9 -j MASQUERADE"]
    filter_lines = change.script["filter"]
    assert f"-D AERODROME -s {POOL} -o eth9 -j {OUT_CHAIN}" in filter_lines
    assert f"-D AERODROME -s {POOL} -o eth8 -j ACCEPT" in filter_lines
    rebuilt = [line.removeprefix(f"-A {OUT_CHAIN} ") for line in filter_lines if line.startswith(f"-A {OUT_CHAIN}")]
    assert rebuilt == out_chain({other: ["10.1.0.0/16"]}, [other])
    assert change.enable == [] and change.disable == []  # eth9 still carries the other pool's egress
