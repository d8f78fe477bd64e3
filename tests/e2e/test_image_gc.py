"""Images no machine uses are removed from the host; images in use stay."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.api.helpers import create_machine
from tests.support.server import Server, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--image-gc-interval", "1") as started:
        yield started


def unpacked(server: Server) -> set[str]:
    return {path.name for path in (server.data_dir / "images" / "rootfs").iterdir()}


def test_unused_images_are_removed(server: Server) -> None:
    kept = server.push_image("busybox", "kept")
    dropped = server.push_image("busybox", "dropped", files={"/www/index.html": b"another image\n"})
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "gc", "org_slug": "personal"})
        keep = create_machine(api, "gc", {"image": kept}, skip_launch=True)
        drop = create_machine(api, "gc", {"image": dropped}, skip_launch=True)
        kept_digest = keep["image_ref"]["digest"].replace(":", "-")
        dropped_digest = drop["image_ref"]["digest"].replace(":", "-")
        assert {kept_digest, dropped_digest} <= unpacked(server)
        assert api.delete(f"/v1/apps/gc/machines/{drop['id']}").status_code == 200
        deadline = time.monotonic() + 60  # a guard: images stay 10 intervals after their last pull
        while dropped_digest in unpacked(server) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert dropped_digest not in unpacked(server) and kept_digest in unpacked(server)
        api.delete("/v1/apps/gc")
