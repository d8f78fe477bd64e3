"""A machine that fills its root filesystem hits ENOSPC inside, and nothing else notices.

Against a real `aerodrome serve` (one "GB" of size is 16 MiB here, `--volume-unit-mb 16`): a machine with
`rootfs.size_gb: 2` writes until its disk is full; the write fails inside it, the host's data filesystem loses
no more than the machine's bound, and another organisation's machine is created, started and reached through
the API meanwhile. A stop gives the space back and the next start sees a clean root filesystem.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

MIB = 1024 * 1024
UNIT = 16 * MIB  # the server fixture's --volume-unit-mb
FILLER, OTHER = "filler", "bystander"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as server:
        server.cli("orgs", "create", "quota-other")
        yield server


@pytest.fixture(scope="module")
def image(server: Server) -> str:
    return server.push_image("quota")


@pytest.fixture
def apps(server: Server) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    other_token = server.cli("tokens", "create", "--org", "quota-other").strip()
    with server.client() as mine, server.client(other_token) as theirs:
        assert mine.post("/v1/apps", json={"app_name": FILLER, "org_slug": "personal"}).status_code == 201
        assert theirs.post("/v1/apps", json={"app_name": OTHER, "org_slug": "quota-other"}).status_code == 201
        try:
            yield mine, theirs
        finally:
            theirs.delete(f"/v1/apps/{OTHER}")
            mine.delete(f"/v1/apps/{FILLER}")
            for client, app in ((mine, FILLER), (theirs, OTHER)):
                _wait_gone(client, app)


def _wait_gone(client: httpx.Client, app: str) -> None:
    for _ in range(600):
        if client.get(f"/v1/apps/{app}").status_code == 404:
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"app {app} was not deleted")


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_a_full_root_filesystem_is_enospc_inside_and_nothing_else(
    server: Server, image: str, apps: tuple[httpx.Client, httpx.Client]
) -> None:
    mine, theirs = apps
    filler = create_machine(mine, FILLER, {"image": image, "rootfs": {"size_gb": 2}})
    wait_for(mine, FILLER, filler["id"], "started")
    free_before = _free_bytes(server.data_dir)

    fill = "dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo status=$?; echo size=$(stat -c %s /fill)"
    result = machine_exec(mine, FILLER, filler["id"], "sh", "-c", fill)
    output = result["stdout"] + result["stderr"]
    assert "No space left on device" in output and "status=1" in output, output
    written = int(output.split("size=")[1].split()[0])
    assert 20 * MIB < written <= 2 * UNIT

    # Another tenant's calls all succeed while the machine's disk is full.
    other = create_machine(theirs, OTHER, {"image": image})
    wait_for(theirs, OTHER, other["id"], "started")
    assert machine_exec(theirs, OTHER, other["id"], "sh", "-c", "echo ok > /written && cat /written")["stdout"] == (
        "ok\n"
    )
    assert theirs.get(f"/v1/apps/{OTHER}/machines").status_code == 200
    assert mine.get(f"/v1/apps/{FILLER}/machines/{filler['id']}").status_code == 200
    # The host lost at most the machine's bound (and a little for the filesystem itself).
    assert free_before - _free_bytes(server.data_dir) < 2 * UNIT + 8 * MIB

    # A stop empties the layer and gives the space back; the next start begins from the image as it was.
    assert mine.post(f"/v1/apps/{FILLER}/machines/{filler['id']}/stop").status_code == 200
    wait_for(mine, FILLER, filler["id"], "stopped")
    image_file = server.data_dir / "runtime" / "machines" / filler["id"] / "rootfs.img"
    assert image_file.stat().st_blocks * 512 < 8 * MIB
    assert mine.post(f"/v1/apps/{FILLER}/machines/{filler['id']}/start").status_code == 200
    wait_for(mine, FILLER, filler["id"], "started")
    assert machine_exec(mine, FILLER, filler["id"], "sh", "-c", "test -e /fill; echo $?")["stdout"] == "1\n"


def test_rootfs_size_is_validated(server: Server, image: str, apps: tuple[httpx.Client, httpx.Client]) -> None:
    mine, _ = apps
    for rootfs, words in (
        ({"size_gb": "big"}, "rootfs.size_gb"),
        ({"size_gb": 100_000}, "rootfs.size_gb"),
        ({"persist": "sometimes"}, "rootfs.persist"),
    ):
        response = mine.post(f"/v1/apps/{FILLER}/machines", json={"config": {"image": image, "rootfs": rootfs}})
        assert response.status_code == 400 and words in response.json()["error"], response.text
