"""Machine networks under runc: kernel network resources exist only while a machine runs."""

from __future__ import annotations

import signal

import pytest

from aerodrome.core import Runtime, SandboxStatus
from aerodrome.runtime.runc import RuncRuntime
from aerodrome.runtime.runc.network import Allocation, create_network
from tests.runtime.conformance import WAIT, Harness, eventually, http_answers
from tests.runtime.runc_fixtures import harness, image_store_root, needs_root, network_leftovers

__all__ = ["harness", "image_store_root"]

pytestmark = [pytest.mark.root, needs_root]

CREATED = 1000


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
    await create_network(allocation)  # as an interrupted start (or an older version's create) leaves it
    assert await network_leftovers([spec.machine_id]) != []
    restarted = await h.reopen()
    assert (await restarted.recover())[spec.machine_id] == SandboxStatus.CREATED
    assert await network_leftovers([spec.machine_id]) == []
