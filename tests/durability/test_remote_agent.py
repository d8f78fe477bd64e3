"""`serve --agent` driving `aerodrome agent` in another process: the seed's REST flow through it, then SIGKILL of
each side. Killing serve leaves the agent and its machines alone (a new serve takes them over); killing the agent
leaves its machines running and the API answers 503 for them meanwhile; a new agent re-adopts them."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aerodrome.cli.daemon import release_pool
from aerodrome.core import HostState
from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.agents import HostProcess
from tests.support.registry import free_loopback_port
from tests.support.server import Server
from tests.support.services import http_service

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]
SERVICE = http_service(autostart=True)


@pytest.fixture
def pair() -> Iterator[tuple[Server, HostProcess]]:
    """An agent, then a serve driving it; afterwards everything is destroyed through the API, both stopped, and
    the host checked clean (a side the test killed is started again first, to take down what it left)."""
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-remote-agent-"))
    # the agent is told the registry before serve starts: its port is fixed here, not left to the kernel
    server = Server(workdir, registry_port=free_loopback_port())
    # the agent shares serve's data directory and address pool, as on one host
    agent = HostProcess("host-a", server.data_dir, server.registry, server.data_dir / "registry", server.machine_pool)
    server.extra_args = ("--agent", agent.url, "--agent-token-file", str(agent.token_file))
    server.data_dir.mkdir(mode=0o700)
    machine_ids: list[str] = []
    try:
        agent.start()
        server.start()
        yield server, agent
        for side in (agent, server):
            if side.process is not None and side.process.poll() is not None:
                side.start()
        server.destroy_everything()
        machine_ids = server.machine_ids()
    finally:
        server.stop()
        agent.stop()
    found = server.leftovers(machine_ids)
    release_pool(server.machine_pool)
    assert found == [], "the test left on the host:\n  " + "\n  ".join(found)
    shutil.rmtree(workdir)


def test_the_seed_flow_through_a_remote_agent_survives_either_side_killed(pair: tuple[Server, HostProcess]) -> None:
    server, agent = pair
    image = server.push_image("busybox")
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": "remote", "org_slug": "personal"}).status_code == 201
        volume = api.post("/v1/apps/remote/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
        config = {"image": image, "services": [SERVICE], "mounts": [{"volume": volume["id"], "path": "/data"}]}
        mid = create_machine(api, "remote", config)["id"]
        wait_for(api, "remote", mid, "started")
        assert "hello" in http_inside(api, "remote", mid)
        assert agent.status(mid).state is HostState.RUNNING
        assert api.post(f"/v1/apps/remote/machines/{mid}/stop").status_code == 200
        wait_for(api, "remote", mid, "stopped")
        assert agent.status(mid).state is HostState.STOPPED
        assert api.post(f"/v1/apps/remote/machines/{mid}/start").status_code == 200
        wait_for(api, "remote", mid, "started")

    server.kill()
    held = agent.status(mid)
    assert held.state is HostState.RUNNING  # the agent and its machine did not notice
    server.start()
    with server.client() as api:
        assert api.get(f"/v1/apps/remote/machines/{mid}").json()["state"] == "started"
        assert "hello" in http_inside(api, "remote", mid)
        assert agent.status(mid) == held  # taken over as it was, not made again

    agent.stop(signal.SIGKILL)
    with server.client() as api:
        refused = api.post(f"/v1/apps/remote/machines/{mid}/stop")
        assert refused.status_code == 503, refused.text
        assert "unreachable" in refused.json()["error"]
        assert api.get(f"/v1/apps/remote/machines/{mid}").json()["state"] == "started"
    agent.start()
    assert agent.status(mid) == held  # re-adopted, still running
    with server.client() as api:
        assert "hello" in http_inside(api, "remote", mid)
        assert api.post(f"/v1/apps/remote/machines/{mid}/stop").status_code == 200
        wait_for(api, "remote", mid, "stopped")
        assert api.delete(f"/v1/apps/remote/machines/{mid}").status_code == 200
        wait_for(api, "remote", mid, "destroyed")
    assert agent.status(mid).state is HostState.ABSENT
