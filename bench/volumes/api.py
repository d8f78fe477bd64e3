"""Volumes through the API: create, get (usage read from the filesystem), extend, snapshot, and what a growth left
pending costs the next start — each beside a floor measured in the same run (GET /v1/apps/{app}, and a start
of the same machine with nothing to grow).

    sudo .venv/bin/python bench/volumes/api.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.server import running_server

APP = "bench-volumes"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 300, response.text
    return response


def restart(api: httpx.Client, mid: str) -> None:
    ok(api.post(f"/v1/apps/{APP}/machines/{mid}/stop"))
    ok(api.post(f"/v1/apps/{APP}/machines/{mid}/start"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    with running_server("--volume-check-interval", "0") as server:
        image = server.push_image("busybox")
        with server.client() as api:
            ok(api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}))
            base = f"/v1/apps/{APP}/volumes"
            floor = [timed(lambda: ok(api.get(f"/v1/apps/{APP}"))) for _ in range(rounds)]
            created: list[str] = []
            create = [
                timed(lambda: created.append(ok(api.post(base, json={"name": "v", "size_gb": 1})).json()["id"]))
                for _ in range(rounds)
            ]
            get = [timed(lambda v=v: ok(api.get(f"{base}/{v}"))) for v in created]  # type: ignore[misc]
            extend = [
                timed(lambda v=v: ok(api.put(f"{base}/{v}/extend", json={"size_gb": 2})))  # type: ignore[misc]
                for v in created
            ]
            snapshot = [timed(lambda v=v: ok(api.post(f"{base}/{v}/snapshots"))) for v in created]  # type: ignore[misc]
            config = {"image": image, "mounts": [{"volume": created[0], "path": "/data"}]}
            mid = ok(api.post(f"/v1/apps/{APP}/machines", json={"config": config, "skip_launch": True})).json()["id"]
            ok(api.post(f"/v1/apps/{APP}/machines/{mid}/start"))
            plain, grown = [], []
            for size in range(3, 3 + rounds):
                plain.append(timed(lambda: restart(api, mid)))
                ok(api.put(f"{base}/{created[0]}/extend", json={"size_gb": size}))
                grown.append(timed(lambda: restart(api, mid)))
    floor_ms = statistics.median(floor)
    print(f"floor: GET app p50 {floor_ms:.1f} ms")
    for name, samples in (("create", create), ("get", get), ("extend", extend), ("snapshot", snapshot)):
        p50 = statistics.median(samples)
        print(f"{name:>9}: p50 {p50:7.1f} ms  ({p50 / floor_ms:5.1f}x the floor)")
    p50_plain, p50_grown = statistics.median(plain), statistics.median(grown)
    print(
        f"stop+start: p50 {p50_plain:.1f} ms; with a pending growth {p50_grown:.1f} ms ({p50_grown / p50_plain:.2f}x)"
    )


if __name__ == "__main__":
    main()
