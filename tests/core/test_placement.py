"""Placement, pure: region, the volume's host, capacity left and spread decide; refusals are Fly's."""

from __future__ import annotations

import pytest

from aerodrome.core import (
    CapacityError,
    HostInfo,
    HostLoad,
    HostUnreachableError,
    MachineState,
    PlacementRequest,
    host_loads,
    place,
)
from tests.store.factories import make_machine

GIB = 1024**3
S = MachineState


def host(name: str, region: str = "iad", **fields: object) -> HostLoad:
    return HostLoad(name, region, **fields)  # type: ignore[arg-type]


def test_the_region_requested_picks_among_its_hosts() -> None:
    hosts = [host("a", "iad"), host("b", "ams"), host("c", "ams")]
    assert place(PlacementRequest("ams"), hosts) == "b"
    assert place(PlacementRequest("iad"), hosts) == "a"


def test_a_region_no_host_is_in_is_served_by_every_host() -> None:
    assert place(PlacementRequest("syd"), [host("b"), host("a")]) == "a"  # by name, as nothing else differs


def test_the_apps_machines_spread_across_hosts() -> None:
    hosts = [host("a", app_count=2), host("b", app_count=1), host("c", app_count=3)]
    assert place(PlacementRequest("iad"), hosts) == "b"


def test_with_spread_equal_the_host_with_more_memory_left_wins() -> None:
    hosts = [host("a", memory_mb=4096, used_memory_mb=3072), host("b", memory_mb=4096, used_memory_mb=1024)]
    assert place(PlacementRequest("iad", memory_mb=256), hosts) == "b"


def test_a_host_without_room_is_passed_over_and_none_left_is_fly_s_refusal() -> None:
    full = host("a", memory_mb=1024, used_memory_mb=1024)
    roomy = host("b", memory_mb=1024, used_memory_mb=0, app_count=5)
    assert place(PlacementRequest("iad", memory_mb=512), [full, roomy]) == "b"
    with pytest.raises(CapacityError) as refused:
        place(PlacementRequest("iad", memory_mb=2048), [full, roomy])
    assert refused.value.status == "insufficient_capacity"
    assert "region iad" in refused.value.message
    assert "host a 2048 MB of memory asked, 0 MB left" in refused.value.message


def test_unreported_capacity_bounds_nothing() -> None:
    assert place(PlacementRequest("iad", memory_mb=1_000_000, disk_bytes=10**15), [host("a")]) == "a"


def test_performance_cpus_count_and_shared_ones_do_not() -> None:
    busy = host("a", cpus=2, used_cpus=2)
    assert place(PlacementRequest("iad", cpus=8, cpu_kind="shared"), [busy]) == "a"
    with pytest.raises(CapacityError, match="performance CPUs"):
        place(PlacementRequest("iad", cpus=1, cpu_kind="performance"), [busy])


def test_disk_bounds_volumes_only() -> None:
    full = host("a", disk_bytes=10 * GIB, used_disk_bytes=10 * GIB)
    assert place(PlacementRequest("iad", memory_mb=256), [full]) == "a"  # a machine needs no volume space
    with pytest.raises(CapacityError, match="disk"):
        place(PlacementRequest("iad", disk_bytes=GIB), [full])


def test_unreachable_hosts_are_passed_over() -> None:
    hosts = [host("a", reachable=False), host("b", app_count=9)]
    assert place(PlacementRequest("iad"), hosts) == "b"
    with pytest.raises(CapacityError, match="host a is unreachable"):
        place(PlacementRequest("iad"), hosts[:1])


def test_a_volume_pins_its_machine_to_its_host_or_refuses() -> None:
    hosts = [host("a", app_count=0), host("b", "ams", app_count=7, memory_mb=1024, used_memory_mb=768)]
    assert place(PlacementRequest("iad", pinned_host="b"), hosts) == "b"  # the volume's host, whatever else
    with pytest.raises(CapacityError, match="where the volume is"):
        place(PlacementRequest("iad", memory_mb=512, pinned_host="b"), hosts)
    with pytest.raises(HostUnreachableError, match="host c"):
        place(PlacementRequest("iad", pinned_host="c"), hosts)
    down = [host("a", reachable=False)]
    with pytest.raises(HostUnreachableError):
        place(PlacementRequest("iad", pinned_host="a"), down)


def test_no_host_at_all_is_a_refusal() -> None:
    with pytest.raises(CapacityError, match="no host"):
        place(PlacementRequest("iad"), [])


def test_loads_count_what_resident_machines_hold_and_the_apps_own() -> None:
    guest = {"guest": {"cpus": 2, "cpu_kind": "performance", "memory_mb": 1024}}
    machines = [
        make_machine("m1", "web", state=S.STARTED, host="a", config=guest),
        make_machine("m2", "web", state=S.STOPPED, host="a", config=guest),  # holds nothing, still the app's
        make_machine("m3", "db", state=S.SUSPENDED, host="b", config={"guest": {"memory_mb": 512}}),
    ]
    infos = [(HostInfo("a", "iad", cpus=4, memory_mb=8192), True), (HostInfo("b", "iad"), False)]
    a, b = host_loads(infos, machines, [], app_name="web", unit_bytes=GIB)
    assert (a.used_cpus, a.used_memory_mb, a.app_count, a.reachable) == (2, 1024, 2, True)
    assert (b.used_cpus, b.used_memory_mb, b.app_count, b.reachable) == (0, 512, 0, False)
