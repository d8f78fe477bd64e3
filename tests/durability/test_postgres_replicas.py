"""Two `aerodrome serve` on one PostgreSQL database, and PostgreSQL restarted under a running one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.helpers import create_machine, delete_app
from tests.support.postgres import PostgresServer
from tests.support.server import running_server

WRITES = 24


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


def test_two_replicas_writing_one_machine_lose_no_update(database: str) -> None:
    with running_server(database=database) as first, running_server(database=database) as second:
        image = first.push_image()
        with first.client() as one, second.client(first.token) as two:
            assert one.post("/v1/apps", json={"app_name": "shared", "org_slug": "personal"}).status_code == 201
            machine = create_machine(one, "shared", {"image": image}, skip_launch=True)
            base = f"/v1/apps/shared/machines/{machine['id']}"

            # Concurrent edits of one machine through both replicas: each is written or refused whole (412).
            def set_key(n: int) -> tuple[int, httpx.Response]:
                client = (one, two)[n % 2]
                return n, client.post(f"{base}/metadata/k{n}", json={"value": str(n)})

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(set_key, range(WRITES)))
            for _, answer in answers:
                assert answer.status_code in (204, 412), answer.text
                if answer.status_code == 412:
                    assert "changed by another request" in answer.json()["error"]
            written = {f"k{n}": str(n) for n, answer in answers if answer.status_code == 204}
            assert written, "every edit was refused"
            assert one.get(f"{base}/metadata").json() == written == two.get(f"{base}/metadata").json()

            # Both replicas granting the lease at once: exactly one holds it, the other hears 409.
            def take_lease(client: httpx.Client) -> int:
                return client.post(f"{base}/lease", json={"ttl": 60}).status_code

            for _ in range(3):
                with ThreadPoolExecutor(2) as pool:
                    codes = sorted(pool.map(take_lease, (one, two)))
                assert codes == [201, 409]
                nonce = one.get(f"{base}/lease").json()["data"]["nonce"]
                assert two.get(f"{base}/lease").json()["data"]["nonce"] == nonce
                released = one.delete(f"{base}/lease", headers={"fly-machine-lease-nonce": nonce})
                assert released.status_code == 200
            # Through the replica whose host holds the machine: the other one's agent never had it.
            delete_app(one, "shared")


def test_a_restart_of_postgresql_answers_503_meanwhile_and_loses_nothing(
    postgres_server: PostgresServer, database: str
) -> None:
    with running_server(database=database) as server, server.client() as api:
        acknowledged = []
        for n in range(3):
            name = f"before-{n}"
            assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
            acknowledged.append(name)
        postgres_server.stop()
        try:
            down = api.get("/v1/apps", params={"org_slug": "personal"})
            assert down.status_code == 503 and "database is unavailable" in down.json()["error"]
            refused = api.post("/v1/apps", json={"app_name": "while-down", "org_slug": "personal"})
            assert refused.status_code == 503 and refused.json()["error"]
        finally:
            postgres_server.start()
        listed = _apps_once_reachable(api)
        assert set(acknowledged) <= listed and "while-down" not in listed
        assert api.post("/v1/apps", json={"app_name": "after", "org_slug": "personal"}).status_code == 201


def _apps_once_reachable(api: httpx.Client, timeout: float = 30) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get("/v1/apps", params={"org_slug": "personal"})
        if answer.status_code == 200:
            return {app["name"] for app in answer.json()["apps"]}
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, "the server did not reconnect to PostgreSQL"
        time.sleep(0.2)
