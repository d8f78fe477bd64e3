"""Cold requests through the edge, on a real machine: request → first byte for a stopped and a suspended machine.

Runs a real `aerodrome serve` and one busybox httpd machine whose service has autostart. In the same run:
  floor           — the machine's own start: `POST …/start`, then GET its address directly until the first byte
  resume floor    — the same from suspended
  cold stopped    — machine stopped; GET through the edge (which starts it) until the first byte
  cold suspended  — machine suspended; the same (the edge resumes it)
  warm            — machine started; the same, through the edge and directly
Targets: cold stopped ≤ floor + 10 ms; cold suspended ≤ 15 ms in all.

    sudo .venv/bin/python bench/proxy/cold.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server, running_server

from aerodrome.bench.edge import SERVICE

APP = "cold"


def first_byte(address: str, port: int, host: str, retry_refused: bool = False) -> None:
    """Send a GET and wait for the first byte of the reply; with `retry_refused`, until something listens."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    while True:
        try:
            with socket.create_connection((address, port), timeout=30) as connection:
                connection.sendall(request)
                if connection.recv(1):
                    return
        except ConnectionRefusedError:
            if not retry_refused:
                raise
        time.sleep(0.0005)


def timed(action: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


def machine_ipv4(api: httpx.Client, machine_id: str) -> str:
    shown = machine_exec(api, APP, machine_id, "ip", "-4", "-o", "addr", "show", "eth0")["stdout"]
    return str(shown.split()[3].split("/")[0])


def measure(server: Server, rounds: int) -> dict[str, list[float]]:
    edge_host = f"{APP}.localhost:{server.edge_http_port}"
    samples: dict[str, list[float]] = {
        name: [] for name in ("floor", "resume floor", "stopped", "suspended", "warm", "warm direct")
    }
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"})
        config = {"image": server.image("busybox"), "services": [SERVICE]}
        machine_id = create_machine(api, APP, config)["id"]
        url = f"/v1/apps/{APP}/machines/{machine_id}"
        wait_for(api, APP, machine_id, "started")
        address = machine_ipv4(api, machine_id)

        def rest(action: str, state: str) -> None:
            assert api.post(f"{url}/{action}").status_code == 200
            wait_for(api, APP, machine_id, state)

        def start_directly() -> None:
            assert api.post(f"{url}/start").status_code == 200
            first_byte(address, 8080, address, retry_refused=True)

        through_edge = lambda: first_byte("127.0.0.1", server.edge_http_port, edge_host)  # noqa: E731
        for _ in range(rounds):
            rest("stop", "stopped")
            samples["floor"].append(timed(start_directly))
            rest("stop", "stopped")
            samples["stopped"].append(timed(through_edge))
            rest("suspend", "suspended")
            samples["suspended"].append(timed(through_edge))
            samples["warm"].append(timed(through_edge))
            samples["warm direct"].append(timed(lambda: first_byte(address, 8080, address)))
            rest("suspend", "suspended")
            samples["resume floor"].append(timed(start_directly))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with running_server("--no-rate-limits", "--autostop-idle", "3600") as server:
        server.push_image("busybox")
        samples = measure(server, args.rounds)
    p50 = {name: statistics.median(values) for name, values in samples.items()}
    print(f"request → first byte, p50 of {args.rounds} rounds (ms)")
    print(f"floor: start + first byte direct  {p50['floor']:8.2f}")
    print(
        f"cold, stopped machine             {p50['stopped']:8.2f}   floor + {p50['stopped'] - p50['floor']:.2f} ms"
        "   (target ≤ floor + 10 ms)"
    )
    print(f"floor: resume + first byte direct {p50['resume floor']:8.2f}")
    print(
        f"cold, suspended machine           {p50['suspended']:8.2f}   "
        f"resume floor + {p50['suspended'] - p50['resume floor']:.2f} ms   (target ≤ 15 ms in all)"
    )
    print(f"warm, through the edge            {p50['warm']:8.2f}   direct {p50['warm direct']:.2f}")


if __name__ == "__main__":
    main()
