"""Error cases and the less-used machine routes against a real daemon: each answers Fly's `{"error": …}` with the
status Fly gives, and a refused call changes nothing."""

from __future__ import annotations

import httpx

from tests.api.helpers import create_machine, wait_for
from tests.support.server import Server


def refused(response: httpx.Response, status: int, error: str) -> None:
    assert (response.status_code, response.json()) == (status, {"error": error}), response.text


def test_actions_on_a_machine_that_is_not_running_are_412(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    for action, body in (("suspend", None), ("restart", None), ("signal", {"signal": "SIGTERM"})):
        refused(
            api.post(f"{base}/{action}", json=body),
            412,
            f"failed_precondition: machine is not running, refusing to {action} (current state: created)",
        )
    refused(
        api.post(f"{base}/exec", json={"command": ["true"]}),
        412,
        "failed_precondition: machine is not running, refusing to exec (current state: created)",
    )
    assert api.get(base).json()["state"] == "created"  # nothing moved it


def test_starting_a_started_machine_is_412(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image})
    wait_for(api, app_name, machine["id"], "started")
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    refused(
        api.post(f"{base}/start"),
        412,
        "failed_precondition: machine still active, refusing to start (current state: started)",
    )
    refused(
        api.delete(base),
        412,
        "failed_precondition: machine still active, refusing to destroy; stop it first or use force=true"
        " (current state: started)",
    )
    assert api.delete(base, params={"kill": "true"}).json() == {"ok": True}  # flyctl's `--force` sends kill
    assert api.get(base).json()["state"] == "destroyed"  # Fly keeps a destroyed machine readable
    events = api.get(f"{base}/events").json()
    assert events[0]["type"] == "destroy" and events[0]["status"] == "destroyed"


def test_cordon_and_uncordon(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    assert api.get(base).json()["cordoned"] is False
    assert api.post(f"{base}/cordon").json() == {"ok": True}
    assert api.get(base).json()["cordoned"] is True
    assert api.post(f"{base}/uncordon").json() == {"ok": True}
    assert api.get(base).json()["cordoned"] is False
    missing = f"/v1/apps/{app_name}/machines/0000000000000/cordon"
    assert api.post(missing).status_code == 404 and "error" in api.post(missing).json()


def test_update_versions_events_and_wait_for_a_version(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image, "env": {"A": "1"}}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}"
    bad = api.post(base, json={"config": {"image": image, "guest": {"memory_mb": 300}}})
    refused(bad, 400, "invalid guest.memory_mb 300: must be a multiple of 256")
    unchanged = api.get(base).json()
    assert (unchanged["instance_id"], unchanged["config"]["env"]) == (machine["instance_id"], {"A": "1"})
    updated = api.post(base, json={"config": {"image": image, "env": {"A": "2"}}, "skip_launch": True})
    assert updated.status_code == 200, updated.text
    version = updated.json()["instance_id"]
    assert version != machine["instance_id"]
    versions = [v["version"] for v in api.get(f"{base}/versions").json()]
    assert sorted(versions) == sorted([machine["instance_id"], version])
    types = [e["type"] for e in api.get(f"{base}/events").json()]
    assert types[0] == "update" and types[-1] == "launch"
    reached = api.get(f"{base}/wait", params={"state": "created", "version": version, "timeout": 5})
    assert reached.status_code == 200 and reached.json()["ok"] is True
    refused(api.get(f"/v1/apps/{app_name}/machines/0000000000000/versions"), 404, "machine not found")


def test_metadata_key_delete(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    base = f"/v1/apps/{app_name}/machines/{machine['id']}/metadata"
    assert api.post(f"{base}/tier", json={"value": "gold"}).status_code == 204
    assert api.get(f"{base}/tier").json() == {"value": "gold"}
    assert api.delete(f"{base}/tier").status_code == 204
    refused(api.get(f"{base}/tier"), 404, "metadata key 'tier' not found")
    assert "tier" not in api.get(base).json()
    refused(api.post(f"{base}/tier", json={"value": 5}), 400, "value is required and must be a string")


def test_tokens_current_without_a_token_is_401(server: Server) -> None:
    with httpx.Client(base_url=server.api_url) as anonymous:
        response = anonymous.get("/v1/tokens/current")
    assert response.status_code == 401 and set(response.json()) == {"error"}


def test_secrets_errors(api: httpx.Client, app_name: str) -> None:
    base = f"/v1/apps/{app_name}/secrets"
    refused(api.post(base, json={"values": ["A=1"]}), 400, "values is required and must be an object")
    refused(api.post(base, json={"values": {"A": 1}}), 400, "secret 'A': value must be a string or null")
    refused(api.post(base, json={"values": {"BAD NAME": "x"}}), 400, "invalid secret name 'BAD NAME'")
    refused(api.post(f"{base}/A", json={"value": None}), 400, "value is required and must be a string")
    refused(api.get(f"{base}/MISSING"), 404, "secret 'MISSING' not found")
    refused(api.delete(f"{base}/MISSING"), 404, "secret 'MISSING' not found")
    assert api.get(base).json() == {"secrets": [], "version": 0}  # nothing refused was stored
    refused(api.get("/v1/apps/no-such-app/secrets"), 404, "Could not find App 'no-such-app'")
