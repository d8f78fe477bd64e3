"""Hostile input against a real `aerodrome serve`: every refusal is a 400 naming the field, and changes nothing.

Bodies are sent as raw bytes where they hold what Python's json would write but Go's never would (NaN,
Infinity, 1e400, ten thousand levels of nesting). After each refusal the app's machines, the machine's state,
its lease and its metadata are what they were before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_machine, wait_for
from tests.support.server import Server, running_server

# A program that stops gracefully on SIGINT (exit 42 a moment later) and is otherwise asleep.
GRACEFUL = ["sh", "-c", "trap 'sleep 0.2; exit 42' INT; while true; do sleep 0.1; done"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


@pytest.fixture
def image(server: Server) -> str:
    return server.image("busybox")


@pytest.fixture
def started(api: httpx.Client, app_name: str, image: str) -> str:
    """A started machine running GRACEFUL; its id."""
    machine = create_machine(api, app_name, {"image": image, "init": {"exec": GRACEFUL}})
    wait_for(api, app_name, machine["id"], "started")
    return str(machine["id"])


def post_raw(api: httpx.Client, url: str, body: str | bytes) -> httpx.Response:
    return api.post(url, content=body, headers={"content-type": "application/json"})


def refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and len(error) < 1000, error  # Fly's shape, and no echo of the input
    for word in words:
        assert word in error, (word, error)


def snapshot(api: httpx.Client, app: str) -> list[tuple[str, str, str]]:
    machines = api.get(f"/v1/apps/{app}/machines").json()
    return sorted((m["id"], m["state"], m["instance_id"]) for m in machines)


def create_bodies(image: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(what, raw body, words the error must hold) for a create."""

    def body(**fields: Any) -> str:
        return json.dumps({"config": {"image": image}, **fields})

    def raw(text: str) -> str:
        return text.replace("IMAGE", json.dumps(image))

    nested = "[" * 10_000 + "]" * 10_000
    return [
        ("nesting", raw('{"config": {"image": IMAGE, "metadata": ' + nested + "}}"), ("nested deeper than",)),
        ("nan", raw('{"config": {"image": IMAGE, "guest": {"cpus": NaN}}}'), ("config.guest.cpus", "NaN")),
        ("infinity", raw('{"config": {"image": IMAGE}, "lease_ttl": Infinity}'), ("lease_ttl", "Infinity")),
        ("overflow", raw('{"config": {"image": IMAGE}, "lease_ttl": 1e400}'), ("lease_ttl", "1e400")),
        ("lease_ttl huge", raw('{"config": {"image": IMAGE}, "lease_ttl": 1e30}'), ("lease_ttl", "between")),
        ("lease_ttl text", body(lease_ttl="abc"), ("lease_ttl", "'abc' is not a number")),
        ("image huge", json.dumps({"config": {"image": "a" * 300_000}}), ("config.image", "at most 4096")),
        ("image nul", json.dumps({"config": {"image": image + "\x00"}}), ("config.image", "NUL")),
        ("name huge", body(name="n" * 10_000), ("name", "at most 255")),
        ("env huge", json.dumps({"config": {"image": image, "env": {"A": "x" * 200_000}}}), ("env.A",)),
        ("metadata type", json.dumps({"config": {"image": image, "metadata": {"k": 1}}}), ("config.metadata.k",)),
        ("skip_launch", body(skip_launch="yes"), ("skip_launch", "boolean")),
        ("stop timeout", json.dumps({"config": {"image": image, "stop_config": {"timeout": 1e30}}}), ("stop_config",)),
    ]


def test_refused_creates_make_no_machine(api: httpx.Client, app_name: str, image: str) -> None:
    url = f"/v1/apps/{app_name}/machines"
    before = snapshot(api, app_name)
    for what, body, words in create_bodies(image):
        response = post_raw(api, url, body)
        assert response.status_code == 400, (what, response.text)
        refused(response, *words)
        assert snapshot(api, app_name) == before, what
    listed = api.get(url, params={"include_deleted": "true"}).json()
    assert listed == [], "a refused create left a machine behind"


def test_lease_ttls_that_are_not_numbers(api: httpx.Client, app_name: str, started: str) -> None:
    url = f"/v1/apps/{app_name}/machines/{started}/lease"
    for body, words in [
        ('{"ttl": Infinity}', ("ttl", "Infinity")),
        ('{"ttl": 1e400}', ("ttl", "1e400")),
        ('{"ttl": NaN}', ("ttl", "NaN")),
        ('{"ttl": "abc"}', ("invalid lease ttl: 'abc' is not a number",)),
        ('{"ttl": 1e30}', ("lease ttl", "between 1 and 86400")),
        ('{"ttl": 30, "description": "' + "d" * 100_000 + '"}', ("lease description",)),
    ]:
        refused(post_raw(api, url, body), *words)
    for ttl in ("abc", "1e400", "inf", "9" * 5000):
        refused(api.post(url, params={"ttl": ttl}), "lease ttl")
    assert api.get(url).status_code == 404  # no lease was taken
    assert api.post(url, params={"ttl": "30"}).status_code == 201  # fly-go's form still works


