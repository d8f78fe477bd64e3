"""A SIGKILLed daemon loses nothing it acknowledged, and adopts its machines when it comes back."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import httpx

from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.server import Server, running_server


def test_sigkill_then_restart_keeps_machines_running() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            assert api.post("/v1/apps", json={"app_name": "durable", "org_slug": "personal"}).status_code == 201
            running = create_machine(api, "durable", {"image": image})
            resting = create_machine(api, "durable", {"image": image}, skip_launch=True)
            wait_for(api, "durable", running["id"], "started")
        server.kill()
        server.start()
        with server.client() as api:
            assert api.get(f"/v1/apps/durable/machines/{running['id']}").json()["state"] == "started"
            assert api.get(f"/v1/apps/durable/machines/{resting['id']}").json()["state"] == "created"
            assert "hello" in http_inside(api, "durable", running["id"])
            assert api.post(f"/v1/apps/durable/machines/{running['id']}/stop").status_code == 200
            wait_for(api, "durable", running["id"], "stopped")


def test_exit_while_the_daemon_is_down_is_recorded() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "downtime", "org_slug": "personal"})
            config = {
                "image": image,
                "init": {"exec": ["/bin/sh", "-c", "sleep 2; exit 5"]},
                "restart": {"policy": "no"},
            }
            machine = create_machine(api, "downtime", config)
            wait_for(api, "downtime", machine["id"], "started")
        init = machine_init_pid(server, machine["id"])
        server.kill()
        wait_until_exited(init)  # the machine exits while no daemon watches it
        server.start()
        with server.client() as api:
            wait_for(api, "downtime", machine["id"], "stopped")
            events = api.get(f"/v1/apps/downtime/machines/{machine['id']}/events").json()
            exits = [e["request"]["exit_event"] for e in events if e["type"] == "exit"]
            # recovery found the init gone: its status went with the killed daemon, so -1 (README, Isolation)
            assert [(e["exit_code"], e["oom_killed"], e["restarting"]) for e in exits] == [(-1, False, False)]


def machine_init_pid(server: Server, machine_id: str) -> int:
    record = json.loads((server.data_dir / "runtime" / "machines" / machine_id / "started.json").read_text())
    pid: int = record["pid"]
    return pid


def wait_until_exited(pid: int, timeout: float = 30) -> None:
    """Until the process is gone or a zombie (its parent, the killed daemon's runc, may not reap it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        assert time.monotonic() < deadline, f"machine init {pid} still running after {timeout} s"
        time.sleep(0.05)


def test_sigkill_during_a_stop_then_recovery_finishes_it() -> None:
    import threading

    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "halfway", "org_slug": "personal"})
            # a program that ignores SIGINT: the stop waits out its timeout, then SIGKILLs
            config = {
                "image": image,
                "init": {"exec": ["/bin/sh", "-c", "trap '' INT; while true; do sleep 1; done"]},
                "stop_config": {"signal": "SIGINT", "timeout": "30s"},
            }
            machine = create_machine(api, "halfway", config)
            wait_for(api, "halfway", machine["id"], "started")
        url = f"/v1/apps/halfway/machines/{machine['id']}"

        def stop() -> None:
            with server.client() as client, contextlib.suppress(httpx.HTTPError):
                client.post(f"{url}/stop")

        stopper = threading.Thread(target=stop)
        stopper.start()
        with server.client() as api:
            for _ in range(100):  # the daemon dies while the machine is `stopping`
                if api.get(url).json()["state"] == "stopping":
                    break
                time.sleep(0.05)
            assert api.get(url).json()["state"] == "stopping"
        server.kill()
        stopper.join()
        server.start()
        with server.client() as api:
            wait_for(api, "halfway", machine["id"], "stopped", timeout=60)
            assert api.post(f"{url}/start").status_code == 200
            wait_for(api, "halfway", machine["id"], "started")


def test_sigkill_during_starts_then_recovery_agrees_with_the_host() -> None:
    """Whichever step each start had reached, after the restart a machine is started and answers, or is at rest."""
    import threading

    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "midstart", "org_slug": "personal"})
            ids = [create_machine(api, "midstart", {"image": image}, skip_launch=True)["id"] for _ in range(4)]

        def start(machine_id: str) -> None:
            with server.client() as client, contextlib.suppress(httpx.HTTPError):
                client.post(f"/v1/apps/midstart/machines/{machine_id}/start")

        starters = [threading.Thread(target=start, args=(mid,)) for mid in ids]
        for index, starter in enumerate(starters):
            starter.start()
            time.sleep(0.01 * index)  # the kill lands at a different step of each start
        killed = server.process.pid if server.process else 0
        server.kill()
        for starter in starters:
            starter.join()
        server.start()
        with server.client() as api:
            # Nothing of the killed daemon lives on: a start it cut short may have left a paused clone of it
            # holding the machine's namespaces, which the new daemon ends by the pid it recorded.
            for machine_id in ids:
                wait_for(api, "midstart", machine_id, "settled", timeout=60)
            assert _clones_of(server, killed) == []
            for machine_id in ids:
                settled = wait_for(api, "midstart", machine_id, "settled", timeout=60)
                if settled["state"] == "started":
                    assert "hello" in http_inside(api, "midstart", machine_id)
                else:
                    assert settled["state"] in ("created", "stopped")
                    assert api.post(f"/v1/apps/midstart/machines/{machine_id}/start").status_code == 200
                    wait_for(api, "midstart", machine_id, "started")
                    assert "hello" in http_inside(api, "midstart", machine_id)


def _clones_of(server: Server, pid: int) -> list[int]:
    """Processes still running the killed daemon's command line (its clones share it), by pid; the new daemon's
    own clones (its network slots' holders, its children) are not the killed one's."""
    import os

    own = server.process.pid if server.process else 0
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (own, pid):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        serving = cmdline.split(b"\0")[1:4] == [b"-m", b"aerodrome", b"serve"]
        if serving and str(server.data_dir).encode() in cmdline and _parent_of(int(entry)) != own:
            found.append(int(entry))
    return found


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0
