"""Secrets versions, `min_secrets_version`, `skip_secrets` and files from secrets, with the bodies fly-go sends
(flaps/flaps_secrets.go, machine_types.go's LaunchMachineInput: `skip_secrets` always present, `min_secrets_version`
only when set), against a real `aerodrome serve`."""

from __future__ import annotations

import base64

import httpx

from tests.api.helpers import create_machine, machine_exec, wait_for

SLEEP = ["sleep", "100000"]


def _config(image: str, **extra: object) -> dict[str, object]:
    return {"image": image, "init": {"exec": SLEEP}, **extra}


def test_every_change_bumps_the_version_and_the_list_answers_it(api: httpx.Client, app_name: str) -> None:
    url = f"/v1/apps/{app_name}/secrets"
    start = api.get(url).json()["version"]
    bulk = api.post(url, json={"values": {"A": "1", "B": "2"}}).json()  # UpdateAppSecrets
    assert bulk["version"] == start + 1 and {s["name"] for s in bulk["secrets"]} == {"A", "B"}
    one = api.post(f"{url}/C", json={"value": "3"}).json()  # SetAppSecret
    assert one["version"] == start + 2 and one["name"] == "C"
    gone = api.delete(f"{url}/A").json()  # DeleteAppSecret
    assert gone["version"] == start + 3
    removed = api.post(url, json={"values": {"B": None}}).json()
    assert removed["version"] == start + 4 and [s["name"] for s in removed["secrets"]] == ["C"]
    listed = api.get(url, params={"version": str(start + 4)}).json()  # ListAppSecrets(version=&…)
    assert listed["version"] == start + 4 and [s["name"] for s in listed["secrets"]] == ["C"]
    ahead = api.get(url, params={"version": str(start + 5)})
    assert ahead.status_code == 412
    assert ahead.json() == {
        "error": f"min_secrets_version {start + 5} is newer than app {app_name}'s secrets version {start + 4}"
    }
    assert api.get(f"{url}/C", params={"version": str(start + 5)}).status_code == 412


def test_a_machine_for_secrets_not_yet_set_is_refused(api: httpx.Client, app_name: str, image: str) -> None:
    version = api.post(f"/v1/apps/{app_name}/secrets", json={"values": {"TOKEN": "t1"}}).json()["version"]
    body = {"config": _config(image), "skip_secrets": False, "min_secrets_version": version + 1}
    refused = api.post(f"/v1/apps/{app_name}/machines", json=body)
    assert refused.status_code == 412 and "min_secrets_version" in refused.json()["error"]
    assert api.get(f"/v1/apps/{app_name}/machines").json() == []  # nothing was made

    machine = create_machine(api, app_name, _config(image), skip_secrets=False, min_secrets_version=version)
    wait_for(api, app_name, machine["id"], "started")
    assert machine_exec(api, app_name, machine["id"], "sh", "-c", "echo $TOKEN")["stdout"] == "t1\n"

    url = f"/v1/apps/{app_name}/machines/{machine['id']}"
    update = {"config": _config(image, env={"X": "1"}), "skip_secrets": False, "min_secrets_version": version + 1}
    refused = api.post(url, json=update)
    assert refused.status_code == 412
    after = api.get(url).json()
    assert after["state"] == "started" and after["instance_id"] == machine["instance_id"]  # left as it was


def test_skip_secrets_leaves_the_apps_secrets_out(api: httpx.Client, app_name: str, image: str) -> None:
    api.post(f"/v1/apps/{app_name}/secrets", json={"values": {"TOKEN": "t1"}})
    machine = create_machine(api, app_name, _config(image, env={"PLAIN": "p"}), skip_secrets=True)
    wait_for(api, app_name, machine["id"], "started")
    seen = machine_exec(api, app_name, machine["id"], "sh", "-c", 'echo "${TOKEN:-none} $PLAIN"')
    assert seen["stdout"] == "none p\n"


def test_files_from_secrets_with_their_mode(api: httpx.Client, app_name: str, image: str) -> None:
    pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    encoded = base64.b64encode(pem.encode()).decode()
    api.post(f"/v1/apps/{app_name}/secrets", json={"values": {"TLS_KEY": encoded, "PLAIN": "not base64!"}})
    files = [
        {"guest_path": "/etc/tls/key.pem", "secret_name": "TLS_KEY", "mode": 0o600},
        {"guest_path": "/etc/motd", "raw_value": base64.b64encode(b"hi\n").decode(), "mode": 0o444},
    ]
    machine = create_machine(api, app_name, _config(image, files=files))
    wait_for(api, app_name, machine["id"], "started")
    listing = machine_exec(api, app_name, machine["id"], "sh", "-c", "stat -c '%a %n' /etc/tls/key.pem /etc/motd")
    assert listing["stdout"] == "600 /etc/tls/key.pem\n444 /etc/motd\n"
    assert machine_exec(api, app_name, machine["id"], "cat", "/etc/tls/key.pem")["stdout"] == pem

    for file, message in [
        ({"guest_path": "/x", "secret_name": "MISSING"}, "names secret 'MISSING', which app"),
        ({"guest_path": "/x", "secret_name": "PLAIN"}, "secret 'PLAIN' for /x is not base64"),
        ({"guest_path": "/x", "secret_name": "TLS_KEY", "raw_value": encoded}, "one of raw_value or secret_name"),
    ]:
        refused = api.post(f"/v1/apps/{app_name}/machines", json={"config": _config(image, files=[file])})
        assert refused.status_code == 400 and message in refused.json()["error"], refused.text
    assert len(api.get(f"/v1/apps/{app_name}/machines").json()) == 1
