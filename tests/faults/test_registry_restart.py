"""The embedded registry killed under a running `aerodrome serve`: `/health` says which part is down, creates that
need a pull get a 503 naming the registry (an image already on the host still starts machines), and the registry
comes back by itself once it can."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.api.helpers import create_machine
from tests.support.server import Server, running_server

WAIT = 60.0


def registry_pid(server: Server) -> int:
    return int((server.data_dir / "registry" / "registry.pid").read_text())


@contextlib.contextmanager
def holding_port(port: int) -> Iterator[None]:
    """Listen on the registry's port as soon as the killed registry has let go of it, so that its restarts fail
    (and the down state lasts) until the block ends."""
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            blocker.bind(("127.0.0.1", port))
            break
        except OSError:
            assert time.monotonic() < deadline, "the killed registry never released its port"
            time.sleep(0.001)
    blocker.listen()
    try:
        yield
    finally:
        blocker.close()


def wait_health(server: Server, status: int) -> httpx.Response:
    deadline = time.monotonic() + WAIT
    while True:
        answer = httpx.get(f"{server.api_url}/health", timeout=5)
        if answer.status_code == status:
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)


def test_a_killed_registry_is_reported_and_restarted() -> None:
    with running_server() as server:
        pulled = server.push_image("busybox")
        fresh = server.push_image("busybox", "fresh", files={"/www/index.html": b"fresh\n"})
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "reg-restart", "org_slug": "personal"})
            create_machine(api, "reg-restart", {"image": pulled}, skip_launch=True)
            healthy = wait_health(server, 200).json()
            assert healthy["parts"] == {"api": "up", "registry": "up"}
            pid = registry_pid(server)
            os.kill(pid, signal.SIGKILL)
            with holding_port(server.registry_port):
                down = wait_health(server, 503).json()
                assert down["parts"]["registry"] == "down" and down["ok"] is False
                assert "registry is down" in down["error"]
                refused = api.post(
                    "/v1/apps/reg-restart/machines", json={"config": {"image": fresh}, "skip_launch": True}
                )
                assert refused.status_code == 503, refused.text
                assert f"embedded registry {server.registry} is down" in refused.json()["error"]
                # the image pulled before still makes machines while the registry is down
                create_machine(api, "reg-restart", {"image": pulled}, skip_launch=True)
            assert wait_health(server, 200).json()["parts"]["registry"] == "up"
            assert registry_pid(server) != pid and Path(f"/proc/{registry_pid(server)}").exists()
            create_machine(api, "reg-restart", {"image": fresh}, skip_launch=True)
        log = server.log_path.read_text()
        assert "registry on" in log and "restarted" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
