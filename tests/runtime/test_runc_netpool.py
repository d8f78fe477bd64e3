"""The pool of prepared network slots: a machine started on a pooled slot has the network a fresh start builds,
another organisation never gets one, and nothing of the pool outlives its runtime or a dead one."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from aerodrome.core import Runtime
from aerodrome.runtime.process import run
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.netpool import NetPool
from aerodrome.runtime.runc.network import NETNS_DIR, Allocation, host_iface_name
from tests.runtime.conformance import WAIT, Harness, eventually, http_answers
from tests.runtime.runc_fixtures import harness, image_store_root, needs_root

__all__ = ["harness", "image_store_root"]

pytestmark = [pytest.mark.root, needs_root]


def _runc(runtime: Runtime) -> RuncRuntime:
    assert isinstance(runtime, RuncRuntime)
    return runtime


async def _json(*argv: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads((await run(list(argv))).stdout or b"[]")
    return found


async def _network(allocation: Allocation) -> dict[str, object]:
    """What the machine's network is, with its own addresses written as placeholders: comparable across
    machines of one organisation."""
    ns = allocation.netns

    def plain(text: str) -> str:
        return text.replace(allocation.ipv4, "IPV4").replace(allocation.ipv6, "IPV6")

    inside = await _json("ip", "-n", ns, "-j", "addr", "show")
    addresses = sorted(
        plain(f"{link['ifname']} {a['local']}/{a['prefixlen']}")
        for link in inside
        for a in link["addr_info"]  # type: ignore[attr-defined]
        if a["scope"] != "link"  # type: ignore[index]
    )
    routes = [plain((await run(["ip", "-n", ns, family, "route", "show"])).text) for family in ("-4", "-6")]
    host = await _json("ip", "-j", "addr", "show", "dev", allocation.host_iface)
    host_addresses = sorted(f"{a['local']}/{a['prefixlen']}" for a in host[0]["addr_info"])  # type: ignore[attr-defined]
    host_routes = plain((await run(["ip", "route", "show", "dev", allocation.host_iface])).text)
    forwarding = _forwarding(allocation.host_iface)
    return {
        "addresses": addresses,
        "routes": routes,
        "host_addresses": host_addresses,
        "host_state": host[0]["operstate"],
        "host_routes": host_routes,
        "forwarding": forwarding,
    }


def _forwarding(iface: str) -> str:
    return Path(f"/proc/sys/net/ipv4/conf/{iface}/forwarding").read_text().strip()


def _named(name: str) -> bool:
    return os.path.exists(f"{NETNS_DIR}/{name}")


def _listed(prefix: str) -> list[str]:
    return [name for name in os.listdir(NETNS_DIR) if name.startswith(prefix)] if os.path.isdir(NETNS_DIR) else []


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def _rules() -> list[str]:
    saved = (await run(["iptables-save"])).text + (await run(["ip6tables-save"])).text
    return sorted(line for line in saved.splitlines() if "AERODROME" in line and not line.startswith("#"))


async def test_a_pooled_slot_is_the_network_a_fresh_start_builds(harness: Harness) -> None:
    h = harness
    runtime = _runc(h.runtime)
    fresh, pooled = h.spec(org=7), h.spec(org=7)
    fresh_info, pooled_info = await runtime.create(fresh), await runtime.create(pooled)
    rules = await _rules()
    await runtime.start(fresh.machine_id)  # the organisation's first start builds its own, and fills the pool
    await runtime.netpool.settled()
    assert runtime.netpool.ready(7) == runtime.netpool.size
    slots = {slot.netns for slot in runtime.netpool.slots()}
    await runtime.start(pooled.machine_id)
    taken = slots - {slot.netns for slot in runtime.netpool.slots()}
    assert len(taken) == 1  # and its pool name is gone: the netns is the machine's
    assert not _named(taken.pop())

    for info in (fresh_info, pooled_info):
        await eventually(lambda info=info: http_answers(info.private_ipv4), "httpd on the private IPv4")
        await eventually(lambda info=info: http_answers(info.private_ip), "httpd on the private IPv6")
    first, second = (runtime._machine(s.machine_id).network for s in (fresh, pooled))
    assert await _network(second) == await _network(first)
    assert await _rules() == rules  # the pool adds no rule and changes none
    for spec in (fresh, pooled):
        await runtime.stop(spec.machine_id, signal.SIGTERM, WAIT)


async def test_another_organisation_never_gets_a_slot(harness: Harness) -> None:
    h = harness
    runtime = _runc(h.runtime)
    first = h.spec(org=11)
    await runtime.create(first)
    await runtime.start(first.machine_id)
    await runtime.netpool.settled()
    theirs = {slot.netns for slot in runtime.netpool.slots() if slot.net.org == 11}
    assert len(theirs) == runtime.netpool.size

    other = h.spec(org=12)
    other_info = await runtime.create(other)
    await runtime.start(other.machine_id)  # org 12's first start: built fresh
    await runtime.netpool.settled()
    assert {slot.netns for slot in runtime.netpool.slots() if slot.net.org == 11} == theirs
    mine = runtime._machine(other.machine_id).network
    host = await _json("ip", "-j", "addr", "show", "dev", mine.host_iface)
    gateways = {a["local"] for a in host[0]["addr_info"]}  # type: ignore[attr-defined]
    assert mine.gateway4 in gateways and runtime._machine(first.machine_id).network.gateway4 not in gateways
    await eventually(lambda: http_answers(other_info.private_ipv4), "httpd of the other organisation")

    # Once organisation 11 has no machine left, its subnet goes and its slots with it.
    await runtime.destroy(first.machine_id)
    assert runtime.netpool.ready(11) == 0
    assert not [name for name in theirs if _named(name)]
    await runtime.destroy(other.machine_id)


async def _pool_names(pool: NetPool) -> list[str]:
    links = (await run(["ip", "-o", "link", "show"])).text
    return _listed(pool.prefix) + [f"veth {slot.host_iface}" for slot in pool.slots() if slot.host_iface in links]


async def test_close_and_a_dead_daemons_slots_leave_nothing(harness: Harness, tmp_path: Path) -> None:
    h = harness
    runtime = _runc(h.runtime)
    spec = h.spec(org=13)
    await runtime.create(spec)
    allocation = runtime._machine(spec.machine_id).network
    directory = tmp_path / "dead-pool"

    dead = NetPool(directory, size=3)
    assert dead.take(allocation) is None  # nothing ready yet: the pool starts filling
    dead.refill(allocation)
    await dead.settled()
    holders = [slot.namespaces.pid for slot in dead.slots()]
    assert len(holders) == 3 and await _pool_names(dead)
    # The daemon dies: its slots stay as they are. The next one on the same directory clears them.
    after = NetPool(directory, size=3)
    after.clear_dead()
    assert [pid for pid in holders if _alive(pid)] == []
    assert _listed(after.prefix) == []
    assert list(directory.iterdir()) == []
    await dead.close()  # ends nothing of anyone else's: its holders are known gone

    live = NetPool(directory, size=2)
    live.take(allocation)
    live.refill(allocation)
    await live.settled()
    assert len(live.slots()) == 2
    await live.close()
    assert await _pool_names(live) == [] and live.take(allocation) is None
    assert host_iface_name(spec.machine_id) not in (await run(["ip", "-o", "link", "show"])).text
