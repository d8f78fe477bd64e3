"""Faults inside machines and under the daemon: a crash loop, an OOM kill, a full data filesystem.

Against a real `aerodrome serve`: the loop restarts with a growing backoff that the events show, an OOM kill is
reported as Fly reports it, and a full disk gives Fly-shaped 507s that change nothing, with every operation
working again once space is back. Each test ends with the host as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aerodrome.cli.pools import release_pool
from aerodrome.core.restarts import restart_backoff
from tests.api.helpers import create_machine, wait_for
from tests.runtime.runc_fixtures import host_leftovers, network_leftovers
from tests.support.server import Server, running_server

HOG = 'x=$(head -c 700000000 /dev/zero | tr "\\0" a); echo survived'  # past a 256 MB guest


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


def events(api: httpx.Client, app: str, machine_id: str) -> list[dict[str, Any]]:
    """The machine's events, oldest first."""
    found = api.get(f"/v1/apps/{app}/machines/{machine_id}/events", params={"limit": 200})
    assert found.status_code == 200, found.text
    return sorted(found.json(), key=lambda event: (event["timestamp"], event["id"]))


def until(predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)
    return value


def zombies_of(pid: int) -> list[str]:
    """Children of `pid` that exited and were never reaped."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == pid:
                found.append(stat.parent.name)
    return found


def leftovers(server: Server, machine_id: str) -> list[str]:
    root = server.data_dir / "runtime"
    return asyncio.run(host_leftovers(root, [machine_id])) + asyncio.run(network_leftovers([machine_id]))


def destroy(api: httpx.Client, app: str, machine_id: str) -> None:
    response = api.delete(f"/v1/apps/{app}/machines/{machine_id}", params={"force": "true"})
    assert response.status_code == 200, response.text
    wait_for(api, app, machine_id, "destroyed")


# --- a crash loop -----------------------------------------------------------------------------------------------


def test_a_crash_loop_restarts_with_backoff_and_harms_nothing(server: Server, api: httpx.Client, app_name: str) -> None:
    config = {
        "image": server.image(),
        "init": {"exec": ["sh", "-c", "echo crashing; exit 3"]},
        "restart": {"policy": "always"},
    }
    machine = create_machine(api, app_name, config)["id"]
    restarts = 6

    def exits() -> list[dict[str, Any]]:
        found = [e for e in events(api, app_name, machine) if e["type"] == "exit"]
        return found if len(found) > restarts else []

    while not exits():  # meanwhile the daemon answers as usual
        assert httpx.get(f"{server.api_url}/health", timeout=10).status_code == 200
        assert api.get(f"/v1/apps/{app_name}/machines").status_code == 200
        time.sleep(0.2)
    history = events(api, app_name, machine)
    exited = [e for e in history if e["type"] == "exit"]
    for count, event in enumerate(exited[:restarts]):  # each followed by its restart
        exit_event = event["request"]["exit_event"]
        assert exit_event["exit_code"] == 3 and exit_event["restarting"] is True, event
        assert exit_event["oom_killed"] is False and exit_event["requested_stop"] is False
        assert event["request"]["restart_count"] == count and event["source"] == "flyd"
        # The restart after exit n waits restart_backoff(n) at least: a crash loop cannot spin the host.
        restarted = next(e for e in history if e["type"] == "start" and e["timestamp"] >= event["timestamp"])
        assert restarted["timestamp"] - event["timestamp"] >= restart_backoff(count) * 1000 - 1, (event, restarted)
    destroy(api, app_name, machine)
    assert leftovers(server, machine) == []
    assert server.process is not None and zombies_of(server.process.pid) == []


# --- out of memory ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "starts"), [({"policy": "no"}, 1), ({"policy": "on-failure", "max_retries": 1}, 2)])
def test_an_oom_kill_is_reported_and_the_policy_decides(
    server: Server, api: httpx.Client, app_name: str, policy: dict[str, Any], starts: int
) -> None:
    config = {
        "image": server.image(),
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "init": {"exec": ["sh", "-c", HOG]},
        "restart": policy,
    }
    machine = create_machine(api, app_name, config)["id"]

    def settled() -> list[dict[str, Any]]:
        found = [e for e in events(api, app_name, machine) if e["type"] == "exit"]
        return found if len(found) == starts and not found[-1]["request"]["exit_event"]["restarting"] else []

    exited = until(settled, timeout=120)
    wait_for(api, app_name, machine, "stopped")
    for count, event in enumerate(exited):
        exit_event = event["request"]["exit_event"]
        assert exit_event["oom_killed"] is True, event
        assert exit_event["exit_code"] == 137 and exit_event["requested_stop"] is False
        assert exit_event["restarting"] is (count < starts - 1)
    starts_seen = [e for e in events(api, app_name, machine) if e["type"] == "start"]
    assert len(starts_seen) == starts
    assert api.get(f"/v1/apps/{app_name}/machines/{machine}").json()["state"] == "stopped"
    destroy(api, app_name, machine)
    assert leftovers(server, machine) == []


# --- a full data filesystem -------------------------------------------------------------------------------------


class SmallDiskServer(Server):
    """A server whose data directory is on a small filesystem; its log stays elsewhere, so it can say what failed."""

    log_file: Path = Path()

    @property
    def log_path(self) -> Path:
        return self.log_file


@contextlib.contextmanager
def small_filesystem(size_mb: int) -> Iterator[Path]:
    """A fresh ext4 of `size_mb` on a loop device, mounted in a temporary directory; all of it undone after."""
    if shutil.which("mkfs.ext4") is None or not Path("/dev/loop-control").exists():
        pytest.skip("needs mkfs.ext4 and loop devices")
    work = Path(tempfile.mkdtemp(prefix="aerodrome-small-disk-"))
    image, mountpoint = work / "disk.img", work / "mnt"
    mountpoint.mkdir()
    subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", "-F", str(image)], check=True)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True)
    loop, mounted = device.stdout.strip(), False
    try:
        subprocess.run(["mount", loop, str(mountpoint)], check=True)
        mounted = True
        yield mountpoint
    finally:
        # a filesystem still busy (a machine left on it) fails the umount: then it stays, with its loop device and
        # directory, to be seen; nothing under a mount is removed
        if mounted:
            subprocess.run(["umount", str(mountpoint)], check=True)
        subprocess.run(["losetup", "-d", loop], check=True)
        shutil.rmtree(work)


def fill(filesystem: Path) -> Path:
    """Take every free block of `filesystem`: one big file, then small ones until nothing more fits."""
    filler = filesystem / "filler"
    filler.mkdir()
    free = shutil.disk_usage(filesystem).free
    subprocess.run(["fallocate", "-l", str(max(free - 256 * 1024, 4096)), str(filler / "big")], check=True)
    for n in range(10_000):
        try:
            (filler / f"small-{n}").write_bytes(b"x" * 4096)
        except OSError:
            break
    return filler


def refused_for_space(response: httpx.Response) -> bool:
    """A refusal because the disk is full, in Fly's shape."""
    if response.status_code != 507:
        return False
    body = response.json()
    return set(body) <= {"error", "status"} and "no space left" in body["error"]


