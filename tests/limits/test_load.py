"""Load held: API clients mixing every operation over many machines, and the edge under many connections.

Bounded in the normal suite; `AERODROME_LOAD=long` runs the issue's figures (200 API clients over 500 machines
for 60 s; 1 000 edge connections, three waves). Each test prints its figures (p50, p99, counts by status) on
the terminal; the assertions are about outcomes only: no unexpected status, every request answered within its
client timeout, every acknowledged change visible afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.support.edge_load import EdgeMix, edge_waves
from tests.support.load import ApiLoad, ApiMix
from tests.support.server import Server, running_server

LONG = os.environ.get("AERODROME_LOAD") == "long"
API_MIX = (
    ApiMix(clients=200, machines=500, duration=60, max_running=60)
    if LONG
    else ApiMix(clients=16, machines=40, duration=6, max_running=8)
)
EDGE_MIX = EdgeMix(connections=1000, requests=3, waves=3) if LONG else EdgeMix(connections=100, requests=2, waves=2)
EDGE_MACHINES = 2


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--autostop-idle", "1") as started:
        started.push_image("busybox")
        yield started


def report(capsys: pytest.CaptureFixture[str], name: str, figures: dict[str, object]) -> None:
    with capsys.disabled():
        print(f"\n{name} ({'long' if LONG else 'short'} run): {json.dumps(figures)}")


def test_api_clients_mixing_every_operation(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    load = ApiLoad(server.api_url, server.token, server.image(), API_MIX)
    tally = asyncio.run(load.run())
    mismatches = asyncio.run(load.verify())
    machines = sum(len(owned) for owned in load.owned)
    report(capsys, "api", {**tally.figures(), "machines": machines, "volumes": len(load.volumes)})
    assert not tally.unanswered, tally.unanswered[:10]
    assert not tally.unexpected, tally.unexpected[:10]
    assert not mismatches, mismatches[:10]
    assert machines >= API_MIX.machines and tally.figures()["requests"] > API_MIX.clients * 5


def edge_service() -> dict[str, object]:
    return {
        "protocol": "tcp",
        "internal_port": 8080,
        "autostop": "stop",
        "autostart": True,
        "concurrency": {"type": "requests", "soft_limit": 25},
        "ports": [{"port": 80, "handlers": ["http"]}],
    }


def test_edge_connections_while_machines_autostart_and_autostop(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    app = "load-edge"
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).raise_for_status()
        config = {"image": server.image(), "services": [edge_service()]}
        body = {"config": config, "skip_launch": True, "region": "iad"}
        for _ in range(EDGE_MACHINES):
            api.post(f"/v1/apps/{app}/machines", json=body).raise_for_status()

    async def run() -> tuple[object, int, int]:
        headers = {"Authorization": f"Bearer {server.token}"}
        async with httpx.AsyncClient(base_url=server.api_url, headers=headers, timeout=60) as client:
            url = f"http://127.0.0.1:{server.edge_http_port}/"
            tally, rested = await edge_waves(url, f"{app}.localhost", client, app, EDGE_MIX)
            machines = (await client.get(f"/v1/apps/{app}/machines")).json()
            starts = 0
            for machine in machines:
                events = (await client.get(f"/v1/apps/{app}/machines/{machine['id']}/events")).json()
                starts += [e["type"] for e in events].count("start")
            return tally, rested, starts

    tally, rested, starts = asyncio.run(run())
    figures = tally.figures()  # type: ignore[attr-defined]
    report(capsys, "edge", {**figures, "waves_from_rest": rested, "autostarts": starts})
    assert not tally.unanswered, tally.unanswered[:10]  # type: ignore[attr-defined]
    assert not tally.unexpected, tally.unexpected[:10]  # type: ignore[attr-defined]
    assert rested == EDGE_MIX.waves and starts >= EDGE_MIX.waves  # every wave woke stopped machines
    assert figures["requests"] == EDGE_MIX.connections * EDGE_MIX.requests * EDGE_MIX.waves
