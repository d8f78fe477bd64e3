"""How cost grows with work: running machines ramped in steps, each step's create → HTTP time, the API's GET
latency, the daemon's memory and CPU, and what each machine adds to the host; then created (not started)
machines in bulk, and a listing of all of them."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from aerodrome.bench import api as api_bench
from aerodrome.bench.figures import Figure, Goal, Target
from aerodrome.bench.host import available_mib, host_counts, process_counts, process_cpu_seconds, process_rss_mib
from aerodrome.bench.probe import Server, delete_app, elapsed_ms, wait_answer

APP = "bench-scale"
#: The ramp stops before the host runs short of memory, whatever the steps asked for.
RESERVE_MIB = 2048


def _launch(api: httpx.Client, image: str) -> float:
    began = time.perf_counter()
    made = api.post(f"/v1/apps/{APP}/machines", json={"config": {"image": image}})
    if made.status_code != 200:
        raise RuntimeError(f"create answered {made.status_code}: {made.text[:300]}")
    wait_answer(str(made.json()["private_ip"]), 8080)
    return elapsed_ms(began)


def ramp(server: Server, api: httpx.Client, image: str, steps: tuple[int, ...]) -> dict[str, list[float]]:
    curves: dict[str, list[float]] = {
        k: [] for k in ("running", "create_ms", "get_ms", "rss_mib", "cpu_ms", "daemon_fds", "daemon_threads")
    }
    extra: dict[str, list[float]] = {k: [] for k in ("host_mib", "processes", "interfaces", "netns", "mounts")}
    before, memory_before = host_counts(), available_mib()
    running, cpu_before = 0, process_cpu_seconds(server.pid)
    probe = api.post(f"/v1/apps/{APP}/machines", json={"config": {"image": image}, "skip_launch": True}).json()
    for step in steps:
        if available_mib() < RESERVE_MIB:
            break
        took = [_launch(api, image) for _ in range(step - running)]
        cpu_after = process_cpu_seconds(server.pid)
        curves["running"].append(step)
        curves["create_ms"].append(statistics.median(took))
        curves["cpu_ms"].append((cpu_after - cpu_before) * 1000 / len(took))  # daemon CPU per machine launched
        gets = api_bench.time_gets(api, f"/v1/apps/{APP}/machines/{probe['id']}", 50)
        curves["get_ms"].append(statistics.median(gets))
        curves["rss_mib"].append(process_rss_mib(server.pid))
        daemon = process_counts(server.pid)
        curves["daemon_fds"].append(daemon["fds"])
        curves["daemon_threads"].append(daemon["threads"])
        counts = host_counts()
        extra["host_mib"].append((memory_before - available_mib()) / step)
        for name in ("processes", "interfaces", "netns", "mounts"):
            extra[name].append((counts[name] - before[name]) / step)
        running, cpu_before = step, cpu_after
    curves.update({f"per_machine_{k}": v for k, v in extra.items()})
    return curves


def measure(server: Server, steps: tuple[int, ...], created: int) -> tuple[list[Figure], dict[str, list[float]]]:
    image = server.push_image("scale")
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).raise_for_status()
        try:
            curves = ramp(server, api, image, steps)
            rss_before = process_rss_mib(server.pid)
            rate = asyncio.run(api_bench.create_many(server, image, created, app=APP))
            curves["created"] = [float(created)]
            curves["created_rss_mib"] = [process_rss_mib(server.pid) - rss_before]
            listing = api_bench.time_gets(api, f"/v1/apps/{APP}/machines", 5)
        finally:
            delete_app(api, APP)
    top = int(curves["running"][-1])
    figures = [
        Figure.of("scale", f"create → HTTP at {top} running", "ms", [curves["create_ms"][-1]]),
        Figure.of("scale", f"GET machine at {top} running", "ms", [curves["get_ms"][-1]]),
        Figure.of("scale", f"host memory per running machine ({top})", "MiB", [curves["per_machine_host_mib"][-1]]),
        Figure.of("scale", f"daemon RSS at {top} running", "MiB", [curves["rss_mib"][-1]]),
        Figure.of("scale", f"creates with {top} running", "/s", [rate], target=Target(Goal.AT_LEAST, 200)),
        Figure.of("scale", f"list {top + created + 1} machines", "ms", listing, target=Target(Goal.AT_MOST, 250)),
    ]
    return figures, curves
