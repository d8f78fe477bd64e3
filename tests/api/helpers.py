from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


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


def background_passes(api: httpx.Client, task: str) -> int:
    """How many passes of the daemon's background `task` (`logs`, `volume-autoextend`, …) have finished."""
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "aerodrome_background_passes_total" and sample.labels.get("task") == task:
                return int(sample.value)
    raise AssertionError(f"/metrics has no passes of {task}")


def after_passes(api: httpx.Client, task: str, passes: int = 2, timeout: float = 60) -> None:
    """Wait until `passes` whole passes of `task` ran after this call: the one under way when it was made may
    have begun before, so one more is waited for. What those passes did not do, they will not do."""
    target = background_passes(api, task) + passes + 1
    deadline = time.monotonic() + timeout
    while background_passes(api, task) < target:
        assert time.monotonic() < deadline, f"fewer than {passes} passes of {task} in {timeout} s"
        time.sleep(0.05)


def failures(report: str, limit: int = 16000) -> str:
    """A schemathesis report cut to what a failure needs: its failures section from the start (the first failure
    is the one to read), and the summary at the end."""
    start = report.find("FAILURES")
    if start < 0 or len(report) - start <= limit:
        return report[-limit:]
    return report[start : start + limit - 2000] + "\n…\n" + report[-2000:]
