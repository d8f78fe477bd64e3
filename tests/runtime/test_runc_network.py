"""Machine networks under runc: kernel network resources exist only while a machine runs."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from aerodrome.core import Runtime, SandboxStatus
from aerodrome.runtime.process import run
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.firewall import egress_rules, set_egress
from aerodrome.runtime.runc.network import Allocation, create_network
from aerodrome.runtime.runc.userns import new_namespaces
from tests.runtime.conformance import WAIT, Harness, eventually, http_answers
from tests.runtime.runc_fixtures import harness, image_store_root, needs_root, network_leftovers, runtime_pool

__all__ = ["harness", "image_store_root"]

pytestmark = [pytest.mark.root, needs_root]

CREATED = 1000
# The test's "outside" host: a benchmarking range (RFC 2544), routed here only to a veth the test makes.


def _runc(runtime: Runtime) -> RuncRuntime:
    assert isinstance(runtime, RuncRuntime)
    return runtime


async def _gone(machine_id: str) -> bool:
    return await network_leftovers([machine_id]) == []


async def test_created_machines_hold_addresses_but_no_network(harness: Harness) -> None:
    h = harness
    specs = [h.spec(("sleep", "1000")) for _ in range(CREATED)]
    addresses = {spec.machine_id: await h.runtime.create(spec) for spec in specs}
    assert len({a.private_ipv4 for a in addresses.values()}) == CREATED
    assert len({a.private_ip for a in addresses.values()}) == CREATED
    assert await network_leftovers(list(addresses)) == []

    # The addresses outlive a daemon restart and a re-create.
    restarted = await h.reopen()
    await restarted.recover()
    first = specs[0]
    assert await restarted.create(first) == addresses[first.machine_id]
    assert await restarted.status(first.machine_id) == SandboxStatus.CREATED


async def test_a_stopped_machine_gives_its_network_back(harness: Harness) -> None:
    h = harness
    spec = h.spec()
    info = await h.runtime.create(spec)
    for _ in range(2):  # the second start rebuilds what the first stop removed
        await h.runtime.start(spec.machine_id)
        assert await network_leftovers([spec.machine_id]) != []
        await eventually(lambda: http_answers(info.private_ipv4), "httpd on the private IPv4")
        await h.runtime.stop(spec.machine_id, signal.SIGTERM, WAIT)
        await eventually(lambda: _gone(spec.machine_id), "the machine's netns and veth to go")


async def test_an_exit_gives_the_network_back(harness: Harness) -> None:
    h = harness
    spec = h.spec(("sh", "-c", "exit 3"))
    await h.runtime.create(spec)
    await h.runtime.start(spec.machine_id)

    async def exited() -> bool:
        return await h.runtime.status(spec.machine_id) == SandboxStatus.STOPPED

    await eventually(exited, "the machine to exit")
    await eventually(lambda: _gone(spec.machine_id), "the machine's netns and veth to go")


async def test_recover_keeps_a_paused_machine_and_its_network(harness: Harness) -> None:
    h = harness
    spec = h.spec()
    info = await h.runtime.create(spec)
    await h.runtime.start(spec.machine_id)
    await h.runtime.suspend(spec.machine_id)
    await h.runtime.close()
    restarted = await h.reopen()
    assert (await restarted.recover())[spec.machine_id] == SandboxStatus.PAUSED
    await restarted.resume(spec.machine_id)
    await eventually(lambda: http_answers(info.private_ipv4), "httpd after resume")
    await restarted.stop(spec.machine_id, signal.SIGTERM, WAIT)
    await eventually(lambda: _gone(spec.machine_id), "the machine's netns and veth to go")


async def test_recover_removes_the_network_of_a_machine_that_does_not_run(harness: Harness) -> None:
    h = harness
    spec = h.spec()
    await h.runtime.create(spec)
    runtime = _runc(h.runtime)
    allocation: Allocation = runtime._machine(spec.machine_id).network
    holder = new_namespaces(runtime._machine(spec.machine_id).ids)
    try:
        await create_network(allocation, holder.pid)  # as an interrupted start (or an older version's) leaves it
    finally:
        holder.close()
    assert await network_leftovers([spec.machine_id]) != []
    restarted = await h.reopen()
    assert (await restarted.recover())[spec.machine_id] == SandboxStatus.CREATED
    assert await network_leftovers([spec.machine_id]) == []


async def test_egress_leaves_through_the_uplink_masqueraded(harness: Harness, tmp_path: Path) -> None:
    """An "outside" host in a netns of the test's own, behind a veth that stands for the uplink."""
    h = harness
    suffix = os.urandom(4).hex()
    outside_ns, uplink = f"aerodrome-test-up-{suffix}", f"aeup{suffix}"
    pool = runtime_pool()
    # RFC 2544 addresses on the host: a /30 keyed by the pool, which is this process's alone (parallel workers)
    octet = pool.split(".")[1]
    uplink_address, outside = f"198.18.{octet}.1", f"198.18.{octet}.2"
    www = tmp_path / "outside"
    www.mkdir()
    (www / "index.html").write_text("hello from outside\n")
    script = "\n".join(
        [
            f"ip netns add {outside_ns}",
            f"ip link add {uplink} type veth peer name eth0 netns {outside_ns}",
            f"ip -n {outside_ns} addr add {outside}/30 dev eth0",
            f"ip -n {outside_ns} link set eth0 up",
            f"ip addr add {uplink_address}/30 dev {uplink}",
            f"ip link set {uplink} up",
        ]
    )
    await run(["sh", "-ec", script])
    httpd = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{outside_ns}", "busybox", "httpd", "-f", "-p", "8080", "-h", str(www)
    )
    base = _runc(h.runtime)
    runtime = RuncRuntime(base.layout.root, base.images, ipv4_pool=pool, egress=True, uplink=uplink)
    try:
        spec = h.spec(("sleep", "1000"))
        await runtime.create(spec)
        await runtime.start(spec.machine_id)
        assert ("nat", f"-A POSTROUTING -s {pool} -o {uplink} -j MASQUERADE") in await egress_rules(pool)
        fetch = ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {outside} 8080"]
        # The outside netns has no route back to the pool: only a masqueraded connection gets an answer.
        assert b"hello from outside" in (await runtime.exec(spec.machine_id, fetch, None, 10)).stdout
        await set_egress(pool, None)
        assert await egress_rules(pool) == []
        assert b"hello" not in (await runtime.exec(spec.machine_id, fetch, None, 10)).stdout
        await runtime.destroy(spec.machine_id)
    finally:
        await runtime.close()
        await set_egress(pool, None)
        httpd.kill()
        await httpd.wait()
        await run(["ip", "netns", "del", outside_ns], check=False)
        await run(["ip", "link", "del", uplink], check=False)
    assert outside_ns not in (await run(["ip", "netns", "list"])).text.split()
    assert f" {uplink}@" not in (await run(["ip", "-o", "link", "show"])).text


async def test_a_runtime_without_egress_installs_no_nat(harness: Harness) -> None:
    h = harness
    spec = h.spec(("sleep", "1000"))
    await h.runtime.create(spec)
    assert await egress_rules(runtime_pool()) == []


async def test_recover_undoes_a_start_cut_short_before_the_network_was_ready(harness: Harness, tmp_path: Path) -> None:
    h = harness
    spec = h.spec()
    await h.runtime.create(spec)
    await h.runtime.start(spec.machine_id)
    await h.runtime.close()
    machine_dir = tmp_path / "runtime" / "machines" / spec.machine_id
    # As if the daemon died after `runc run` but before it marked the network ready.
    (machine_dir / "network-ready").unlink()
    (machine_dir / "started.json").unlink()
    restarted = await h.reopen()
    assert (await restarted.recover())[spec.machine_id] == SandboxStatus.CREATED
    assert await network_leftovers([spec.machine_id]) == []
    listing = (await run(["runc", "--root", str(tmp_path / "runtime" / "runc"), "list", "-q"])).text.split()
    assert spec.machine_id not in listing