def test_stop_with_a_timeout_that_is_not_a_duration_leaves_the_machine_started(
    api: httpx.Client, app_name: str, started: str
) -> None:
    base = f"/v1/apps/{app_name}/machines/{started}"
    for body, words in [
        ('{"timeout": NaN}', ("timeout", "NaN")),
        ('{"timeout": Infinity}', ("timeout", "Infinity")),
        ('{"timeout": 1e30}', ("stop timeout", "between")),
        ('{"timeout": "abc"}', ("stop timeout", "invalid duration")),
        ('{"timeout": "1000000h"}', ("stop timeout", "between")),
        ('{"signal": "SIGNOPE"}', ("signal",)),
    ]:
        refused(post_raw(api, f"{base}/stop", body), *words)
        assert api.get(base).json()["state"] == "started", body
    refused(api.post(f"{base}/restart", params={"timeout": "1e400s"}), "stop timeout")
    assert api.get(base).json()["state"] == "started"


def test_fly_go_zero_stop_timeout_is_the_default_and_stops_gracefully(
    api: httpx.Client, app_name: str, started: str
) -> None:
    base = f"/v1/apps/{app_name}/machines/{started}"
    # flyctl's `machine stop` sends this body when no --timeout is given
    response = api.post(f"{base}/stop", json={"id": started, "signal": "SIGINT", "timeout": "0s"})
    assert response.status_code == 200, response.text
    wait_for(api, app_name, started, "stopped")
    stop = next(e for e in api.get(f"{base}/events").json() if e["type"] == "stop")
    exit_event = stop["request"]["exit_event"]
    assert exit_event["exit_code"] == 42 and exit_event["signal"] != 9, exit_event  # its trap ran: no SIGKILL


def test_refused_volume_and_metadata_changes_change_nothing(api: httpx.Client, app_name: str, started: str) -> None:
    volumes = f"/v1/apps/{app_name}/volumes"
    for body in ({"snapshot_retention": "abc"}, {"snapshot_retention": 10**30}, {"encrypted": "yes"}):
        refused(api.post(volumes, json={"name": "data", "region": "iad", "size_gb": 1, **body}))
    assert api.get(volumes).json() == []
    volume = api.post(volumes, json={"name": "data", "region": "iad", "size_gb": 1}).json()
    refused(api.put(f"{volumes}/{volume['id']}", json={"snapshot_retention": "abc"}), "snapshot_retention")
    refused(api.put(f"{volumes}/{volume['id']}", json={"snapshot_retention": 5, "auto_backup_enabled": "no"}))
    assert api.get(f"{volumes}/{volume['id']}").json()["snapshot_retention"] == volume["snapshot_retention"]

    metadata = f"/v1/apps/{app_name}/machines/{started}/metadata"
    assert api.post(f"{metadata}/role", json={"value": "web"}).status_code == 204
    refused(api.post(f"{metadata}/role", json={"value": "v" * 200_000}), "metadata.role")
    refused(api.put(metadata, json={"metadata": {"role": "db", "big": "v" * 200_000}}), "metadata.big")
    assert api.get(metadata).json() == {"role": "web"}


def test_exec_timeout_is_bounded(api: httpx.Client, app_name: str, started: str) -> None:
    url = f"/v1/apps/{app_name}/machines/{started}/exec"
    for body, words in [
        ('{"command": ["true"], "timeout": 1000000000}', ("exec timeout", "between 1 and 300")),
        ('{"command": ["true"], "timeout": 1e400}', ("timeout", "1e400")),
        ('{"command": ["true"], "timeout": NaN}', ("timeout", "NaN")),
        ('{"command": ["true"], "timeout": "abc"}', ("exec timeout", "not a number")),
        ('{"command": ["true"], "timeout": -5}', ("exec timeout",)),
        ('{"command": ["a\\u0000b"]}', ("command[0]", "NUL")),
        ('{"command": ["true"], "stdin": 5}', ("stdin",)),
        ('{"command": ["cat"], "stdin": "\\ud800"}', ("stdin", "lone surrogate")),
    ]:
        refused(post_raw(api, url, body), *words)
    ok = api.post(url, json={"command": ["echo", "hi"], "timeout": 0})  # 0 is the default, as on Fly
    assert ok.status_code == 200 and ok.json()["stdout"] == "hi\n" and "truncated" not in ok.json()


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_exec_output_is_capped_and_never_held_whole(
    server: Server, api: httpx.Client, app_name: str, started: str
) -> None:
    assert server.process is not None
    pid = server.process.pid
    url = f"/v1/apps/{app_name}/machines/{started}/exec"
    twenty_mb = "dd if=/dev/zero bs=1048576 count=20 2>/dev/null | tr '\\0' a; echo done >&2"
    warm = api.post(url, json={"command": ["sh", "-c", "echo warm"]})
    assert warm.status_code == 200, warm.text
    baseline = _rss_kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    response = api.post(url, json={"command": ["sh", "-c", twenty_mb], "timeout": 60})
    assert response.status_code == 200, response.text
    peak = _rss_kib(pid, "VmHWM")
    result = response.json()
    assert result["exit_code"] == 0
    assert result["stdout"] == "a" * (1024 * 1024)  # the first MiB, and no more
    assert result["stderr"] == "done\n" and result["truncated"] is True
    grown_mib = (peak - baseline) / 1024
    print(f"daemon peak RSS grew by {grown_mib:.1f} MiB for 20 MiB of exec output")
    assert grown_mib < 10, f"the daemon grew by {grown_mib:.1f} MiB for 20 MiB of output"
