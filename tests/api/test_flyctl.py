"""flyctl itself against a daemon of this module's own: the commands of the README's flyctl table, each run as a
user runs it, with FLY_FLAPS_BASE_URL, FLY_API_BASE_URL and FLY_UIEX_BASE_URL pointed at the daemon. The binary is
the one cached in ~/.cache/aerodrome/flyctl (see the README's "flyctl and fly-go"); where none is, conftest.py does
not collect this module."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import machine_exec, wait_app_gone, wait_for
from tests.support.server import Server, running_server

CACHE = Path.home() / ".cache" / "aerodrome" / "flyctl"
BINARIES = sorted(CACHE.glob("flyctl-*")) if CACHE.is_dir() else []
HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("busybox")
        yield started


@pytest.fixture
def image(server: Server) -> str:
    return server.image("busybox")


class Fly:
    """flyctl with a home of its own, the daemon's token and nothing of the caller's environment but PATH."""

    def __init__(self, server: Server, home: Path) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "FLY_FLAPS_BASE_URL": server.api_url,
            "FLY_API_BASE_URL": server.api_url,
            "FLY_UIEX_BASE_URL": server.api_url,
            "FLY_API_TOKEN": server.token,
            "FLY_NO_UPDATE_CHECK": "1",
            "FLY_NO_METRICS": "1",
        }

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        return self.run(*args, cwd=cwd).stdout

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BINARIES[-1]), *args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, f"fly {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))


@pytest.fixture
def fly(server: Server, tmp_path: Path) -> Fly:
    return Fly(server, tmp_path / "home")


@pytest.fixture
def fly_app(fly: Fly, api: httpx.Client) -> Iterator[str]:
    """An app made by `fly apps create`, taken down through the API afterwards whatever the test left."""
    name = f"fly-{uuid.uuid4().hex[:10]}"
    fly("apps", "create", name, "--org", "personal")
    yield name
    api.delete(f"/v1/apps/{name}")
    wait_app_gone(api, name)


def test_apps_create_list_and_destroy(fly: Fly, api: httpx.Client) -> None:
    name = f"fly-{uuid.uuid4().hex[:10]}"
    assert f"New app created: {name}" in fly("apps", "create", name, "--org", "personal")
    listed = {a["Name"]: a for a in fly.json("apps", "list")}
    assert listed[name]["Status"] == "pending" and listed[name]["Organization"]["Slug"] == "personal"
    assert f"Destroyed app {name}" in fly("apps", "destroy", name, "--yes")
    wait_app_gone(api, name)
    assert name not in [a["Name"] for a in fly.json("apps", "list")]


def test_ips_allocate_and_list(fly: Fly, fly_app: str, api: httpx.Client) -> None:
    fly("ips", "allocate-v4", "--shared", "--app", fly_app)
    fly("ips", "allocate-v6", "--app", fly_app)
    listed = fly.json("ips", "list", "--app", fly_app)
    assert sorted(ip["Type"] for ip in listed) == ["shared_v4", "v6"]
    v6 = next(ip["Address"] for ip in listed if ip["Type"] == "v6")
    assert v6 in [ip["ip"] for ip in api.get(f"/v1/apps/{fly_app}/ip_assignments").json()["ips"]]


def test_volumes_create_list_extend_and_destroy(fly: Fly, fly_app: str, api: httpx.Client) -> None:
    made = fly.json("volumes", "create", "data", "--size", "1", "--region", "iad", "--app", fly_app, "--yes")
    assert made["name"] == "data" and made["size_gb"] == 1 and made["encrypted"] is True
    assert [v["id"] for v in fly.json("volumes", "list", "--app", fly_app)] == [made["id"]]
    fly("volumes", "extend", made["id"], "--size", "2", "--app", fly_app, "--yes")
    assert api.get(f"/v1/apps/{fly_app}/volumes/{made['id']}").json()["size_gb"] == 2
    fly("volumes", "destroy", made["id"], "--app", fly_app, "--yes")
    assert fly.json("volumes", "list", "--app", fly_app) == []


def test_machine_run_and_its_lifecycle(fly: Fly, fly_app: str, image: str, api: httpx.Client) -> None:
    run = ["machine", "run", image, "--app", fly_app, "--region", "iad", "--name", "web", "--port", "80:8080/tcp:http"]
    ran = fly.run(*run, "--autostop=stop", "--vm-size", "shared-cpu-1x", "--vm-memory", "256", "--", "sh", "-c", HTTPD)
    assert "build" not in (ran.stdout + ran.stderr).lower()  # CreateBuild and FinishBuild answered: no warning
    [listed] = fly.json("machine", "list", "--app", fly_app)
    machine_id, config = listed["id"], listed["config"]
    assert listed["state"] == "started" and listed["name"] == "web"
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    [service] = config["services"]
    assert service["internal_port"] == 8080 and service["ports"] == [{"port": 80, "handlers": ["http"]}]
    assert service["autostop"] in (True, "stop")
    assert "State: started" in fly("machine", "status", machine_id, "--app", fly_app)
    assert fly("machine", "exec", machine_id, "cat /www/index.html", "--app", fly_app).strip() == "hello"
    fly("machine", "stop", machine_id, "--app", fly_app)
    assert api.get(f"/v1/apps/{fly_app}/machines/{machine_id}").json()["state"] == "stopped"
    fly("machine", "start", machine_id, "--app", fly_app)
    wait_for(api, fly_app, machine_id, "started")
    fly("machine", "restart", machine_id, "--app", fly_app)
    assert api.get(f"/v1/apps/{fly_app}/machines/{machine_id}").json()["state"] == "started"
    destroyed = fly.run("machine", "destroy", machine_id, "--app", fly_app, "--force")
    assert "failed to release lease" not in destroyed.stdout + destroyed.stderr  # the lease went with the machine
    assert fly.json("machine", "list", "--app", fly_app) == []


def test_deploy_an_image_then_secrets_roll_the_machine(
    fly: Fly, fly_app: str, image: str, api: httpx.Client, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    toml = f'app = "{fly_app}"\nprimary_region = "iad"\n\n[processes]\n  app = "sleep 100000"\n'
    (project / "fly.toml").write_text(toml)
    fly("deploy", "--image", image, "--ha=false", "--yes", cwd=project)
    [machine] = api.get(f"/v1/apps/{fly_app}/machines").json()
    assert machine["config"]["metadata"]["fly_process_group"] == "app" and machine["state"] == "started"
    assert machine["config"]["image"].startswith(image)
    fly("secrets", "set", "GREETING=hi", "--app", fly_app)  # a release, then each machine updated with it
    assert [(s["name"], s["status"]) for s in fly.json("secrets", "list", "--app", fly_app)] == [
        ("GREETING", "Deployed")
    ]
    assert machine_exec(api, fly_app, machine["id"], "/bin/sh", "-c", "echo $GREETING")["stdout"] == "hi\n"
    fly("secrets", "unset", "GREETING", "--app", fly_app)
    assert fly.json("secrets", "list", "--app", fly_app) == []
    releases = fly.json("releases", "--app", fly_app)
    assert releases[-1]["Reason"] == "deploy" and all(r["Status"] == "complete" for r in releases)
    status = fly("status", "--app", fly_app)
    assert machine["id"] in status and "started" in status
    logs = fly("logs", "--no-tail", "--app", fly_app)
    assert f"runner[{machine['id']}]" in logs and "machine started" in logs


def test_tokens_create_deploy_acts_on_its_app_only(fly: Fly, fly_app: str, server: Server, tmp_path: Path) -> None:
    token = fly("tokens", "create", "deploy", "--app", fly_app, "--expiry", "2h").strip()
    assert token.startswith("FlyV1 fm2_")
    deploy = Fly(server, tmp_path / "deploy-home")
    deploy.env["FLY_API_TOKEN"] = token
    assert [a["Name"] for a in deploy.json("apps", "list")] == [fly_app]
    deploy("secrets", "set", "FROM_DEPLOY=1", "--app", fly_app, "--stage")
    assert [s["name"] for s in fly.json("secrets", "list", "--app", fly_app)] == ["FROM_DEPLOY"]
    other = f"fly-{uuid.uuid4().hex[:10]}"
    refused = subprocess.run(
        [str(BINARIES[-1]), "apps", "create", other, "--org", "personal"],
        env=deploy.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert refused.returncode != 0 and f"may act on app '{fly_app}' only" in refused.stdout + refused.stderr
