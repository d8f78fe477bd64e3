"""Edge benchmark: warm throughput and latency through the edge vs direct vs nginx, and cold start to first byte.

Load generator: wrk (Debian package), one thread, the same command line for each target. The upstream is an nginx
answering a fixed 200 (one worker); the reference proxy is a second nginx process (one worker, keep-alive upstream
pool) in front of the same upstream; the edge runs in its own process on uvloop, with its data path compiled when
`aerodrome build-edge` has built it (the report says which). So each proxy is one process of its own beside the
same upstream process. Both cases are measured: keep-alive, and a new connection per request
(`Connection: close`). `--plain-python` adds a second edge whose data path runs as plain Python (`edge-py`).

`--pin` gives the proxy under test the last CPU to itself and puts wrk and the upstream on the others. Unpinned
(the default), the kernel places all of them, as it would in use; on a small host the two placements favour
different cases, so the figures of both are worth reading side by side.

Throughput is measured at `--connections` (saturating); the latency figure is the p50 at `--latency-connections`
(1 by default), where neither proxy is saturated, so the added p50 is the proxy's own cost per request rather
than queueing. The targets are run in turn, `--rounds` times over; each keeps its best round, since the host is
shared and a round that overlaps someone else's work only ever loses. The cold case runs in-process: a stopped
machine whose start brings up a real listener, timed from request sent to first response byte.

    .venv/bin/python bench/proxy/run.py [--seconds 5] [--connections 32] [--rounds 3] [--pin] [--plain-python]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aerodrome.core import MachineState, PortSpec, ServiceSpec
from aerodrome.proxy import AppRoute, Backend, Edge, EdgeSettings, native

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/{name}.pid;
error_log {dir}/{name}.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {server}
}}
"""
UPSTREAM_SERVER = 'server {{ listen 127.0.0.1:{upstream}; location / {{ return 200 "hello from the machine\\n"; }} }}'
PROXY_SERVER = """upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{proxy};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}"""

CPUS = sorted(os.sched_getaffinity(0))
PROXY_CPUS, LOAD_CPUS = CPUS, CPUS  # `--pin`: the last CPU for the proxy under test, the rest for the others


def on_cpus(cpus: list[int]) -> Callable[[], None]:
    """A preexec function that confines a child process to `cpus`."""
    return lambda: os.sched_setaffinity(0, cpus)


def start_nginx(work: str, name: str, server: str, cpus: list[int]) -> subprocess.Popen[bytes]:
    conf = Path(work, f"{name}.conf")
    conf.write_text(NGINX_CONF.format(dir=work, name=name, server=server))
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", work], preexec_fn=on_cpus(cpus))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StaticDirectory:
    """Every host routes to one started machine at `port`; `start_machine` runs `on_start`."""

    def __init__(self, port: int, state: MachineState = MachineState.STARTED) -> None:
        service = ServiceSpec("tcp", port, (PortSpec(80, ("http",)),), soft_limit=100_000)
        self.backend = Backend("m-bench", state, "127.0.0.1", service)
        self.server: asyncio.Server | None = None

    async def route(self, host: str | None, local_addr: str, edge_port: int) -> AppRoute | None:
        return AppRoute("bench", edge_port, (self.backend,))

    async def start_machine(self, app: str, machine_id: str) -> None:
        self.server = await asyncio.start_server(_answer, "127.0.0.1", self.backend.port, reuse_address=True)

    async def stop_machine(self, app: str, machine_id: str, suspend: bool) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def autostop_routes(self) -> Sequence[AppRoute]:
        return []


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhello\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve_edge(edge_port: int, upstream: int) -> None:
    """The edge as a separate process, as `aerodrome serve` runs it."""
    import uvloop

    async def main() -> None:
        with tempfile.TemporaryDirectory() as data:
            settings = EdgeSettings(Path(data), http_port=edge_port, https_port=0)
            edge = Edge(StaticDirectory(upstream), settings)
            await edge.start()
            print("ready", "compiled" if native.active else "python", flush=True)
            await asyncio.Event().wait()

    uvloop.run(main())


