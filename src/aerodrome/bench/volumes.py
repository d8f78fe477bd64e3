"""Volumes: create through the API beside making the same ext4 image on the host disk, and sequential writes
inside a machine onto its volume beside the same write on the host disk."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx

from aerodrome.bench.figures import Figure, Goal, Target
from aerodrome.bench.probe import Server, delete_app, elapsed_ms

APP = "bench-volumes"
SIZE_GB = 8  # in the daemon's volume units (--volume-unit-mb)


def timed_dd(target: str, mb: int) -> str:
    """dd under busybox `time` (dd itself reports no timing); the host runs the same static busybox."""
    return f"busybox time dd if=/dev/zero of={target} bs=1M count={mb} conv=fsync 2>&1"


def dd_seconds(output: str) -> float:
    found = re.search(r"real\s+(\d+)m\s*([0-9.]+)s", output)
    if found is None:
        raise RuntimeError(f"no timing in {output!r}")
    return int(found.group(1)) * 60 + float(found.group(2))


def host_mkfs(directory: Path, size_mb: int) -> float:
    """The floor of a create: a sparse file made into ext4 on the host disk."""
    image = directory / "floor.img"
    began = time.perf_counter()
    with open(image, "wb") as handle:
        handle.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    took = elapsed_ms(began)
    image.unlink()
    return took


def host_write_rate(directory: Path, mb: int) -> float:
    line = timed_dd(str(directory / "floor.bin"), mb)
    out = subprocess.run(["busybox", "sh", "-c", line], capture_output=True, text=True, check=True).stdout
    (directory / "floor.bin").unlink()
    return mb / dd_seconds(out)


def _ok(response: httpx.Response) -> dict[str, object]:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.text[:300]}")
    reply: dict[str, object] = response.json()
    return reply


def measure(server: Server, disk: Path, unit_mb: int, rounds: int, write_mb: int) -> list[Figure]:
    """`disk` is a directory on the disk the daemon keeps its volume images on."""
    image = server.push_image("volumes")
    base = f"/v1/apps/{APP}/volumes"
    creates, floor_creates, writes, floor_writes = [], [], [], []
    with server.client() as api:
        _ok(api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}))
        volumes = []
        for _ in range(rounds):
            began = time.perf_counter()
            volumes.append(str(_ok(api.post(base, json={"name": "data", "size_gb": SIZE_GB}))["id"]))
            creates.append(elapsed_ms(began))
            floor_creates.append(host_mkfs(disk, SIZE_GB * unit_mb))
        config = {"image": image, "mounts": [{"volume": volumes[0], "path": "/data"}]}
        machine = str(_ok(api.post(f"/v1/apps/{APP}/machines", json={"config": config}))["id"])
        _ok(api.get(f"/v1/apps/{APP}/machines/{machine}/wait", params={"state": "started", "timeout": 60}))
        command = {"command": ["sh", "-c", timed_dd("/data/bench.bin", write_mb)], "timeout": 120}
        for _ in range(rounds):
            out = _ok(api.post(f"/v1/apps/{APP}/machines/{machine}/exec", json=command, timeout=180))
            writes.append(write_mb / dd_seconds(str(out["stdout"])))
            floor_writes.append(host_write_rate(disk, write_mb))
        delete_app(api, APP)
    return [
        Figure.of("volumes", "volume create", "ms", creates, floor_name="host mkfs.ext4", floor_samples=floor_creates),
        Figure.of(
            "volumes",
            f"write {write_mb} MB in a machine",
            "MB/s",
            writes,
            floor_name="the same dd on the host disk",
            floor_samples=floor_writes,
            target=Target(Goal.RATIO_AT_LEAST, 0.8),
        ),
    ]
