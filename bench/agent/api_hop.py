"""The network hop at the API: creates per second and a machine's start, through the in-process agent and
through `aerodrome agent` in another process, side by side in the same run.

    sudo .venv/bin/python bench/agent/api_hop.py [--creates 300] [--starts 30]

Two daemons run at once on free loopback ports: plain `aerodrome serve` (its agent inside it) and `aerodrome
serve --agent` driving an `aerodrome agent` process. Each figure alternates between them slice by slice, so both
see the same moments of a shared host. "start" is `POST /machines/{id}/start` (which answers once the host has
started the machine: the control plane waits for the agent) of a stopped busybox httpd machine. Targets: the hop
adds at most 1 ms to start's median, and takes at most 10 % off creates/s.

Measured on this project's 2-core host, shared (load average 6.5), --creates 300 --starts 30:

    in-process: creates 141.2/s   start p50 89.92 ms  p90 285.28 ms
       network: creates  57.9/s   start p50 89.25 ms  p90 169.67 ms
    the hop adds -0.67 ms to start's median; it takes 59.0 % off creates/s

This is a script rather than an `aerodrome bench` group, since that command measures one daemon and the hop needs
two (one with an agent process beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.agents import HostProcess
from tests.support.server import Server

from aerodrome.bench.api import create_many
from aerodrome.cli.daemon import release_pool, unrouted_pool

APP = "hop"
START_TARGET_MS = 1.0
CREATES_TARGET = 0.10  # at most this share of creates/s lost to the hop


@contextlib.contextmanager
def daemons() -> Iterator[tuple[Server, Server]]:
    """(in-process, over the network): both serve, the second driving an agent process on its own directory."""
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-hop-"))
    try:
        inside = Server(workdir / "inside" / "data")
        remote = Server(workdir / "remote" / "data", machine_pool=unrouted_pool())
    except RuntimeError:  # no address pool free: nothing started yet
        shutil.rmtree(workdir)
        raise
    for server in (inside, remote):
        server.data_dir.mkdir(mode=0o700, parents=True)
    agent = HostProcess(
        "hop-host",
        workdir / "remote" / "agent",
        remote.registry,
        remote.data_dir / "registry",
        machine_pool=remote.machine_pool,
    )
    remote.extra_args = ("--agent", agent.url, "--agent-token-file", str(agent.token_file))
    try:
        agent.start()
        inside.start()
        remote.start()
        yield inside, remote
    finally:
        for server in (inside, remote):
            with contextlib.suppress(Exception), server.client() as api:
                api.delete(f"/v1/apps/{APP}")
                deadline = time.monotonic() + 600
                while api.get(f"/v1/apps/{APP}").status_code != 404 and time.monotonic() < deadline:
                    time.sleep(0.2)
            server.stop()
        agent.stop()
        for pool in (inside.machine_pool, remote.machine_pool):
            release_pool(pool)
        shutil.rmtree(workdir, ignore_errors=True)


def stopped_machines(api: httpx.Client, image: str, count: int) -> list[str]:
    made = []
    for _ in range(count):
        reply = api.post(f"/v1/apps/{APP}/machines", json={"config": {"image": image}, "skip_launch": True})
        reply.raise_for_status()
        made.append(reply.json()["id"])
    return made


def time_start(api: httpx.Client, mid: str) -> float:
    """One start, in ms, then the machine stopped again (not timed) for the next round."""
    began = time.perf_counter()
    api.post(f"/v1/apps/{APP}/machines/{mid}/start").raise_for_status()
    elapsed = (time.perf_counter() - began) * 1000
    api.get(f"/v1/apps/{APP}/machines/{mid}/wait", params={"state": "started", "timeout": 30}).raise_for_status()
    api.post(f"/v1/apps/{APP}/machines/{mid}/stop").raise_for_status()
    api.get(f"/v1/apps/{APP}/machines/{mid}/wait", params={"state": "stopped", "timeout": 30}).raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=300, help="creates (skip_launch) per daemon, in 3 slices")
    parser.add_argument("--starts", type=int, default=30, help="starts per daemon")
    args = parser.parse_args()
    with daemons() as (inside, remote):
        pair = {"in-process": inside, "network": remote}
        images = {name: server.push_image("busybox") for name, server in pair.items()}
        clients = {name: server.client() for name, server in pair.items()}
        rates: dict[str, list[float]] = {name: [] for name in pair}
        starts: dict[str, list[float]] = {name: [] for name in pair}
        try:
            for api in clients.values():
                api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).raise_for_status()
            for _ in range(3):
                for name, server in pair.items():
                    rates[name].append(asyncio.run(create_many(server, images[name], args.creates // 3, app=APP)))
            machines = {name: stopped_machines(clients[name], images[name], 3) for name in pair}
            for round_ in range(args.starts):
                for name, api in clients.items():
                    starts[name].append(time_start(api, machines[name][round_ % 3]))
        finally:
            for api in clients.values():
                api.close()
    report(rates, starts)


def report(rates: dict[str, list[float]], starts: dict[str, list[float]]) -> None:
    for name in rates:
        samples = sorted(starts[name])
        print(
            f"{name:>10}: creates {statistics.median(rates[name]):7.1f}/s   "
            f"start p50 {statistics.median(samples):7.2f} ms  p90 {samples[int(0.9 * len(samples))]:7.2f} ms"
        )
    added = statistics.median(starts["network"]) - statistics.median(starts["in-process"])
    lost = 1 - statistics.median(rates["network"]) / statistics.median(rates["in-process"])
    print(f"the hop adds {added:+.2f} ms to start's median (target <= {START_TARGET_MS:g} ms)")
    print(f"the hop takes {100 * lost:+.1f} % off creates/s (target <= {100 * CREATES_TARGET:g} %)")


if __name__ == "__main__":
    main()
