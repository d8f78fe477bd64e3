"""The edge: requests per second through it to a machine's busybox httpd, beside a direct connection to the same
machine and nginx in front of it, as concurrency grows; and its added latency at one connection."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from aerodrome.bench.figures import ANCHORS, Figure, Goal, Target
from aerodrome.bench.floors import nginx_proxy
from aerodrome.bench.probe import Server, delete_app, wait_answer

APP = "bench-edge"
SERVICE = {
    "protocol": "tcp",
    "internal_port": 8080,
    "autostart": True,
    "autostop": "off",
    "ports": [{"port": 80, "handlers": ["http"]}],
}
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True, slots=True)
class Load:
    rate: float  # requests per second
    p50_ms: float
    p90_ms: float


def wrk(url: str, connections: int, seconds: float, host: str = "") -> Load:
    """One wrk run (one thread): its rate and latency percentiles."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if host:
        argv[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")

    def latency(percent: int) -> float:
        found = re.search(rf"^\s+{percent}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(found.group(1)) * UNITS_MS[found.group(2)] if found else float("nan")

    return Load(float(rate.group(1)), latency(50), latency(90))


def _machine(server: Server, api: httpx.Client) -> str:
    image = server.push_image("edge")
    api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).raise_for_status()
    made = api.post(f"/v1/apps/{APP}/machines", json={"config": {"image": image, "services": [SERVICE]}}).json()
    address = str(made["private_ip"])
    wait_answer(address, 8080)
    return address


def measure(server: Server, workdir: Path, levels: tuple[int, ...], seconds: float) -> tuple[list[Figure], dict]:  # type: ignore[type-arg]
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (scripts/install-test-deps.sh installs it)")
    with server.client() as api:
        address = _machine(server, api)
        direct = f"http://[{address}]:8080/"
        edge = f"http://127.0.0.1:{server.edge_http_port}/"
        curves: dict[str, list[float]] = {"concurrency": [float(c) for c in levels]}
        curves.update(edge=[], direct=[], nginx=[])
        loads: dict[tuple[str, int], Load] = {}
        try:
            with nginx_proxy(workdir, f"[{address}]:8080") as nginx_port:
                targets = {"edge": (edge, f"{APP}.localhost"), "direct": (direct, "")}
                if nginx_port is not None:
                    targets["nginx"] = (f"http://127.0.0.1:{nginx_port}/", "")
                for url, host in targets.values():
                    wrk(url, 1, 1, host)  # warm-up
                for level in levels:
                    for name, (url, host) in targets.items():
                        loads[name, level] = wrk(url, level, seconds, host)
                        curves[name].append(loads[name, level].rate)
        finally:
            delete_app(api, APP)
    figures = [
        Figure(
            "proxy",
            "edge latency, 1 connection",
            "ms",
            loads["edge", levels[0]].p50_ms,
            loads["edge", levels[0]].p90_ms,
            floor_name="direct to the machine",
            floor_p50=loads["direct", levels[0]].p50_ms,
            floor_p90=loads["direct", levels[0]].p90_ms,
            target=Target(Goal.ADDED_AT_MOST, 1.0),
            anchors=ANCHORS["edge"],
        )
    ]
    top = levels[-1]
    reference = "nginx" if ("nginx", top) in loads else "direct"
    figures.append(
        Figure(
            "proxy",
            f"edge throughput, {top} connections",
            "req/s",
            loads["edge", top].rate,
            loads["edge", top].rate,
            floor_name="nginx in front of the machine" if reference == "nginx" else "direct to the machine",
            floor_p50=loads[reference, top].rate,
            floor_p90=loads[reference, top].rate,
            target=Target(Goal.RATIO_AT_LEAST, 0.5) if reference == "nginx" else None,
        )
    )
    return figures, curves
