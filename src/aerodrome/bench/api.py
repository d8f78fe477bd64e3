"""The API: one GET of a machine beside a bare uvicorn endpoint, creates per second, a listing."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from aerodrome.bench.figures import Figure, Goal, Target
from aerodrome.bench.floors import bare_uvicorn
from aerodrome.bench.probe import Server, delete_app

APP = "bench-api"


def time_gets(client: httpx.Client, url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        client.get(url).raise_for_status()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def create_many(server: Server, image: str, count: int, concurrency: int = 16, app: str = APP) -> float:
    """Creates (skip_launch) per second over `concurrency` keep-alive connections, written by hand: httpx spends
    more CPU per request than the server does on a create, and on a small host the client would measure itself."""
    body = json.dumps({"config": {"image": image}, "skip_launch": True}).encode()
    request = (
        f"POST /v1/apps/{app}/machines HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", server.api_port)
        try:
            while remaining > 0:
                remaining -= 1
                writer.write(request)
                status, reply = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"create answered {status}: {reply[:300]!r}")
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - began)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length (what the API sends): its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    length = next(int(value) for name, value in headers.items() if name.lower() == "content-length")
    return int(lines[0].split()[1]), await reader.readexactly(length)


def measure(server: Server, gets: int, creates: int, warmup: int) -> list[Figure]:
    image = server.push_image("api")
    with bare_uvicorn() as hello, httpx.Client() as bare, server.client() as api:
        api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).raise_for_status()
        made = api.post(f"/v1/apps/{APP}/machines", json={"config": {"image": image}, "skip_launch": True})
        url = f"/v1/apps/{APP}/machines/{made.json()['id']}"
        time_gets(api, url, warmup)
        time_gets(bare, hello, warmup)
        ours: list[float] = []
        floor: list[float] = []
        for _ in range(10):  # interleaved slices, so both see the same moments of a shared host
            ours += time_gets(api, url, gets // 10)
            floor += time_gets(bare, hello, gets // 10)
        rates = [asyncio.run(create_many(server, image, creates // 3)) for _ in range(3)]
        lists = time_gets(api, f"/v1/apps/{APP}/machines", 5)
        delete_app(api, APP)
    listed = 1 + 3 * (creates // 3)
    return [
        Figure.of(
            "api",
            "GET machine",
            "ms",
            ours,
            floor_name="bare uvicorn endpoint",
            floor_samples=floor,
            target=Target(Goal.RATIO_AT_MOST, 2.0),
        ),
        Figure.of("api", "creates (skip_launch)", "/s", rates, target=Target(Goal.AT_LEAST, 200)),
        Figure.of("api", f"list {listed} machines", "ms", lists, target=Target(Goal.AT_MOST, 250)),
    ]
