"""Hostile inputs for `aerodrome doctor`: each must be refused with a 4xx in Fly's error shape and change nothing.

The bodies are sent as raw bytes where they hold what Go's encoder never writes (NaN, Infinity, 1e400, ten
thousand levels of nesting), as a client other than flyctl might.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

NESTED = "[" * 10_000 + "]" * 10_000
BAD_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e400", "1e30", str(10**40), "-5", '"abc"')
BAD_DURATIONS = ('"abc"', '"1000000h"', '"1e400s"', '"-5s"', '"5 parsecs"')


@dataclass
class HostileReport:
    inputs: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)


def inputs_for(app: str, machine: str, volume: str, image: str) -> list[tuple[str, str, str]]:
    """(method, path, raw body) of every hostile request."""
    base, img = f"/v1/apps/{app}", json.dumps(image)
    machine_url = f"{base}/machines/{machine}"
    creates = [
        '{"config": {"image": ' + img + ', "metadata": ' + NESTED + "}}",
        '{"config": {"image": ' + json.dumps("a" * 300_000) + "}}",
        '{"config": {"image": ' + img + "}, " + '"name": ' + json.dumps("n" * 10_000) + "}",
        '{"config": {"image": ' + img + ', "env": {"A": ' + json.dumps("x" * 200_000) + "}}}",
        '{"config": {"image": ' + img + '}, "skip_launch": "yes"}',
        '{"config": {"image": ' + img + '}, "region": ' + json.dumps("r" * 5000) + "}",
        NESTED,
    ]
    creates += ['{"config": {"image": ' + img + ', "guest": {"cpus": ' + n + "}}}" for n in BAD_NUMBERS]
    creates += ['{"config": {"image": ' + img + '}, "lease_ttl": ' + n + "}" for n in BAD_NUMBERS]
    creates += ['{"config": {"image": ' + img + ', "stop_config": {"timeout": ' + d + "}}}" for d in BAD_DURATIONS]
    found = [("POST", f"{base}/machines", body) for body in creates]
    found += [("POST", f"{machine_url}/lease", '{"ttl": ' + n + "}") for n in BAD_NUMBERS]
    found += [("POST", f"{machine_url}/stop", '{"timeout": ' + d + "}") for d in (*BAD_DURATIONS, "NaN", "1e400")]
    found += [("POST", f"{machine_url}/exec", '{"command": ["true"], "timeout": ' + n + "}") for n in BAD_NUMBERS]
    found += [("POST", f"{machine_url}/exec", '{"command": ["a\\u0000b"]}')]
    found += [("POST", f"{machine_url}/metadata/role", '{"value": ' + json.dumps("v" * 200_000) + "}")]
    volumes = f"{base}/volumes"
    found += [("POST", volumes, '{"name": "data", "region": "iad", "size_gb": ' + n + "}") for n in BAD_NUMBERS]
    found += [("POST", volumes, '{"name": "data", "size_gb": 1, "snapshot_retention": ' + n + "}") for n in BAD_NUMBERS]
    found += [("PUT", f"{volumes}/{volume}/extend", '{"size_gb": ' + n + "}") for n in BAD_NUMBERS]
    found += [("POST", "/v1/apps", '{"app_name": ' + json.dumps("a" * 100_000) + ', "org_slug": "personal"}')]
    found += [("POST", "/v1/apps", NESTED), ("POST", "/v1/apps", '{"app_name": NaN}')]
    return found


def run_hostile(client: httpx.Client, app: str, machine: str, volume: str, image: str) -> HostileReport:
    """Send every hostile input; each must get a 4xx with `{"error": "..."}` and leave the app as it was."""
    report = HostileReport()
    before = _state(client, app)
    for method, path, body in inputs_for(app, machine, volume, image):
        report.inputs += 1
        report.requests += 3  # the input, and the state read on either side
        response = client.request(method, path, content=body, headers={"content-type": "application/json"})
        shown = f"{method} {path.rsplit('/', 1)[-1]} {body[:60]!r}"
        if not 400 <= response.status_code < 500:
            report.failures.append(f"{shown}: {response.status_code} {response.text[:200]}")
        elif not _fly_error(response):
            report.failures.append(f"{shown}: {response.status_code} without Fly's error shape")
        if (after := _state(client, app)) != before:
            report.failures.append(f"{shown}: a refused request changed the app: {before} -> {after}")
            before = after
    return report


def _fly_error(response: httpx.Response) -> bool:
    try:
        body: Any = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str)


def _state(client: httpx.Client, app: str) -> list[tuple[str, ...]]:
    machines = client.get(f"/v1/apps/{app}/machines").json()
    volumes = client.get(f"/v1/apps/{app}/volumes").json()
    found = [(m["id"], m["state"], m["instance_id"], str(m.get("metadata") or {})) for m in machines]
    return sorted(found + [(v["id"], str(v["size_gb"]), str(v["snapshot_retention"])) for v in volumes])
