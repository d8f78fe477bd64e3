"""The seed's cost order, measured through the API to the machine answering HTTP: resume, start, create, update,
each beside the bare runc operation that does the same work on the same program."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from aerodrome.bench.figures import ANCHORS, Figure, Goal, Target
from aerodrome.bench.floors import BareRunc
from aerodrome.bench.probe import Server, delete_app, elapsed_ms, wait_answer

APP = "bench-lifecycle"
PORT = 8080


class Lifecycle:
    """One machine at a time, taken through create → stop → start → suspend → resume → update → destroy."""

    def __init__(self, server: Server, api: httpx.Client) -> None:
        self.api = api
        self.images = {"v1": server.push_image("lifecycle-v1", "v1"), "v2": server.push_image("lifecycle-v2", "v2")}
        api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).raise_for_status()

    def _call(self, method: str, path: str, **kwargs: object) -> dict[str, object]:
        response = self.api.request(method, f"/v1/apps/{APP}/machines{path}", **kwargs)  # type: ignore[arg-type]
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        reply: dict[str, object] = response.json()
        return reply

    def _wait(self, machine: str, state: str) -> None:
        self._call("GET", f"/{machine}/wait", params={"state": state, "timeout": 60})

    def round(self, samples: dict[str, list[float]]) -> None:
        began = time.perf_counter()
        made = self._call("POST", "", json={"config": {"image": self.images["v1"]}})
        machine, address = str(made["id"]), str(made["private_ip"])
        wait_answer(address, PORT, b"v1")
        samples.setdefault("create", []).append(elapsed_ms(began))
        self._call("POST", f"/{machine}/stop")
        self._wait(machine, "stopped")
        began = time.perf_counter()
        self._call("POST", f"/{machine}/start")
        wait_answer(address, PORT, b"v1")
        samples.setdefault("start", []).append(elapsed_ms(began))
        self._call("POST", f"/{machine}/suspend")
        self._wait(machine, "suspended")
        began = time.perf_counter()
        self._call("POST", f"/{machine}/start")
        wait_answer(address, PORT, b"v1")
        samples.setdefault("resume", []).append(elapsed_ms(began))
        began = time.perf_counter()
        self._call("POST", f"/{machine}", json={"config": {"image": self.images["v2"]}})
        wait_answer(address, PORT, b"v2")
        samples.setdefault("update", []).append(elapsed_ms(began))
        self._call("DELETE", f"/{machine}", params={"force": "true"})

    def close(self) -> None:
        delete_app(self.api, APP)


def floor_round(bare: BareRunc, samples: dict[str, list[float]]) -> None:
    began = time.perf_counter()
    bare.run()
    samples.setdefault("run", []).append(elapsed_ms(began))
    bare.pause()
    began = time.perf_counter()
    bare.resume()
    samples.setdefault("resume", []).append(elapsed_ms(began))
    began = time.perf_counter()
    bare.delete()
    bare.run()
    samples.setdefault("replace", []).append(elapsed_ms(began))
    bare.delete()


def measure(server: Server, workdir: Path, rounds: int, warmup: int) -> list[Figure]:
    """Rounds alternate between the machine and the floor, so both see the same moments of a shared host."""
    bare = BareRunc(workdir / "floor")
    bare.prepare()
    ours: dict[str, list[float]] = {}
    floor: dict[str, list[float]] = {}
    with server.client() as api:
        lifecycle = Lifecycle(server, api)
        try:
            for index in range(warmup + rounds):
                mine, bares = ({}, {}) if index < warmup else (ours, floor)
                lifecycle.round(mine)
                floor_round(bare, bares)
        finally:
            bare.delete()
            lifecycle.close()
    run_floor, resume_floor, replace = "bare runc run -d → HTTP", "bare runc resume → HTTP", "bare delete + run"
    return [
        Figure.of(
            "runtime",
            "resume (suspended → HTTP)",
            "ms",
            ours["resume"],
            floor_name=resume_floor,
            floor_samples=floor["resume"],
            target=Target(Goal.AT_MOST, 10),
            anchors=ANCHORS["resume"],
        ),
        Figure.of(
            "runtime",
            "start (stopped → HTTP)",
            "ms",
            ours["start"],
            floor_name=run_floor,
            floor_samples=floor["run"],
            target=Target(Goal.RATIO_AT_MOST, 1.5),
            anchors=ANCHORS["start"],
        ),
        Figure.of("runtime", "create (→ HTTP)", "ms", ours["create"], floor_name=run_floor, floor_samples=floor["run"]),
        Figure.of(
            "runtime", "update (→ new HTTP)", "ms", ours["update"], floor_name=replace, floor_samples=floor["replace"]
        ),
    ]


def order(figures: list[Figure]) -> list[dict[str, object]]:
    """The seed's four costs from cheapest to dearest, each as a multiple of start (the seed's unit of cost)."""
    costs = {f.name.split(" ")[0]: f.p50 for f in figures if f.group == "runtime"}
    if "start" not in costs:
        return []
    return [
        {"operation": name, "p50_ms": p50, "x_start": p50 / costs["start"]}
        for name, p50 in sorted(costs.items(), key=lambda item: item[1])
    ]


def describe_order(steps: list[dict[str, object]]) -> str:
    return " < ".join(f"{s['operation']} {s['p50_ms']:.0f} ms ({s['x_start']:.2f}x start)" for s in steps)
