"""Machine logs through Fly's logs API: paging with next_token, follow, a daemon restart, retention, another
organisation, and a machine whose output file is hostile."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import after_passes, create_machine, delete_app, wait_for
from tests.support.server import Server, running_server

LOOP = "i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); done; exec sleep 1000"


def printing(image: str, count: int) -> dict[str, Any]:
    return {"image": image, "init": {"exec": ["/bin/sh", "-c", LOOP.format(n=count)]}, "restart": {"policy": "no"}}


def read_all(api: httpx.Client, app: str, token: str = "0", **params: str) -> tuple[list[dict[str, Any]], str]:
    """Every entry after `token`, page by page, as flyctl's poller reads them; and the last token."""
    entries: list[dict[str, Any]] = []
    while True:
        response = api.get(f"/api/v1/apps/{app}/logs", params={"next_token": token, **params})
        assert response.status_code == 200, response.text
        body = response.json()
        entries += body["data"]
        if not body["data"]:
            return entries, token
        token = body["meta"]["next_token"]


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def messages(entries: list[dict[str, Any]], provider: str = "app") -> list[str]:
    return [e["attributes"]["message"] for e in entries if e["attributes"]["meta"]["event"]["provider"] == provider]


def test_lines_page_with_next_token(api: httpx.Client, app_name: str, image: str) -> None:
    machine = create_machine(api, app_name, printing(image, 250))
    wait_for(api, app_name, machine["id"], "started")
    eventually(lambda: len(messages(read_all(api, app_name)[0])) == 250, "250 lines stored")
    first = api.get(f"/api/v1/apps/{app_name}/logs", params={"next_token": "0"}).json()
    assert len(first["data"]) == 100  # a page
    entry = first["data"][0]
    assert set(entry["attributes"]) == {"timestamp", "message", "level", "instance", "region", "meta"}
    assert entry["attributes"]["instance"] == machine["id"] and entry["attributes"]["region"] == "iad"
    entries, _ = read_all(api, app_name)
    assert messages(entries) == [f"line-{i}" for i in range(250)]
    assert "machine started" in messages(entries, "runner")
    ids = [int(e["id"]) for e in entries]
    assert ids == sorted(set(ids))
    per_machine = api.get(f"/v1/apps/{app_name}/machines/{machine['id']}/logs", params={"next_token": "0"}).json()
    assert per_machine["data"] == first["data"]
    assert api.get(f"/api/v1/apps/{app_name}/logs", params={"instance": "nope"}).json()["data"] == []
    assert api.get(f"/api/v1/apps/{app_name}/logs", params={"region": "ams"}).json()["data"] == []


def test_a_poll_without_token_gives_the_tail_and_a_token_for_what_follows(
    api: httpx.Client, app_name: str, image: str
) -> None:
    empty = api.get(f"/api/v1/apps/{app_name}/logs").json()
    assert empty["data"] == [] and empty["meta"]["next_token"].isdigit()
    machine = create_machine(api, app_name, printing(image, 3))
    wait_for(api, app_name, machine["id"], "started")
    eventually(lambda: len(messages(read_all(api, app_name, empty["meta"]["next_token"])[0])) == 3, "new lines")
    assert api.get(f"/api/v1/apps/{app_name}/logs", params={"next_token": "x1"}).status_code == 400


