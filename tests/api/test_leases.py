from __future__ import annotations

import time

import httpx

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server

NONCE = "fly-machine-lease-nonce"


def test_lease_guards_every_mutation(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    assert api.get(f"{base}/lease").status_code == 404

    acquired = api.post(f"{base}/lease", json={"ttl": 60, "description": "deploy"})
    assert acquired.status_code == 201
    lease = acquired.json()
    assert lease["status"] == "success" and lease["data"]["version"] == machine["instance_id"]
    nonce = lease["data"]["nonce"]

    assert api.post(f"{base}/lease", params={"ttl": 60}).status_code == 409
    refused = api.post(f"{base}/start")
    assert refused.status_code == 409 and "lease currently held by" in refused.json()["error"]
    assert api.post(f"{base}/start", headers={NONCE: nonce}).status_code == 200
    wait_for(api, app_name, machine["id"], "started")

    refreshed = api.post(f"{base}/lease", params={"ttl": 120}, headers={NONCE: nonce})
    assert refreshed.status_code == 201 and refreshed.json()["data"]["nonce"] == nonce
    assert api.delete(f"{base}/lease", headers={NONCE: "wrong"}).status_code == 409
    released = api.delete(f"{base}/lease", headers={NONCE: nonce})
    assert released.json() == {"status": "success", "data": {"ok": True}}
    assert api.post(f"{base}/stop").status_code == 200


def test_create_with_lease_ttl_returns_a_nonce(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True, lease_ttl=30)
    assert machine["nonce"]
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    assert api.get(f"{base}/lease").json()["data"]["nonce"] == machine["nonce"]
    assert api.delete(base).status_code == 409
    assert api.delete(base, headers={NONCE: machine["nonce"]}).status_code == 200


def test_metadata(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "metadata": {"a": "1"}}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}/metadata"
    assert api.get(base).json() == {"a": "1"}
    assert api.post(f"{base}/b", json={"value": "2"}).status_code == 204
    assert api.get(f"{base}/b").json() == {"value": "2"}
    assert api.delete(f"{base}/a").status_code == 204
    assert api.get(f"{base}/a").status_code == 404
    assert api.patch(base, json={"metadata": {"c": "3", "b": None}}).status_code == 204
    assert api.get(base).json() == {"c": "3"}
    stale = api.put(base, json={"metadata": {"d": "4"}, "machine_version": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
    assert stale.status_code == 412
    assert api.put(base, json={"metadata": {"d": "4"}, "machine_version": machine["instance_id"]}).status_code == 204
    assert api.get(base).json() == {"d": "4"}


def test_secrets_are_hidden_and_injected(api: httpx.Client, app_name: str, image: str) -> None:
    url = f"/v1/apps/{app_name}/secrets"
    set_ = api.post(url, json={"values": {"API_KEY": "s3cret", "OTHER": "x"}})
    assert set_.status_code == 200 and set_.json()["version"] >= 1
    listed = api.get(url).json()["secrets"]
    assert {s["name"] for s in listed} == {"API_KEY", "OTHER"} and all("value" not in s for s in listed)
    shown = api.get(url, params={"show_secrets": "true"}).json()["secrets"]
    assert {s["name"]: s["value"] for s in shown}["API_KEY"] == "s3cret"
    assert api.delete(f"{url}/OTHER").status_code == 200
    assert api.get(f"{url}/OTHER").status_code == 404
    machine = create_machine(api, app_name, {"image": image})
    wait_for(api, app_name, machine["id"], "started")
    assert machine_exec(api, app_name, machine["id"], "sh", "-c", "echo $API_KEY")["stdout"].strip() == "s3cret"


def test_concurrent_clients_get_exactly_one_lease(server: Server, app_name: str, image: str) -> None:
    import concurrent.futures

    with server.client() as api:
        machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    url = f"/v1/apps/{app_name}/machines/{machine['id']}/lease"

    def contend(_: int) -> int:
        with server.client() as client:
            return client.post(url, json={"ttl": 30}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(contend, range(24)))
    assert statuses.count(201) == 1 and statuses.count(409) == 23


def test_wait_from_event_id(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    launch = api.get(f"{base}/events").json()[0]
    api.post(f"{base}/start")
    reply = api.get(f"{base}/wait", params={"state": "started", "from_event_id": launch["id"], "timeout": 30}).json()
    assert reply["ok"] and reply["event_id"] and reply["event_id"] > launch["id"]


def test_an_expired_lease_binds_no_one(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    held = api.post(f"{base}/lease", json={"ttl": 1})
    assert held.status_code == 201, held.text
    deadline = time.monotonic() + 30  # the daemon's clock decides: wait for the lease to lapse, not a fixed time
    while (lease := api.get(f"{base}/lease")).status_code == 200:
        assert lease.json()["data"]["nonce"] == held.json()["data"]["nonce"]
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.1)
    assert lease.status_code == 404
    assert api.post(f"{base}/start").status_code == 200  # no nonce needed any more
    taken = api.post(f"{base}/lease", json={"ttl": 60})
    assert taken.status_code == 201 and taken.json()["data"]["nonce"] != held.json()["data"]["nonce"]
