"""The server fixture's teardown leaves the host as it found it, even after a test killed the daemon with
machines of several organisations running, and it sees what a test would leave."""

from __future__ import annotations

from tests.api.helpers import create_machine, wait_for
from tests.support.server import running_server


def test_a_killed_daemon_with_machines_in_two_organisations_is_taken_down() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        server.cli("orgs", "create", "teardown-other")
        other = server.cli("tokens", "create", "--org", "teardown-other").strip()
        machines = []
        for token, app, org in ((server.token, "teardown-a", "personal"), (other, "teardown-b", "teardown-other")):
            with server.client(token) as api:
                assert api.post("/v1/apps", json={"app_name": app, "org_slug": org}).status_code == 201
                mid = create_machine(api, app, {"image": image})["id"]
                wait_for(api, app, mid, "started")
                machines.append(mid)
        assert any(line.startswith("runc container") for line in server.leftovers(machines))  # it sees them
        server.kill()  # the machines outlive the daemon; the teardown must start it again to destroy them
    # leaving the block ran the teardown: it raises if anything of those machines is still on the host
