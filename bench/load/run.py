"""Load benchmark: the load test's mixes with their figures beside a floor measured in the same run.

API: N clients mixing every operation over M machines (tests/support/load.py), beside the same number of clients
sending GETs to a bare Starlette-on-uvicorn endpoint for as long (the floor for a round trip through that stack
under that concurrency). Edge: C concurrent connections to one started busybox machine through the edge, beside
the same connections straight to the machine's address (the floor: what the machine itself takes).

    sudo .venv/bin/python bench/load/run.py [--clients 200] [--machines 500] [--duration 60] [--connections 1000]

Figures on this project's 2-core host are in the README's Reliability section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.api.run import HELLO_APP
from tests.support.edge_load import EdgeMix, wave
from tests.support.load import ApiLoad, ApiMix, Tally
from tests.support.registry import free_loopback_port
from tests.support.server import Server, running_server


async def hammer(url: str, clients: int, duration: float) -> Tally:
    """`clients` loops of GETs on `url` for `duration` seconds."""
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def loop() -> None:
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                started = time.monotonic()
                response = await client.get(url)
                tally.add("get", time.monotonic() - started)
                tally.statuses[str(response.status_code)] += 1

        await asyncio.gather(*(loop() for _ in range(clients)))
    return tally


def bare_endpoint(clients: int, duration: float) -> Tally:
    port = free_loopback_port()
    code = HELLO_APP + f"\nimport uvicorn; uvicorn.run(app, port={port}, http='httptools', log_level='warning')"
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/hello")
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        return asyncio.run(hammer(f"http://127.0.0.1:{port}/hello", clients, duration))
    finally:
        process.terminate()
        process.wait()


def started_machine(server: Server, image: str) -> str:
    """A started machine of app `bench-edge` behind the edge (autostop off); returns its private address."""
    service = {"protocol": "tcp", "internal_port": 8080, "autostop": "off", "autostart": True}
    service["ports"] = [{"port": 80, "handlers": ["http"]}]
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "bench-edge", "org_slug": "personal"}).raise_for_status()
        body = {"config": {"image": image, "services": [service]}, "region": "iad"}
        machine = api.post("/v1/apps/bench-edge/machines", json=body).json()
        api.get(f"/v1/apps/bench-edge/machines/{machine['id']}/wait", params={"state": "started"}).raise_for_status()
        return str(api.get(f"/v1/apps/bench-edge/machines/{machine['id']}").json()["private_ip"])


def line(name: str, figures: dict[str, object], floor: dict[str, object]) -> str:
    ratio = float(figures["p99_ms"]) / max(float(floor["p99_ms"]), 0.001)  # type: ignore[arg-type]
    keys = ("requests", "p50_ms", "p99_ms", "past_2s", "unexpected", "unanswered")
    return (
        f"{name}: {json.dumps({k: figures[k] for k in keys})}\n"
        f"  floor: {json.dumps({k: floor[k] for k in keys})}  p99 {ratio:.2f}x the floor"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--machines", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    floor = bare_endpoint(args.clients, args.duration).figures()
    with running_server() as server:
        image = server.image()
        server.push_image("busybox")
        mix = ApiMix(clients=args.clients, machines=args.machines, duration=args.duration, max_running=60)
        load = ApiLoad(server.api_url, server.token, image, mix)
        api = asyncio.run(load.run()).figures()
        mismatches = asyncio.run(load.verify())
        print(line(f"API, {args.clients} clients over {args.machines} machines", api, floor))
        print(f"  by operation (p50, p99 ms): {json.dumps(api['p50_p99_ms_by_operation'])}")
        print(f"  acknowledged changes not visible afterwards: {len(mismatches)}")
        address = started_machine(server, image)
        edge_mix = EdgeMix(connections=args.connections, requests=3, waves=1)
        through, direct = Tally(), Tally()
        asyncio.run(wave(f"http://127.0.0.1:{server.edge_http_port}/", "bench-edge.localhost", edge_mix, through))
        asyncio.run(wave(f"http://[{address}]:8080/", "bench-edge.localhost", edge_mix, direct))
        print(line(f"edge, {args.connections} connections to one machine", through.figures(), direct.figures()))


if __name__ == "__main__":
    main()