def test_follow_streams_new_lines_as_ndjson(api: httpx.Client, app_name: str, image: str) -> None:
    config = {
        "image": image,
        "init": {"exec": ["/bin/sh", "-c", "sleep 1; echo first; sleep 1; echo second; sleep 1000"]},
    }
    with api.stream("GET", f"/api/v1/apps/{app_name}/logs", params={"follow": "true", "next_token": "0"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        create_machine(api, app_name, config)
        seen: list[str] = []
        for raw in stream.iter_lines():
            if raw.strip():
                attributes = json.loads(raw)["attributes"]
                if attributes["meta"]["event"]["provider"] == "app":
                    seen.append(attributes["message"])
            if len(seen) == 2:
                break
    assert seen == ["first", "second"]


def test_exit_code_is_logged(api: httpx.Client, app_name: str, image: str) -> None:
    config = {"image": image, "init": {"exec": ["/bin/sh", "-c", "echo bye; exit 3"]}, "restart": {"policy": "no"}}
    machine = create_machine(api, app_name, config)
    wait_for(api, app_name, machine["id"], "stopped")
    eventually(lambda: "bye" in messages(read_all(api, app_name)[0]), "the last line of a stopped machine")
    runner = messages(read_all(api, app_name)[0], "runner")
    assert any("exited with code 3" in line for line in runner), runner


def test_another_organisation_is_refused(server: Server, api: httpx.Client, app_name: str) -> None:
    server.cli("orgs", "create", "logs-other")
    other = server.cli("tokens", "create", "--org", "logs-other").strip()
    with server.client(other) as stranger:
        assert stranger.get(f"/api/v1/apps/{app_name}/logs").status_code == 404
        assert stranger.get(f"/api/v1/apps/{app_name}/logs", params={"follow": "true"}).status_code == 404
    with server.client("not-a-token") as nobody:
        assert nobody.get(f"/api/v1/apps/{app_name}/logs").status_code == 401


def test_lines_survive_a_daemon_restart() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "logs-restart", "org_slug": "personal"})
            script = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
            machine = create_machine(api, "logs-restart", {"image": image, "init": {"exec": ["/bin/sh", "-c", script]}})
            wait_for(api, "logs-restart", machine["id"], "started")
            eventually(lambda: len(messages(read_all(api, "logs-restart")[0])) >= 5, "lines before the restart")
            before = messages(read_all(api, "logs-restart")[0])
        server.kill()
        output = server.data_dir / "runtime" / "machines" / machine["id"] / "machine.log"
        printed = output.stat().st_size
        eventually(lambda: output.stat().st_size > printed, "the machine printing while no daemon reads")
        server.start()
        with server.client() as api:
            eventually(lambda: len(messages(read_all(api, "logs-restart")[0])) > len(before) + 5, "lines after it")
            after = messages(read_all(api, "logs-restart")[0])
    assert after[: len(before)] == before  # nothing lost, nothing repeated
    numbers = [int(line.split("-")[1]) for line in after]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_retention_and_a_hostile_output_file(tmp_path: Any) -> None:
    with running_server("--log-bytes-per-machine", "65536", "--log-streams", "4") as server:
        image = server.push_image("busybox")
        secret = tmp_path / "host-secret"
        secret.write_text("HOST-SECRET\n" * 10)
        with server.client() as api:
            api.post("/v1/apps", json={"app_name": "logs-hostile", "org_slug": "personal"})
            # 3 MB without a newline, then lines
            script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; " + LOOP.format(n=5000)
            machine = create_machine(api, "logs-hostile", {"image": image, "init": {"exec": ["/bin/sh", "-c", script]}})
            wait_for(api, "logs-hostile", machine["id"], "started")
            eventually(lambda: "line-4999" in messages(read_all(api, "logs-hostile")[0]), "the last line", 60)
            entries, _ = read_all(api, "logs-hostile")
            sizes = [len(e["attributes"]["message"].encode()) for e in entries]
            assert max(sizes) <= 8192
            assert sum(sizes) <= 65536 + 8192
            log = server.data_dir / "runtime" / "machines" / machine["id"] / "machine.log"
            assert log.stat().st_blocks * 512 <= 4 * 1024 * 1024 + 65536  # read output is let go of on disk
            log.unlink()
            log.symlink_to(secret)
            os.link(secret, tmp_path / "second-link")
            after_passes(api, "logs")  # passes over the planted link
            later = messages(read_all(api, "logs-hostile")[0])
            assert not any("HOST-SECRET" in line for line in later)
            assert api.get("/health").status_code == 200
            log.unlink()
            os.link(secret, log)  # a hard link to a host file: refused too
            after_passes(api, "logs")
            assert not any("HOST-SECRET" in line for line in messages(read_all(api, "logs-hostile")[0]))
            log.unlink()
            follow = {"follow": "true"}
            with api.stream("GET", "/api/v1/apps/logs-hostile/logs", params=follow) as first:
                assert first.status_code == 200  # one stream per organisation at --log-streams 4
                second = api.get("/api/v1/apps/logs-hostile/logs", params=follow)
                assert second.status_code == 429 and "log streams" in second.json()["error"]
                assert "retry-after" in second.headers

            def admitted() -> bool:
                with api.stream("GET", "/api/v1/apps/logs-hostile/logs", params=follow) as again:
                    return again.status_code == 200

            eventually(admitted, "a stream admitted once the first one closed")


def test_a_deleted_apps_lines_go_with_it(api: httpx.Client, image: str) -> None:
    name = f"logs-gone-{os.getpid()}"
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
    machine = create_machine(api, name, printing(image, 3))
    wait_for(api, name, machine["id"], "started")
    eventually(lambda: len(messages(read_all(api, name)[0])) == 3, "lines stored")
    delete_app(api, name)
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
    try:
        after_passes(api, "logs")  # passes after the delete store nothing of the old machine
        assert read_all(api, name)[0] == []
    finally:
        delete_app(api, name)


@pytest.mark.parametrize("token", ["-1", "9" * 30])
def test_bad_tokens_are_400(api: httpx.Client, app_name: str, token: str) -> None:
    response = api.get(f"/api/v1/apps/{app_name}/logs", params={"next_token": token})
    assert response.status_code == 400 and "next_token" in response.json()["error"]
