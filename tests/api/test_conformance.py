"""Schemathesis against the served OpenAPI document: no 5xx for any generated request, and every response
conforms to the document (Fly's schemas)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import create_machine, failures
from tests.support.server import Server


def test_generated_requests_never_fail_the_server(server: Server, api: httpx.Client, app_name: str, image: str) -> None:
    schemathesis = str(Path(sys.executable).parent / "schemathesis")
    if not Path(schemathesis).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    machine = create_machine(api, app_name, {"image": image}, skip_launch=True)
    volume = api.post(f"/v1/apps/{app_name}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "AERODROME_CONFORMANCE_APP": app_name,
        "AERODROME_CONFORMANCE_MACHINE": machine["id"],
        "AERODROME_CONFORMANCE_VOLUME": volume["id"],
    }
    argv = [
        schemathesis,
        "run",
        f"{server.api_url}/v1/openapi.json",
        "--url",
        f"{server.api_url}/v1",
        "-H",
        f"Authorization: Bearer {server.token}",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--exclude-name",
        "DELETE /apps/{app_name}",
        "--exclude-name",
        "DELETE /tokens/{token_id}",  # would revoke the token every other test of the shared server uses
        "--exclude-name",
        "GET /apps/{app_name}/machines/{machine_id}/wait",  # blocks up to its timeout; tested on its own
        "--max-examples",
        "10",
        "--phases",
        "examples,fuzzing",
        "--request-timeout",
        "90",
        "--generation-deterministic",
        "--no-color",
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, failures(result.stdout) + result.stderr[-2000:]
