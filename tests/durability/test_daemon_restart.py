"""A SIGKILLed daemon loses nothing it acknowledged, and adopts its machines when it comes back."""

from __future__ import annotations

from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.server import running_server


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
        server.kill()
        import time

        time.sleep(3)  # the machine exits while no daemon watches it
        server.start()
        with server.client() as api:
            wait_for(api, "downtime", machine["id"], "stopped")
            events = api.get(f"/v1/apps/downtime/machines/{machine['id']}/events").json()
            assert any(e["type"] == "exit" for e in events)
