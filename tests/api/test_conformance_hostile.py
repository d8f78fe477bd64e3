"""Schemathesis with hostile values, and statefully: no 5xx, and Fly's error shape on every 4xx.

The first run sends every generated body also as raw bytes poisoned with NaN, Infinity, 1e400, 2**70, huge strings,
ten thousand levels of nesting and wrong types (tests/api/schemathesis_hostile_hooks.py). The second chains
operations through the links Schemathesis infers from the served OpenAPI document (what a create returns feeds the
reads, updates and deletes after it). Both are bounded for the normal suite; AERODROME_HOSTILE_EXAMPLES raises the
examples per operation for a longer run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_machine, failures
from tests.api.schemathesis_hostile_hooks import hostile_variants
from tests.support.server import Server

EXAMPLES = int(os.environ.get("AERODROME_HOSTILE_EXAMPLES", "10"))
EXCLUDED = (
    "DELETE /apps/{app_name}",
    "DELETE /tokens/{token_id}",  # would revoke the token every other test of the shared server uses
    "GET /apps/{app_name}/machines/{machine_id}/wait",  # blocks up to its timeout; tested on its own
)


def schemathesis(server: Server, api: httpx.Client, app: str, image: str, hooks: str, *options: str) -> None:
    program = str(Path(sys.executable).parent / "schemathesis")
    if not Path(program).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    machine = create_machine(api, app, {"image": image}, skip_launch=True)
    volume = api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": hooks,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "AERODROME_CONFORMANCE_APP": app,
        "AERODROME_CONFORMANCE_MACHINE": machine["id"],
        "AERODROME_CONFORMANCE_VOLUME": volume["id"],
        "AERODROME_CONFORMANCE_IMAGE": image,
    }
    argv = [program, "run", f"{server.api_url}/v1/openapi.json", "--url", f"{server.api_url}/v1"]
    argv += ["-H", f"Authorization: Bearer {server.token}", "--request-timeout", "90", "--no-color"]
    argv += ["--checks", "not_a_server_error,fly_error_shape", "--generation-deterministic", *options]
    for name in EXCLUDED:
        argv += ["--exclude-name", name]
    report = Path(os.environ.get("AERODROME_SCHEMATHESIS_REPORT", server.data_dir.parent / "schemathesis-report"))
    argv += ["--report", "har", "--report-dir", str(report)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    (report / "stdout.txt").write_text(result.stdout)
    assert result.returncode == 0, failures(result.stdout) + result.stderr[-2000:]
    log = server.log_path.read_text()
    assert "RecursionError" not in log and "unexpected error" not in log, log[-4000:]


def test_hostile_values_never_fail_the_server(server: Server, api: httpx.Client, app_name: str, image: str) -> None:
    hooks = "tests.api.schemathesis_hostile_hooks"
    schemathesis(server, api, app_name, image, hooks, "--phases", "examples,fuzzing", "--max-examples", str(EXAMPLES))


def test_chained_operations_never_fail_the_server(server: Server, api: httpx.Client, app_name: str, image: str) -> None:
    hooks = "tests.api.schemathesis_stateful_hooks"
    schemathesis(server, api, app_name, image, hooks, "--phases", "stateful", "--max-examples", str(EXAMPLES * 5))


def test_every_body_takes_every_hostile_variant(server: Server, api: httpx.Client, app_name: str, image: str) -> None:
    """The same twists, each sent to every operation that takes a JSON body, rather than sampled."""
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)["id"]
    volume = api.post(f"/v1/apps/{app_name}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
    known = {"app_name": app_name, "machine_id": machine, "volume_id": volume["id"], "org_slug": "personal"}
    body = {
        "config": {"image": image, "guest": {"cpus": 1, "memory_mb": 256}, "env": {"A": "b"}},
        "region": "iad",
        "name": "data",
        "size_gb": 1,
        "ttl": 30,
        "timeout": 5,
        "value": "v",
        "command": ["true"],
    }
    document = api.get("/v1/openapi.json").json()
    tried = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation or f"{method.upper()} {path}" in EXCLUDED:
                continue
            url = "/v1" + re.sub(r"\{(\w+)\}", lambda m: known.get(m.group(1), "x"), path)
            for raw in hostile_variants(body):
                response = api.request(method, url, content=raw, headers={"content-type": "application/json"})
                tried += 1
                assert response.status_code < 500, (method, path, raw[:200], response.text[:500])
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert isinstance(error, str) and len(error) < 2000, (method, path, error[:300])
    print(f"{tried} hostile bodies sent")
    assert tried > 200
    assert api.get(f"/v1/apps/{app_name}/machines/{machine}").json()["state"] == "created"
