"""API benchmark: GET machine p50, list of 10 000 machines, creates per second — beside a bare uvicorn endpoint.

Runs a real `aerodrome serve` (root) and, in the same run, a bare Starlette-on-uvicorn hello endpoint: the floor
for one HTTP round trip through the same server stack. Each figure is printed with its ratio to its target.

    sudo .venv/bin/python bench/api/run.py [--machines 10000] [--creates 1000]

The server gives its organisation a /16 of the machine pool (`--org-prefix-len 16`): every created machine holds
an address, and the default /20 holds 4094 of them. Figures on this project's 2-core host, quiet:

    before the group commit and the record cache (--machines 2000): GET p50 1.86x the floor, 147 creates/s (with
    httpx as the client), list of 2 000 in 45 ms; 10 000 could not be created in one organisation
    after (full run): GET p50 1.00x, 321 creates/s, list of 10 000 in 83 ms
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.server import running_server

from aerodrome.bench.api import create_many, time_gets
from aerodrome.bench.floors import bare_uvicorn

SERVE_ARGS = ("--org-prefix-len", "16")  # room for 65 534 machines in the one organisation
GET_TARGET = 2.0  # times the bare endpoint
CREATES_TARGET = 200.0  # per second
LIST_TARGET_MS = 250.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def bare_endpoint_p50(count: int) -> float:
    with bare_uvicorn() as url, httpx.Client() as client:
        time_gets(client, url, 50)
        return statistics.median(time_gets(client, url, count))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=10_000, help="machines in the listed app")
    parser.add_argument("--creates", type=int, default=1_000, help="machines created through the API")
    parser.add_argument("--gets", type=int, default=500)
    args = parser.parse_args()

    floor = bare_endpoint_p50(args.gets)
    with running_server(*SERVE_ARGS) as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "bench", "org_slug": "personal"})
            machine = api.post("/v1/apps/bench/machines", json={"config": {"image": image}, "skip_launch": True}).json()
            url = f"/v1/apps/bench/machines/{machine['id']}"
            time_gets(api, url, 50)
            get_samples = time_gets(api, url, args.gets)
        get_p50 = statistics.median(get_samples)
        ratio = get_p50 / floor
        print(f"bare uvicorn endpoint p50:      {floor:8.2f} ms   (floor)")
        print(f"GET machine p50:                {get_p50:8.2f} ms   {ratio:5.2f}x floor  (target <= {GET_TARGET:g}x)")
        print(f"GET machine p90:                {percentile(get_samples, 0.9):8.2f} ms", flush=True)

        rate = asyncio.run(create_many(server, image, args.creates, app="bench"))
        print(
            f"creates (skip_launch):          {rate:8.1f} /s   {rate / CREATES_TARGET:5.2f}x target "
            f"(target >= {CREATES_TARGET:g}/s)",
            flush=True,
        )

        remaining = args.machines - args.creates - 1
        if remaining > 0:
            asyncio.run(create_many(server, image, remaining, app="bench"))
        with server.client() as api:
            list_samples = []
            for _ in range(5):
                start = time.perf_counter()
                listed = api.get("/v1/apps/bench/machines")
                list_samples.append((time.perf_counter() - start) * 1000)
        count = len(listed.json())
        list_p50 = statistics.median(list_samples)
        print(
            f"list of {count:>6} machines p50:  {list_p50:8.1f} ms   {list_p50 / LIST_TARGET_MS:5.2f}x target "
            f"(target <= {LIST_TARGET_MS:g} ms)",
            flush=True,
        )
        with httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {server.token}"}) as api:
            api.delete("/v1/apps/bench", timeout=3600)  # destroys every machine before the server stops


if __name__ == "__main__":
    main()
