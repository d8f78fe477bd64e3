"""Cluster store benchmark: the API on PostgreSQL beside the API on SQLite, in the same run.

Runs `aerodrome serve` (root) twice, on its embedded SQLite file and on a PostgreSQL started for the run (Debian's,
in a temporary directory, as user `postgres`, fsync on: as durable as SQLite's synchronous=FULL), and measures on
each: GET machine p50, creates per second (skip_launch, 16 at once), list of the app's machines.

    sudo .venv/bin/python bench/cluster/run.py [--machines 10000] [--creates 1000]

Targets (issue "Several hosts"): creates >= 300/s on PostgreSQL; GET p50 <= 1.5x SQLite's; list of 10 000 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.postgres import running_postgres
from tests.support.server import Server, running_server

from aerodrome.bench.api import create_many, time_gets

SERVE_ARGS = ("--org-prefix-len", "16")  # room for 65 534 machines in the one organisation
CREATES_TARGET = 300.0  # per second, on PostgreSQL
GET_RATIO_TARGET = 1.5  # PostgreSQL's GET p50 over SQLite's
LIST_TARGET_MS = 250.0


def measure(name: str, database: str | None, args: argparse.Namespace) -> dict[str, float]:
    with running_server(*SERVE_ARGS, database=database) as server:
        figures = _measure_on(server, args)
        print(  # before the server's teardown, whose checks of the host may fail
            f"{name:10}  GET p50 {figures['get_p50_ms']:6.2f} ms   creates {figures['creates_per_s']:7.1f}/s   "
            f"list of {figures['listed']:.0f} {figures['list_ms']:7.1f} ms",
            flush=True,
        )
    return figures


def _measure_on(server: Server, args: argparse.Namespace) -> dict[str, float]:
    image = server.push_image("busybox")
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "bench", "org_slug": "personal"})
        machine = api.post("/v1/apps/bench/machines", json={"config": {"image": image}, "skip_launch": True}).json()
        url = f"/v1/apps/bench/machines/{machine['id']}"
        time_gets(api, url, 50)
        get_p50 = statistics.median(time_gets(api, url, args.gets))
    rate = asyncio.run(create_many(server, image, args.creates, app="bench"))
    remaining = args.machines - args.creates - 1
    if remaining > 0:
        asyncio.run(create_many(server, image, remaining, app="bench"))
    with server.client() as api:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            listed = api.get("/v1/apps/bench/machines")
            timings.append((time.perf_counter() - started) * 1000)
        count = len(listed.json())
        api.delete("/v1/apps/bench", timeout=3600)
    return {"get_p50_ms": get_p50, "creates_per_s": rate, "listed": count, "list_ms": statistics.median(timings)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=10_000, help="machines in the listed app")
    parser.add_argument("--creates", type=int, default=1_000, help="machines created through the API, timed")
    parser.add_argument("--gets", type=int, default=500)
    args = parser.parse_args()

    sqlite = measure("sqlite", None, args)
    with running_postgres(fsync=True) as postgres:
        pg = measure("postgresql", postgres.create_database(), args)
    ratio = pg["get_p50_ms"] / sqlite["get_p50_ms"]
    print(f"PostgreSQL GET p50 / SQLite's: {ratio:5.2f}x (target <= {GET_RATIO_TARGET:g}x)")
    print(f"PostgreSQL creates: {pg['creates_per_s'] / CREATES_TARGET:5.2f}x target (>= {CREATES_TARGET:g}/s)")
    print(f"PostgreSQL list: {pg['list_ms'] / LIST_TARGET_MS:5.2f}x target (<= {LIST_TARGET_MS:g} ms)")
    print("host load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))  # the figures' context


if __name__ == "__main__":
    main()
