"""Creates answered while others share their commit are on disk: a SIGKILL loses none that was acknowledged."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.server import Server, running_server

WRITERS = 8
KILL_AFTER = 120  # acknowledged creates


def create_until_refused(server: Server, image: str, acknowledged: list[str], enough: threading.Event) -> None:
    body = {"config": {"image": image}, "skip_launch": True}
    with server.client() as api:
        while True:
            try:
                response = api.post("/v1/apps/grouped/machines", json=body)
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code != 200:
                return
            acknowledged.append(response.json()["id"])
            if len(acknowledged) >= KILL_AFTER:
                enough.set()


def test_concurrent_creates_acknowledged_before_a_sigkill_survive_it() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "grouped", "org_slug": "personal"}).raise_for_status()
        acknowledged: list[str] = []
        enough = threading.Event()
        with ThreadPoolExecutor(WRITERS) as pool:
            for _ in range(WRITERS):
                pool.submit(create_until_refused, server, image, acknowledged, enough)
            enough.wait(timeout=120)
            server.kill()  # while the writers keep sending
        assert len(acknowledged) >= KILL_AFTER
        server.start()
        with server.client() as api:
            listed = {m["id"] for m in api.get("/v1/apps/grouped/machines").json()}
            assert set(acknowledged) <= listed
            for machine_id in acknowledged[-WRITERS:]:  # the last ones answered, each read on its own too
                assert api.get(f"/v1/apps/grouped/machines/{machine_id}").json()["state"] == "created"
