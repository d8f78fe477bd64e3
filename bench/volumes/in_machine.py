"""Sequential write throughput inside a machine, onto its volume, beside the same write on the host's disk.

    sudo .venv/bin/python bench/volumes/in_machine.py [--mb 200] [--rounds 3]

Both sides run busybox `dd bs=1M conv=fsync` under busybox `time` (the host runs the same static binary), so the
ratio isolates the volume path: loop device (direct I/O), ext4 on a sparse file, bind mount into the machine.
Target: at least 0.8x the host.
The first round writes a fresh file (the sparse image allocates as it goes); later rounds rewrite it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import running_server

from aerodrome.bench.volumes import dd_seconds as seconds
from aerodrome.bench.volumes import timed_dd

APP = "bench-volume-writes"


def host_write(directory: Path, mb: int) -> float:
    line = timed_dd(str(directory / "bench.bin"), mb)
    result = subprocess.run(["busybox", "sh", "-c", line], capture_output=True, text=True, check=True)
    return seconds(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # one "GB" is 1 GiB here, so that the volume holds the file with room to spare
    with running_server("--volume-unit-mb", "1024") as server, tempfile.TemporaryDirectory() as host_dir:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"})
            volume = api.post(f"/v1/apps/{APP}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
            config = {
                "image": image,
                "mounts": [{"volume": volume["id"], "path": "/data"}],
                "guest": {"memory_mb": 1024},
            }
            machine = create_machine(api, APP, config)
            wait_for(api, APP, machine["id"], "started")
            inside, host = [], []
            for _ in range(args.rounds):
                result = machine_exec(api, APP, machine["id"], "sh", "-c", timed_dd("/data/bench.bin", args.mb))
                inside.append(seconds(result["stdout"]))
                host.append(host_write(Path(host_dir), args.mb))
            api.delete(f"/v1/apps/{APP}")
    rounds = {
        "first write (fresh)": (inside[0], host[0]),
        "rewrite, median": (statistics.median(inside[1:] or inside), statistics.median(host[1:] or host)),
    }
    for label, (machine_seconds, host_seconds) in rounds.items():
        machine_rate, host_rate = args.mb / machine_seconds, args.mb / host_seconds
        ratio = machine_rate / host_rate
        print(f"{label:22} machine {machine_rate:7.1f} MB/s   host {host_rate:7.1f} MB/s   {ratio:.2f}x")


if __name__ == "__main__":
    main()
