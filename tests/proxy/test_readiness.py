"""The edge and readiness checks, against real upstreams: a gated machine takes traffic only while its checks
pass, a request waits (bounded) for one to become ready, and a forced instance is routed regardless."""

from __future__ import annotations

import asyncio

import httpx

from aerodrome.core import MachineState
from aerodrome.proxy import Edge
from tests.proxy.support import TestDirectory, eventually

HOST = {"host": "alpha.localhost"}


async def served(client: httpx.AsyncClient, count: int) -> set[str]:
    replies = [await client.get("/", headers=HOST) for _ in range(count)]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    return {r.text for r in replies}


async def test_an_unready_machine_is_out_of_rotation(
    directory: TestDirectory, edge: Edge, client: httpx.AsyncClient
) -> None:
    ready = await directory.add_machine("alpha", "m-ready")
    unready = await directory.add_machine("alpha", "m-unready")
    ready.gated = unready.gated = True
    unready.ready = False
    edge.fleet.forget_routes("alpha")
    assert await served(client, 20) == {"hello from m-ready"}
    unready.ready, ready.ready = True, False
    edge.fleet.readiness_changed("m-unready", "alpha")
    assert await served(client, 20) == {"hello from m-unready"}


async def test_nothing_ready_waits_then_refuses(
    directory: TestDirectory, edge: Edge, client: httpx.AsyncClient
) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    machine.gated, machine.ready = True, False
    refused = await client.get("/", headers=HOST)  # the fixture's queue timeout is 0.3 s
    assert refused.status_code == 503 and "readiness" in refused.text
    waiting = asyncio.create_task(client.get("/", headers=HOST))
    await asyncio.sleep(0.05)
    machine.ready = True
    edge.fleet.readiness_changed("m-1", "alpha")  # wakes the waiting request
    assert (await waiting).text == "hello from m-1"


async def test_a_forced_instance_is_routed_even_unready(directory: TestDirectory, client: httpx.AsyncClient) -> None:
    machine = await directory.add_machine("alpha", "m-1")
    machine.gated, machine.ready = True, False
    reply = await client.get("/", headers={**HOST, "fly-force-instance-id": "m-1"})
    assert reply.status_code == 200 and reply.text == "hello from m-1"


async def test_an_autostart_waits_for_readiness(
    directory: TestDirectory, edge: Edge, client: httpx.AsyncClient
) -> None:
    machine = await directory.add_machine("alpha", "m-1", running=False, state=MachineState.STOPPED)
    machine.gated, machine.ready = True, False
    request = asyncio.create_task(client.get("/", headers=HOST))
    await eventually(lambda: machine.starts == 1 and machine.server is not None)
    await asyncio.sleep(0.1)
    assert not request.done()  # started and listening, but not ready: held
    machine.ready = True
    edge.fleet.readiness_changed("m-1", "alpha")
    assert (await request).text == "hello from m-1"
