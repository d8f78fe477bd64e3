"""The private network's addressing and routes to other hosts (runtime/runc/peers.py), as pure functions."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from aerodrome.core import InvalidArgumentError
from aerodrome.runtime.runc.network import AddressPool
from aerodrome.runtime.runc.peers import PROTO, Peer, check_peers, machines_prefix6, parse_peer, route_lines


def test_a_peer_is_an_underlay_address_and_its_pool_or_the_address_alone() -> None:
    assert parse_peer("fd00::2=172.31.0.0/16") == Peer("fd00::2", "172.31.0.0/16")
    assert parse_peer("fd00::9") == Peer("fd00::9", "")
    for bad in ("10.0.0.2=172.31.0.0/16", "fd00::2=172.31.0.1/16", "fdaa::2=172.31.0.0/16", "fd00::2=nope"):
        with pytest.raises(InvalidArgumentError):
            parse_peer(bad)


def test_overlapping_pools_are_refused() -> None:
    check_peers("172.30.0.0/16", [Peer("fd00::2", "172.31.0.0/16"), Peer("fd00::9")])
    with pytest.raises(InvalidArgumentError, match="overlap"):
        check_peers("172.30.0.0/16", [Peer("fd00::2", "172.30.64.0/18")])


def test_a_hosts_machines_of_an_organisation_are_one_prefix(tmp_path: Path) -> None:
    pool = AddressPool(tmp_path / "orgs.json", "172.31.0.0/16")
    machine = pool.allocate("m1", 7)
    prefix = ipaddress.IPv6Network(machines_prefix6(7, "172.31.0.0/16"))
    assert prefix.prefixlen == 112 and ipaddress.IPv6Address(machine.ipv6) in prefix
    assert ipaddress.IPv6Address(machine.ipv6) not in ipaddress.IPv6Network(machines_prefix6(7, "172.30.0.0/16"))
    assert ipaddress.IPv6Address(machine.ipv6) not in ipaddress.IPv6Network(machines_prefix6(8, "172.31.0.0/16"))


def test_routes_go_to_each_peer_with_machines_for_each_organisation() -> None:
    peers = [Peer("fd00::2", "172.31.0.0/16"), Peer("fd00::9")]
    assert route_lines([7], peers, "replace") == [
        f"route replace {machines_prefix6(7, '172.31.0.0/16')} via fd00::2 proto {PROTO}"
    ]
