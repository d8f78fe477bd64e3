"""The network hop's cost: HostAgent calls through RemoteAgent → `aerodrome agent`'s server → FakeAgent, beside
the same FakeAgent called in-process (the floor), measured in the same run.

    .venv/bin/python bench/agent/run.py [--calls 2000] [--concurrency 1,16]

The floor is the in-memory FakeAgent itself, called directly in this process: a status, a prepare (a dict
insert and a recorded key), a start and a stop cost it microseconds and do no host work. So the hop's figures
are what the network half adds to each call, whole: JSON encoding of request and reply, HTTP/1.1 on a
keep-alive loopback connection, the server's checks (token, version, body bound, deadline) and decoding. The
server runs in a child process of its own (as `aerodrome agent` does), both sides on uvloop. The issue's target
compares that addition to a real machine's: ≤ 1 ms added to start, ≤ 10 % to creates/s (bench/runtime gives
the in-process agent's create and start times to weigh the added ms against).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.fake_agent import FakeAgent

from aerodrome.agent import RemoteAgent, agent_server
from aerodrome.core import Deadline, HostAgent, MachineVersionSpec, machine_id, ulid

Call = Callable[[HostAgent, int], Awaitable[object]]


def spec(machine: str) -> MachineVersionSpec:
    return MachineVersionSpec(machine, ulid(), "bench", 1, "registry.local/bench/app:1", init_exec=("sleep", "1"))


def soon() -> Deadline:
    return Deadline.after(30)


async def prepare_one(agent: HostAgent, _: int) -> None:
    await agent.prepare(spec(machine_id()), key=ulid(), deadline=soon())


def status_of(machines: list[str]) -> Call:
    async def status(agent: HostAgent, i: int) -> None:
        await agent.status(machines[i % len(machines)])

    return status


def start_of(machines: list[tuple[str, str]]) -> Call:
    async def start(agent: HostAgent, i: int) -> None:
        machine, version = machines[i % len(machines)]
        await agent.start(machine, version, key=ulid(), deadline=soon())

    return start


def stop_of(machines: list[tuple[str, str]]) -> Call:
    async def stop(agent: HostAgent, i: int) -> None:
        machine, _ = machines[i % len(machines)]
        await agent.stop(machine, signal=15, timeout=1, key=ulid(), deadline=soon())

    return stop


Figures = tuple[float, float, float]  # p50 ms of one call, calls per second, CPU ms per call (both processes)
CpuClock = Callable[[], float]


def cpu_of(pid: int | None) -> CpuClock:
    """CPU seconds used by this process and, if given, by the child `pid` (the server): on a busy host, wall
    times wait for a CPU as well, and CPU time is what the hop costs the host."""
    ticks = os.sysconf("SC_CLK_TCK")

    def clock() -> float:
        used = time.process_time()
        if pid is not None:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            used += (int(fields[11]) + int(fields[12])) / ticks  # utime and stime
        return used

    return clock


async def measure(agent: HostAgent, call: Call, calls: int, concurrency: int, cpu: CpuClock) -> Figures:
    """`Figures` of `calls` calls, made by `concurrency` callers taking turns."""
    latencies: list[float] = []
    counter = iter(range(calls))

    async def caller() -> None:
        for i in counter:
            began = time.perf_counter()
            await call(agent, i)
            latencies.append((time.perf_counter() - began) * 1000)

    began, cpu_began = time.perf_counter(), cpu()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed, cpu_used = time.perf_counter() - began, cpu() - cpu_began
    return statistics.median(latencies), calls / elapsed, cpu_used * 1000 / calls


async def machines_on(agent: HostAgent, count: int) -> list[tuple[str, str]]:
    made = []
    for _ in range(count):
        version = spec(machine_id())
        await agent.prepare(version, key=ulid(), deadline=soon())
        made.append((version.machine_id, version.version))
    return made


async def suite(agent: HostAgent, calls: int, concurrency: int, cpu: CpuClock) -> dict[str, Figures]:
    machines = await machines_on(agent, max(concurrency, 1))  # one per caller: a start never meets a running one
    await measure(agent, prepare_one, min(200, calls), concurrency, cpu)  # warm-up: connections, caches
    results = {"status": await measure(agent, status_of([m for m, _ in machines]), calls, concurrency, cpu)}
    results["prepare"] = await measure(agent, prepare_one, calls, concurrency, cpu)
    starts, stops = [], []
    for _ in range(max(1, calls // len(machines))):
        starts.append(await measure(agent, start_of(machines), len(machines), concurrency, cpu))
        stops.append(await measure(agent, stop_of(machines), len(machines), concurrency, cpu))
    results["start"] = medians(starts)
    results["stop"] = medians(stops)
    return results


def medians(rounds: list[Figures]) -> Figures:
    return (
        statistics.median(r[0] for r in rounds),
        statistics.median(r[1] for r in rounds),
        statistics.median(r[2] for r in rounds),
    )


def serve_child(port: int, token: str) -> None:
    """The child: a FakeAgent behind the agent's server on 127.0.0.1:port, until SIGTERM."""
    import uvloop

    server = agent_server(FakeAgent(name="bench"), token, port=port)
    uvloop.run(server.serve())


def start_child(token: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"BENCH_AGENT_TOKEN": token}
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return child, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    child.kill()
    raise SystemExit("the agent's server never listened")


async def compare(calls: int, levels: list[int]) -> None:
    token = secrets.token_urlsafe(32)
    child, url = start_child(token)
    try:
        for concurrency in levels:
            floor = await suite(FakeAgent(), calls, concurrency, cpu_of(None))
            remote = RemoteAgent(url, token)
            try:
                hop = await suite(remote, calls, concurrency, cpu_of(child.pid))
            finally:
                await remote.close()
            report(concurrency, floor, hop)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)


def report(concurrency: int, floor: dict[str, Figures], hop: dict[str, Figures]) -> None:
    print(f"\nconcurrency {concurrency}: RemoteAgent → server → FakeAgent, against FakeAgent in-process (floor)")
    print(
        f"{'call':<9}{'floor p50':>10}{'hop p50':>9}{'added':>8}{'hop CPU':>9}{'floor/s':>10}{'hop/s':>8}"
        f"{'hop/floor':>11}   (ms; CPU: client and server together, per call)"
    )
    for name in ("status", "prepare", "start", "stop"):
        (floor_p50, floor_rate, _), (hop_p50, hop_rate, hop_cpu) = floor[name], hop[name]
        print(
            f"{name:<9}{floor_p50:>10.4f}{hop_p50:>9.3f}{hop_p50 - floor_p50:>8.3f}{hop_cpu:>9.3f}"
            f"{floor_rate:>10.0f}{hop_rate:>8.0f}{hop_rate / floor_rate:>11.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated numbers of concurrent callers")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child process's mode
    args = parser.parse_args()
    if args.serve is not None:
        serve_child(args.serve, os.environ["BENCH_AGENT_TOKEN"])
        return
    import uvloop

    uvloop.run(compare(args.calls, [int(level) for level in args.concurrency.split(",")]))


if __name__ == "__main__":
    main()
