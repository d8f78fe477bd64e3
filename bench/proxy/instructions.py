"""The edge's own work per request, counted in instructions: a figure that a noisy host does not move.

Timings on a small shared host wander by a third from run to run; instruction counts do not. This drives the
edge's data path in memory — a client connection and a pooled machine connection whose transports only count
writes, fed the same keep-alive request and nginx's response — and counts instructions under valgrind
(cachegrind): twice, with two request counts, so that start-up cancels out. The floor is httptools alone
parsing the same request and response with callbacks that do nothing. The edge is counted compiled (when
`aerodrome build-edge` has built it) and as plain Python. The event loop and the kernel are left out: this is
the part of the edge's cost that its own code decides.

    .venv/bin/python bench/proxy/instructions.py [--requests 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.localhost\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 17:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 23\r\nConnection: keep-alive\r\n\r\nhello from the machine\n"
)
VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


class CountingTransport:
    """Stands where the socket would be: it takes the writes, and says where the connection is."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


async def drive_edge(requests: int) -> None:
    from bench.proxy.run import StaticDirectory

    from aerodrome.proxy import Edge, EdgeSettings
    from aerodrome.proxy.downstream import HttpConnection
    from aerodrome.proxy.upstream import UpstreamConnection

    with tempfile.TemporaryDirectory() as data:
        edge = Edge(StaticDirectory(9), EdgeSettings(Path(data), http_port=0, https_port=0, route_ttl=1e9))
        await edge.fleet.route("bench.localhost", "127.0.0.1", 80)
        client = HttpConnection(edge.context, 80, "http", ("127.0.0.1", 80))
        client.connection_made(CountingTransport())  # type: ignore[arg-type]
        machine = UpstreamConnection(("127.0.0.1", 9), edge.pool)
        machine.connection_made(CountingTransport())  # type: ignore[arg-type]
        edge.pool.put(machine)
        for _ in range(requests):
            client.data_received(REQUEST)
            machine.data_received(RESPONSE)


class Ignore:
    """httptools callbacks that do nothing: the floor."""

    def on_url(self, url: bytes) -> None: ...

    def on_status(self, reason: bytes) -> None: ...

    def on_header(self, name: bytes, value: bytes) -> None: ...

    def on_headers_complete(self) -> None: ...

    def on_body(self, body: bytes) -> None: ...

    def on_message_complete(self) -> None: ...


def drive_floor(requests: int) -> None:
    import httptools

    request, response = httptools.HttpRequestParser(Ignore()), httptools.HttpResponseParser(Ignore())
    for _ in range(requests):
        request.feed_data(REQUEST)
        response.feed_data(RESPONSE)


def instructions(target: str, requests: int, plain: bool) -> int:
    env = {name: value for name, value in os.environ.items() if name != "AERODROME_PURE_PYTHON"}
    if plain:
        env["AERODROME_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [*VALGRIND, sys.executable, __file__, "--drive", target, "--requests", str(requests)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1).replace(",", ""))


def per_request(target: str, requests: int, plain: bool = False) -> float:
    base = instructions(target, requests // 5, plain)
    return (instructions(target, requests, plain) - base) / (requests - requests // 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--drive", choices=("edge", "floor"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive == "edge":
        asyncio.run(drive_edge(args.requests))
        return
    if args.drive == "floor":
        drive_floor(args.requests)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (apt install valgrind)")
    from aerodrome.proxy import native

    floor = per_request("floor", args.requests)
    print(f"instructions per keep-alive request, {args.requests} requests (valgrind, no event loop, no kernel)")
    print(f"{'floor: httptools parsing alone':34} {floor:9.0f}")
    rows = [("edge, plain Python", True)]
    if native.is_fresh():
        rows.insert(0, ("edge, compiled (mypyc)", False))
    for name, plain in rows:
        count = per_request("edge", args.requests, plain)
        print(f"{name:34} {count:9.0f}   {count / floor:5.1f}x the floor")


if __name__ == "__main__":
    main()
