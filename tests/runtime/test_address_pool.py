"""The organisation subnets and machine addresses of the IPv4 pool, and how orgs.json keeps them."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from aerodrome.core import CapacityError, FailedPreconditionError, InvalidArgumentError
from aerodrome.runtime.runc.network import AddressPool

POOL = "10.99.0.0/16"


def test_a_larger_org_subnet_holds_more_than_a_slash_20(tmp_path: Path) -> None:
    pool = AddressPool(tmp_path / "orgs.json", "10.96.0.0/14", org_prefixlen=16)
    addresses = [pool.allocate(f"m{i}", 7) for i in range(5000)]
    assert len({a.ipv4 for a in addresses}) == 5000
    assert all(ipaddress.IPv4Address(a.ipv4) in ipaddress.IPv4Network("10.96.0.0/16") for a in addresses)
    assert addresses[-1].subnet4 == "10.96.0.0/16"


def test_the_lowest_free_address_is_reused(tmp_path: Path) -> None:
    pool = AddressPool(tmp_path / "orgs.json", POOL, org_prefixlen=28)
    first, second, third = (pool.allocate(f"m{i}", 1) for i in range(3))
    pool.release(first)
    pool.release(third)
    assert pool.allocate("again", 1).ipv4 == first.ipv4
    assert pool.allocate("next", 1).ipv4 == third.ipv4
    assert second.ipv4 == "10.99.0.3"


def test_a_full_org_subnet_refuses_another_machine(tmp_path: Path) -> None:
    pool = AddressPool(tmp_path / "orgs.json", POOL, org_prefixlen=29)  # hosts .2 to .6
    assert [pool.allocate(f"m{i}", 1).ipv4 for i in range(5)][-1] == "10.99.0.6"
    with pytest.raises(CapacityError, match=r"subnet 10\.99\.0\.0/29 on this host is full"):
        pool.allocate("one-too-many", 1)


def test_a_full_org_subnet_takes_machines_again_once_one_is_released(tmp_path: Path) -> None:
    pool = AddressPool(tmp_path / "orgs.json", POOL, org_prefixlen=30)  # one machine: .2
    first = pool.allocate("m1", 1)
    with pytest.raises(CapacityError):
        pool.allocate("m2", 1)
    pool.release(first)
    assert pool.allocate("m2", 1).ipv4 == first.ipv4


def test_the_pools_subnets_are_reused_once_an_org_gives_its_own_back(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    pool = AddressPool(orgs, "10.99.0.0/29", org_prefixlen=30)  # two organisations
    first, second = pool.allocate("a", 1), pool.allocate("b", 2)
    with pytest.raises(CapacityError, match=r"machine pool 10\.99\.0\.0/29 holds 2 /30 subnets"):
        pool.allocate("c", 3)
    pool.release(first)
    assert pool.empty_orgs() == [1]
    assert pool.release_org(1) == ("10.99.0.0/30", "fdaa:0:0:1::/64")
    again = AddressPool(orgs, "10.99.0.0/29", org_prefixlen=30)  # what a restart reads
    again.adopt(second)
    assert again.allocate("c", 3).subnet4 == first.subnet4


def test_org_slots_and_their_size_survive_a_restart(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    pool = AddressPool(orgs, POOL, org_prefixlen=24)
    pool.allocate("a", 1)
    second_org = pool.allocate("b", 2)
    assert second_org.subnet4 == "10.99.1.0/24"
    again = AddressPool(orgs, POOL, org_prefixlen=24)
    again.adopt(second_org)
    assert again.allocate("c", 2).ipv4 == "10.99.1.3"
    assert again.allocate("d", 3).subnet4 == "10.99.2.0/24"


def test_a_different_subnet_size_is_refused_once_orgs_have_slots(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    AddressPool(orgs, POOL, org_prefixlen=24).allocate("a", 1)
    with pytest.raises(FailedPreconditionError, match="have /24 subnets"):
        AddressPool(orgs, POOL, org_prefixlen=20)
    assert json.loads(orgs.read_text()) == {"pool": POOL, "org_prefixlen": 24, "slots": {"1": 0}}


def test_another_pool_is_refused_once_orgs_have_slots(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    AddressPool(orgs, POOL, org_prefixlen=24).allocate("a", 1)
    with pytest.raises(FailedPreconditionError, match=f"machine pool {POOL}; the pool cannot change"):
        AddressPool(orgs, "10.98.0.0/16", org_prefixlen=24)
    assert AddressPool(orgs, POOL, org_prefixlen=24).allocate("b", 1).subnet4 == "10.99.0.0/24"


def test_a_host_without_orgs_takes_any_subnet_size(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    orgs.write_text("{}")
    assert AddressPool(orgs, POOL, org_prefixlen=18).allocate("a", 1).subnet4 == "10.99.0.0/18"


def test_bare_slots_from_before_the_size_was_recorded_are_slash_20(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps({"5": 1}))
    assert AddressPool(orgs, POOL).allocate("a", 5).subnet4 == "10.99.16.0/20"
    with pytest.raises(FailedPreconditionError):
        AddressPool(orgs, POOL, org_prefixlen=16)


@pytest.mark.parametrize("prefixlen", [15, 31])
def test_an_org_subnet_must_fit_the_pool_and_hold_a_machine(tmp_path: Path, prefixlen: int) -> None:
    with pytest.raises(InvalidArgumentError, match=f"/{prefixlen} does not fit"):
        AddressPool(tmp_path / "orgs.json", POOL, org_prefixlen=prefixlen)
