"""API benchmark: GET machine p50, list of 10 000 machines, creates per second — beside a bare uvicorn endpoint.

Runs a real `aerodrome serve` (root) and, in the same run, a bare Starlette-on-uvicorn hello endpoint: the floor
for one HTTP round trip through the same server stack. Figures are printed with their ratio to that floor.

    sudo .venv/bin/python bench/api/run.py [--machines 10000] [--creates 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.registry import free_loopback_port
from tests.support.server import running_server

HELLO_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def hello(request):
    return JSONResponse({"ok": True})
app = Starlette(routes=[Route("/hello", hello)])
"""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def time_gets(client: httpx.Client, url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return samples


def bare_endpoint_p50(count: int) -> float:
    port = free_loopback_port()
    argv = [
        sys.executable,
        "-c",
        HELLO_APP + f"\nimport uvicorn; uvicorn.run(app, port={port}, http='httptools', log_level='warning')",
    ]
    process = subprocess.Popen(argv)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    client.get("/hello")
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            time_gets(client, "/hello", 50)
            return statistics.median(time_gets(client, "/hello", count))
    finally:
        process.terminate()
        process.wait()


async def create_many(api_url: str, token: str, app: str, image: str, count: int, concurrency: int = 16) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"config": {"image": image}, "skip_launch": True}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            response = await client.post(f"/v1/apps/{app}/machines", json=body)
            response.raise_for_status()

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=10_000, help="machines in the listed app")
    parser.add_argument("--creates", type=int, default=1_000, help="machines created through the API")
    parser.add_argument("--gets", type=int, default=500)
    args = parser.parse_args()

    floor = bare_endpoint_p50(args.gets)
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "bench", "org_slug": "personal"})
            machine = api.post("/v1/apps/bench/machines", json={"config": {"image": image}, "skip_launch": True}).json()
            url = f"/v1/apps/bench/machines/{machine['id']}"
            time_gets(api, url, 50)
            get_samples = time_gets(api, url, args.gets)
        get_p50 = statistics.median(get_samples)
        print(f"bare uvicorn endpoint p50:      {floor:8.2f} ms   (floor)")
        print(f"GET machine p50:                {get_p50:8.2f} ms   {get_p50 / floor:5.2f}x floor   (target <= 2x)")
        print(f"GET machine p90:                {percentile(get_samples, 0.9):8.2f} ms", flush=True)

        rate = asyncio.run(create_many(server.api_url, server.token, "bench", image, args.creates))
        print(f"creates (skip_launch):          {rate:8.1f} /s   (target >= 200/s)", flush=True)

        remaining = args.machines - args.creates - 1
        if remaining > 0:
            asyncio.run(create_many(server.api_url, server.token, "bench", image, remaining))
        with server.client() as api:
            list_samples = []
            for _ in range(5):
                start = time.perf_counter()
                listed = api.get("/v1/apps/bench/machines")
                list_samples.append((time.perf_counter() - start) * 1000)
        count = len(listed.json())
        print(
            f"list of {count} machines p50:  {statistics.median(list_samples):8.1f} ms   (target <= 250 ms)", flush=True
        )
        with httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {server.token}"}) as api:
            api.delete("/v1/apps/bench", timeout=3600)  # destroys every machine before the server stops


if __name__ == "__main__":
    main()
