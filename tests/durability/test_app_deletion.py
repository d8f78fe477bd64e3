"""An accepted app delete completes even when the daemon dies right after answering 202."""

from __future__ import annotations

import subprocess

from tests.api.helpers import create_machine, wait_app_gone, wait_for
from tests.support.server import running_server


def test_an_app_delete_cut_short_by_sigkill_finishes_after_restart() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "doomed", "org_slug": "personal"})
            machines = [create_machine(api, "doomed", {"image": image}) for _ in range(6)]
            for machine in machines:
                wait_for(api, "doomed", machine["id"], "started")
            assert api.delete("/v1/apps/doomed").status_code == 202
        server.kill()  # the take-down has at most begun
        server.start()
        with server.client() as api:
            assert api.get(f"/v1/apps/doomed/machines/{machines[0]['id']}").status_code == 404
            wait_app_gone(api, "doomed")  # the restarted daemon resumes the take-down
            sandboxes = subprocess.run(
                ["runc", "--root", str(server.data_dir / "runtime" / "runc"), "list", "-q"], capture_output=True
            )
            assert not {m["id"] for m in machines} & set(sandboxes.stdout.decode().split())
            assert api.post("/v1/apps", json={"app_name": "doomed", "org_slug": "personal"}).status_code == 201
