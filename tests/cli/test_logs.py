"""`aerodrome logs` and the client's log methods against a real server: every machine of an app, prefixed as
flyctl prefixes lines, one machine, --since, --json, and --follow receiving new lines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

from aerodrome.client import AsyncClient, Client, ClientSettings, CreateMachineRequest, Init, MachineConfig
from tests.cli.runner import CLEARED, Cli
from tests.support.server import Server

PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (app|runner)\[([0-9a-f]+)\] iad \[(\w+)\] (.*)$")


def client(server: Server) -> Client:
    return Client(ClientSettings(base_url=server.api_url, token=server.token))


def printer(server: Server, app: str, script: str) -> str:
    config = MachineConfig(image=server.image("busybox"), init=Init(exec=["/bin/sh", "-c", script]))
    with client(server) as fly:
        machine = fly.create_machine(app, CreateMachineRequest(config=config, region="iad"))
        fly.wait(app, machine.id, "started", timeout=60)
    return machine.id


def until_lines(cli: Cli, app: str, wanted: int, *args: str) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        outcome = cli.run("logs", "--app", app, *args)
        assert outcome.code == 0, outcome.stderr
        lines = [line for line in outcome.stdout.splitlines() if " app[" in line]
        if len(lines) >= wanted or time.monotonic() > deadline:
            return lines
        time.sleep(0.3)


def test_logs_of_every_machine_prefixed_as_flyctl(server: Server, cli: Cli, app_name: str) -> None:
    first = printer(server, app_name, "echo one-a; echo one-b; exec sleep 1000")
    second = printer(server, app_name, "echo two-a; exec sleep 1000")
    lines = until_lines(cli, app_name, 3)
    parsed = [PREFIX.match(line) for line in lines]
    assert all(parsed), lines
    by_machine = {(m.group(2), m.group(4)) for m in parsed if m}
    assert by_machine == {(first, "one-a"), (first, "one-b"), (second, "two-a")}
    only = until_lines(cli, app_name, 1, "--machine", second)
    assert [PREFIX.match(line).group(4) for line in only] == ["two-a"]  # type: ignore[union-attr]
    outcome = cli.run("logs", "--app", app_name, "--json", "--since", "10m")
    entries = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert {e["message"] for e in entries if e["meta"]["event"]["provider"] == "app"} == {"one-a", "one-b", "two-a"}
    assert any(e["message"] == "machine started" for e in entries)
    assert cli.run("logs", "--app", app_name, "--since", "soon").code == 2
    assert cli.run("logs", "--app", "no-such-app").code == 3


def test_follow_prints_new_lines(server: Server, app_name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update({"AERODROME_API": server.api_url, "AERODROME_TOKEN": server.token, "AERODROME_CONFIG": "/nonexistent"})
    argv = [sys.executable, "-m", "aerodrome", "logs", "--app", app_name, "--follow"]
    seen: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True) as follower:
        try:
            time.sleep(1)  # the follower has asked once: what comes next is new to it
            machine = printer(server, app_name, "sleep 1; echo later-1; sleep 1; echo later-2; exec sleep 1000")
            assert follower.stdout is not None
            for line in follower.stdout:
                if " app[" in line:
                    seen.append(line.rstrip("\n"))
                if len(seen) == 2:
                    break
        finally:
            follower.terminate()
            follower.wait(timeout=10)
    assert [line.split("] iad [info] ")[1] for line in seen] == ["later-1", "later-2"]
    assert all(f"app[{machine}]" in line for line in seen)


def test_client_pages_and_follows_async(server: Server, app_name: str) -> None:
    machine = printer(server, app_name, "i=0; while [ $i -lt 150 ]; do echo n-$i; i=$((i+1)); done; exec sleep 1000")

    async def follow() -> list[str]:
        async with AsyncClient(ClientSettings(base_url=server.api_url, token=server.token)) as fly:
            got: list[str] = []
            async for entry in fly.follow_logs(app_name, instance=machine, next_token="0", poll=0.2):
                if entry.meta.event.provider == "app":
                    got.append(entry.message)
                if len(got) == 150:
                    return got
        raise AssertionError("the follow ended")

    assert asyncio.run(asyncio.wait_for(follow(), 60)) == [f"n-{i}" for i in range(150)]
    with client(server) as fly:
        page = fly.app_logs(app_name, next_token="0")
        assert len(page.entries) == 100 and page.next_token == page.entries[-1].id
        rest = fly.app_logs(app_name, next_token=page.next_token)
        assert rest.entries and int(rest.entries[0].id) > int(page.next_token)
