from __future__ import annotations

import time
from typing import Any

import httpx


def create_machine(api: httpx.Client, app: str, config: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = api.post(f"/v1/apps/{app}/machines", json={"config": config, "region": "iad", **body})
    assert response.status_code == 200, response.text
    machine: dict[str, Any] = response.json()
    return machine


def delete_app(api: httpx.Client, app: str, timeout: float = 120) -> None:
    """DELETE answers 202 at once; the app shows `destroying` until the last of it is gone, then 404."""
    assert api.delete(f"/v1/apps/{app}").status_code == 202
    wait_app_gone(api, app, timeout)


def wait_app_gone(api: httpx.Client, app: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (response := api.get(f"/v1/apps/{app}")).status_code == 200:
        assert response.json()["status"] == "destroying"
        assert time.monotonic() < deadline, f"app {app} was still being deleted"
        time.sleep(0.05)
    assert response.status_code == 404, response.text


def wait_for(api: httpx.Client, app: str, machine_id: str, state: str, timeout: int = 30) -> dict[str, Any]:
    response = api.get(f"/v1/apps/{app}/machines/{machine_id}/wait", params={"state": state, "timeout": timeout})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def machine_exec(api: httpx.Client, app: str, machine_id: str, *command: str) -> dict[str, Any]:
    response = api.post(f"/v1/apps/{app}/machines/{machine_id}/exec", json={"command": list(command), "timeout": 10})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def http_inside(api: httpx.Client, app: str, machine_id: str, port: int = 8080) -> str:
    """GET / from inside the machine, retrying while its server comes up (a start returns before it listens)."""
    script = f"for i in $(seq 100); do wget -qO- http://127.0.0.1:{port}/ && exit 0; sleep 0.1; done; exit 1"
    result = machine_exec(api, app, machine_id, "sh", "-c", script)
    assert result["exit_code"] == 0, result
    return str(result["stdout"])
