"""`--mirror FROM=TO`: an image name from a registry this host cannot reach resolves to the embedded registry."""

from __future__ import annotations

from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.server import running_server


def test_a_mirrored_name_runs_from_the_embedded_registry() -> None:
    with running_server("--mirror", "registry.example.com/team=library/mirrored") as server:
        server.push_image("mirrored/busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "mirrored", "org_slug": "personal"})
            machine = create_machine(api, "mirrored", {"image": "registry.example.com/team/busybox:latest"})
            assert machine["image_ref"]["repository"].endswith("mirrored/busybox")
            wait_for(api, "mirrored", machine["id"], "started")
            assert "hello" in http_inside(api, "mirrored", machine["id"])
            api.delete("/v1/apps/mirrored")
