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
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.registry import free_loopback_port
from tests.support.server import running_server

SERVE_ARGS = ("--org-prefix-len", "16")  # room for 65 534 machines in the one organisation
GET_TARGET = 2.0  # times the bare endpoint
CREATES_TARGET = 200.0  # per second
LIST_TARGET_MS = 250.0

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
    """Creates per second over `concurrency` keep-alive connections.

    The requests are written by hand: httpx spends more CPU per request than the server does on a create, and on
    a 2-core host the client would measure itself.
    """
    url = httpx.URL(api_url)
    host, port = url.host, url.port or 80
    body = json.dumps({"config": {"image": image}, "skip_launch": True}).encode()
    request = (
        f"POST /v1/apps/{app}/machines HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                writer.write(request)
                status, reply = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"create answered {status}: {reply[:300]!r}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length (what the API sends): its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    length = next(int(value) for name, value in headers.items() if name.lower() == "content-length")
    return int(lines[0].split()[1]), await reader.readexactly(length)


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

        rate = asyncio.run(create_many(server.api_url, server.token, "bench", image, args.creates))
        print(
            f"creates (skip_launch):          {rate:8.1f} /s   {rate / CREATES_TARGET:5.2f}x target "
            f"(target >= {CREATES_TARGET:g}/s)",
            flush=True,
        )

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