def wrk(port: int, seconds: int, connections: int, close: bool) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", "Host: bench.localhost"]
    if close:
        command += ["-H", "Connection: close"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=on_cpus(LOAD_CPUS),
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": _ms(out, "50%"), "p99": _ms(out, "99%"), "errors": float("Non-2xx" in out)}


Results = dict[str, dict[str, float]]


def best_of(rounds: int, targets: dict[str, int], seconds: int, connections: int, close: bool) -> Results:
    """Each target's best round: the highest req/s when saturating, the lowest p50 otherwise. Targets take turns."""
    best: Results = {}
    for _ in range(rounds):
        for name, port in targets.items():
            result = wrk(port, seconds, connections, close)
            previous = best.get(name)
            key = "rps" if connections > 4 else "p50"
            sign = 1 if key == "rps" else -1
            if previous is None or sign * result[key] > sign * previous[key]:
                best[name] = result
    return best


def _ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def cold_start(rounds: int) -> list[float]:
    """Request → first byte while the edge starts the machine (start = a listener coming up)."""
    port = free_port()
    directory = StaticDirectory(port, MachineState.STOPPED)
    with tempfile.TemporaryDirectory() as data:
        edge = Edge(directory, EdgeSettings(Path(data), http_port=0, https_port=0))  # type: ignore[arg-type]
        await edge.start()
        timings = []
        for _ in range(rounds):
            reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
            began = time.perf_counter()
            writer.write(b"GET / HTTP/1.1\r\nhost: bench.localhost\r\nconnection: close\r\n\r\n")
            await reader.read(1)
            timings.append((time.perf_counter() - began) * 1000)
            await reader.read(-1)
            writer.close()
            await writer.wait_closed()
            await edge.fleet.stop("bench", directory.backend, suspend=False)
            edge.pool.close()
        await edge.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-connections", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pin", action="store_true", help="the proxy under test on a CPU of its own")
    parser.add_argument(
        "--plain-python", action="store_true", help="also measure the edge with its data path as plain Python (edge-py)"
    )
    parser.add_argument("--serve-edge", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pin and len(CPUS) > 1:
        global PROXY_CPUS, LOAD_CPUS
        PROXY_CPUS, LOAD_CPUS = CPUS[-1:], CPUS[:-1]
    if args.serve_edge:
        serve_edge(*args.serve_edge)
        return
    upstream, nginx_port, edge_port, plain_port = free_port(), free_port(), free_port(), free_port()
    targets = {"direct": upstream, "nginx": nginx_port, "edge": edge_port}
    if args.plain_python:
        targets["edge-py"] = plain_port
    throughput: dict[bool, Results] = {}
    latency: dict[bool, Results] = {}
    with tempfile.TemporaryDirectory() as work:
        origin = start_nginx(work, "upstream", UPSTREAM_SERVER.format(upstream=upstream), LOAD_CPUS)
        nginx = start_nginx(work, "proxy", PROXY_SERVER.format(upstream=upstream, proxy=nginx_port), PROXY_CPUS)
        edges = [start_edge(edge_port, upstream, plain=False)]
        if args.plain_python:
            edges.append(start_edge(plain_port, upstream, plain=True))
        try:
            modes = [edge_ready(edge) for edge in edges]
            time.sleep(0.3)
            for close in (False, True):
                for port in targets.values():
                    wrk(port, 1, args.connections, close)  # warm-up
                throughput[close] = best_of(args.rounds, targets, args.seconds, args.connections, close)
                latency[close] = best_of(
                    args.rounds, targets, max(1, args.seconds // 2), args.latency_connections, close
                )
        finally:
            for process in (*edges, nginx, origin):
                process.terminate()
                process.wait()
    print(f"proxy under test on CPU {PROXY_CPUS}, wrk and the upstream on CPU {LOAD_CPUS}")
    print(f"edge data path: {modes[0]}" + (f"; edge-py: {modes[1]}" if args.plain_python else ""))
    for close in (False, True):
        report(close, throughput[close], latency[close], args.connections, args.latency_connections)
    cold = asyncio.run(cold_start(20))
    print(
        f"\ncold start through the edge (request → first byte, 20 rounds): "
        f"p50 {statistics.median(cold):.2f} ms, max {max(cold):.2f} ms"
    )


def start_edge(port: int, upstream: int, plain: bool) -> subprocess.Popen[str]:
    """The edge in a process of its own; `plain`: its data path as plain Python even if a compiled one is built."""
    env = dict(os.environ, AERODROME_PURE_PYTHON="1") if plain else None
    return subprocess.Popen(
        [sys.executable, __file__, "--serve-edge", str(port), str(upstream)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=on_cpus(PROXY_CPUS),
    )


def edge_ready(edge: subprocess.Popen[str]) -> str:
    """Wait for the edge to listen; its data path, compiled (mypyc) or plain Python."""
    assert edge.stdout is not None
    ready, _, mode = edge.stdout.readline().strip().partition(" ")
    assert ready == "ready", "the edge did not start"
    return "compiled (mypyc)" if mode == "compiled" else "plain Python"


def report(close: bool, throughput: Results, latency: Results, connections: int, low: int) -> None:
    title = "new connection per request" if close else "keep-alive"
    print(f"\n{title}: throughput at wrk -t1 -c{connections}, latency at -c{low}")
    print(f"{'target':8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {f'p50 ms @c{low}':>12}")
    for name in throughput:
        r = throughput[name]
        print(f"{name:8} {r['rps']:10.0f} {r['p50']:8.3f} {r['p99']:8.3f} {latency[name]['p50']:12.3f}")
    ratio = throughput["edge"]["rps"] / throughput["nginx"]["rps"]
    direct = latency["direct"]["p50"]
    print(
        f"edge/nginx throughput {ratio:.2f}x; added p50 vs direct at -c{low}: "
        f"edge {latency['edge']['p50'] - direct:.3f} ms, nginx {latency['nginx']['p50'] - direct:.3f} ms"
    )
    if "edge-py" in throughput:
        plain = throughput["edge-py"]["rps"] / throughput["nginx"]["rps"]
        print(f"edge-py/nginx throughput {plain:.2f}x; added p50 {latency['edge-py']['p50'] - direct:.3f} ms")


if __name__ == "__main__":
    main()
