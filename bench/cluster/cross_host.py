"""The cross-host hop of the private network: what reaching a machine on another host adds to a request.

Builds hosts as network namespaces on a bridge (tests/support/hosts.py: `aerodrome agent` in each, serve in
an "edge" netns of its own), starts a busybox httpd machine on host-b, and times GET / at the machine's 6PN
address over a fresh TCP connection each (as busybox httpd closes every connection), from two places: host-b's
own netns (the machine's host: its veth only, as a same-host edge dials it) and the edge's netns (the bridge, then
host-b forwarding into the veth: what the edge's dial to a machine on another host crosses). The difference of
the medians is the hop; the edge's own request through its proxy is timed too, from inside its netns.

    sudo .venv/bin/python bench/cluster/cross_host.py [--requests 2000]

Target (issue "Several hosts"): the cross-host hop adds <= 0.2 ms.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from tests.support.hosts import REGIONS, Cluster, new_cluster
from tests.support.netns import call_in
from tests.support.services import SELF_NAMING, http_service

HOP_TARGET_MS = 0.2
SERVICE = http_service(autostart=False)


def get_once(address: tuple[str, int], host_header: str) -> float:
    """Seconds for one GET / over a new connection, to the end of the reply."""
    request = f"GET / HTTP/1.1\r\nhost: {host_header}\r\nconnection: close\r\n\r\n".encode()
    started = time.perf_counter()
    with socket.create_connection(address, timeout=5) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(request)
        while conn.recv(65536):
            pass
    return time.perf_counter() - started


def timed(address: tuple[str, int], count: int, host_header: str = "bench") -> Callable[[], list[float]]:
    def run() -> list[float]:
        for _ in range(50):  # warm-up: neighbour entries, the route cache, the machine's page in memory
            get_once(address, host_header)
        return [get_once(address, host_header) for _ in range(count)]

    return run


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def machine_on_host_b(cluster: Cluster) -> dict[str, object]:
    server = cluster.server
    assert server is not None
    image = server.push_image("busybox")
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": "far", "org_slug": "personal"}).status_code == 201
        config = {"image": image, "init": {"exec": ["sh", "-c", SELF_NAMING]}, "services": [SERVICE]}
        body = {"config": config, "region": REGIONS[1]}
        machine: dict[str, object] = api.post("/v1/apps/far/machines", json=body).json()
        api.get(f"/v1/apps/far/machines/{machine['id']}/wait", params={"state": "started", "timeout": 60})
    return machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    cluster = new_cluster(["host-a", "host-b"])
    try:
        machine = machine_on_host_b(cluster)
        assert cluster.server is not None
        target = (str(machine["private_ip"]), 8080)
        httpx.get(f"http://127.0.0.1:{cluster.server.edge_http_port}/", headers={"host": "far.localhost"}, timeout=10)
        same_host = call_in(cluster.nets[1].path, timed(target, args.requests))
        cross_host = call_in(cluster.edge.path, timed(target, args.requests))
        edge = ("127.0.0.1", cluster.server.edge_http_port)
        through_edge = call_in(cluster.edge.path, timed(edge, args.requests, "far.localhost"))
        hop = p50_ms(cross_host) - p50_ms(same_host)
        print(f"GET to the machine from its own host   p50 {p50_ms(same_host):.3f} ms")
        print(f"GET to the machine from another host   p50 {p50_ms(cross_host):.3f} ms")
        print(f"cross-host hop added                   {hop:.3f} ms (target <= {HOP_TARGET_MS} ms)")
        print(f"GET through the edge (machine on host-b) p50 {p50_ms(through_edge):.3f} ms")
        server = cluster.server
        server.destroy_everything()
    finally:
        cluster.close()
        shutil.rmtree(cluster.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