def test_a_full_data_filesystem_refuses_clearly_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(400) as filesystem:
        # No reserve: what is tested is the disk truly full, not the reserve that refuses starts before it is.
        server = SmallDiskServer(filesystem, extra_args=("--disk-reserve-mb", "0"))
        server.log_file = tmp_path / "serve.log"
        server.start()
        try:
            full_disk_scenario(server, filesystem)
        finally:
            shutil.rmtree(filesystem / "filler", ignore_errors=True)  # room again, whatever failed
            try:
                server.clear()  # a daemon that died is started again to destroy what it left
            finally:
                left = server.leftovers(server.machine_ids())
                release_pool(server.machine_pool)
            assert left == [], f"the test left on the host: {left}"  # then the filesystem stays mounted, to be seen
        log = server.log_file.read_text()
        assert "Traceback" not in log, log[-6000:]


def full_disk_scenario(server: Server, filesystem: Path) -> None:
    server.push_image("busybox")
    image = server.image()
    app = f"full-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        running = create_machine(api, app, {"image": image, "init": {"exec": ["sleep", "1000"]}})["id"]
        wait_for(api, app, running, "started")
        before = api.get(f"/v1/apps/{app}/machines").json()

        filler = fill(filesystem)
        answers = {
            "create app": api.post("/v1/apps", json={"app_name": f"{app}-2", "org_slug": "personal"}),
            "create machine": api.post(f"/v1/apps/{app}/machines", json={"config": {"image": image}}),
            "create volume": api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}),
            "update metadata": api.post(f"/v1/apps/{app}/machines/{running}/metadata/k", json={"value": "v"}),
            "exec": api.post(f"/v1/apps/{app}/machines/{running}/exec", json={"command": ["true"], "timeout": 5}),
        }
        for what, response in answers.items():
            assert response.status_code < 500 or refused_for_space(response), (what, response.text)
        refused = [what for what, response in answers.items() if refused_for_space(response)]
        assert "create machine" in refused, answers
        assert httpx.get(f"{server.api_url}/health", timeout=10).status_code == 200
        listed = api.get(f"/v1/apps/{app}/machines")
        assert listed.status_code == 200
        assert {m["id"]: m["state"] for m in listed.json()} == {m["id"]: m["state"] for m in before}  # nor half-made
        assert api.get(f"/v1/apps/{app}-2").status_code == 404

        shutil.rmtree(filler)
        again = create_machine(api, app, {"image": image, "init": {"exec": ["sleep", "1000"]}})["id"]
        wait_for(api, app, again, "started")
        assert api.post("/v1/apps", json={"app_name": f"{app}-3", "org_slug": "personal"}).status_code == 201
        stopped = api.post(f"/v1/apps/{app}/machines/{running}/stop")
        assert stopped.status_code == 200, stopped.text
        wait_for(api, app, running, "stopped")

    # Every record reads back after a restart of the daemon.
    server.stop()
    server.start()
    with server.client() as api:
        states = {m["id"]: m["state"] for m in api.get(f"/v1/apps/{app}/machines").json()}
        assert states[running] == "stopped" and states[again] == "started", states
        assert all(state in ("started", "stopped", "created") for state in states.values()), states
