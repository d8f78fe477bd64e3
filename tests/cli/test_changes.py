"""`machine update`, `machine clone`, `--file-local`, `volumes fork`, `status`, `tokens create` and `orgs create`
through the API, the spinner (only on a terminal) and shell completion, against a real `aerodrome serve`."""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from pathlib import Path

from aerodrome.client import Client, ClientSettings
from tests.cli.runner import Cli
from tests.support.server import Server


def read(cli: Cli, app_name: str, machine_id: str, path: str) -> str:
    return str(cli.json("machine", "exec", machine_id, "--app", app_name, "--", "cat", path)["stdout"])


def test_machine_update_applies_only_the_flags_given(cli: Cli, server: Server, app_name: str, tmp_path: Path) -> None:
    on = ("--app", app_name)
    first = tmp_path / "first.txt"
    first.write_text("from run\n")
    machine = cli.json(
        "machine", "run", server.image(), *on, "--env", "A=1", "--metadata", "role=web", "--vm-memory", "256",
        "--cmd", "httpd -f -p 8081 -h /", "--file-local", f"/etc/first={first}",
    )  # fmt: skip
    assert read(cli, app_name, machine["id"], "/etc/first") == "from run\n"
    second = tmp_path / "second.bin"
    second.write_bytes(b"\x00binary\xff")
    updated = cli.json(
        "machine", "update", machine["id"], *on, "--env", "B=2", "--vm-memory", "512",
        "--file-local", f"/etc/second={second}", "--port", "80:8081/tcp:http",
    )  # fmt: skip
    config = updated["config"]
    assert updated["state"] == "started" and updated["instance_id"] != machine["instance_id"]
    assert config["env"] == {"A": "1", "B": "2"} and config["metadata"] == {"role": "web"}
    assert config["guest"]["memory_mb"] == 512 and config["guest"]["cpus"] == 1
    assert config["init"]["cmd"] == ["httpd", "-f", "-p", "8081", "-h", "/"]
    files = {f["guest_path"]: f["raw_value"] for f in config["files"]}
    assert base64.b64decode(files["/etc/second"]) == b"\x00binary\xff" and "/etc/first" in files
    assert read(cli, app_name, machine["id"], "/etc/first") == "from run\n"
    said = cli.json("machine", "exec", machine["id"], *on, "--", "sh", "-c", "echo $A$B; od -c /etc/second | head -1")
    assert said["stdout"].startswith("12\n")
    assert [(s["internal_port"], s["autostop"]) for s in config["services"]] == [(8081, False)]
    parked = cli.json(
        "machine", "update", machine["id"], *on, "--image", server.image(), "--autostop", "suspend", "--skip-start"
    )
    assert parked["state"] != "started" and parked["config"]["env"] == {"A": "1", "B": "2"}
    (service,) = parked["config"]["services"]  # --autostop alone changes the service there is
    assert service["autostop"] == "suspend" and service["ports"][0]["port"] == 80
    assert cli.json("machine", "status", machine["id"], *on)["state"] in ("stopped", "created")
    missing = cli.run("machine", "update", machine["id"], *on, "--file-local", f"/etc/x={tmp_path / 'nope'}")
    assert missing.code == 2 and "--file-local" in missing.stderr
    relative = cli.run("machine", "run", server.image(), *on, "--file-local", f"etc/x={first}")
    assert relative.code == 2 and "/GUEST/PATH" in relative.stderr
    assert cli.run("machine", "update", "d8e0000000000", *on, "--env", "C=3").code == 3


def test_machine_update_under_another_clients_lease_is_a_conflict(cli: Cli, server: Server, app_name: str) -> None:
    machine_id = cli.json("machine", "run", server.image(), "--app", app_name)["id"]
    client = Client(ClientSettings(server.api_url, server.token))
    with client, client.machine_lease(app_name, machine_id, ttl=120, description="deploying"):
        refused = cli.run("machine", "update", machine_id, "--app", app_name, "--env", "X=1")
        assert refused.code == 6 and "HTTP 409" in refused.stderr and "hint:" in refused.stderr
    assert "X" not in (cli.json("machine", "status", machine_id, "--app", app_name)["config"].get("env") or {})


def test_clone_forks_the_volume_it_mounts_or_attaches_one(cli: Cli, server: Server, app_name: str) -> None:
    on = ("--app", app_name)
    volume = cli.json("volumes", "create", "data", *on, "--region", "iad", "--size", "1")
    source = cli.json("machine", "run", server.image(), *on, "--region", "iad", "--volume", "data:/data")
    cli.json("machine", "exec", source["id"], *on, "--", "sh", "-c", "echo kept > /data/f")
    copy = cli.json("machine", "clone", source["id"], *on, "--name", "copy")
    assert copy["state"] == "started" and copy["name"] == "copy" and copy["region"] == "iad"
    assert copy["config"]["image"] == source["config"]["image"]
    (mount,) = copy["config"]["mounts"]
    assert mount["path"] == "/data" and mount["volume"] not in (volume["id"], "data")
    assert read(cli, app_name, copy["id"], "/data/f") == "kept\n"
    volumes = {v["id"]: v for v in cli.json("volumes", "list", *on)}
    assert volumes[mount["volume"]]["name"] == "data" and volumes[mount["volume"]]["attached_machine_id"] == copy["id"]
    spare = cli.json("volumes", "create", "spare", *on, "--region", "iad", "--size", "1")
    attached = cli.json("machine", "clone", source["id"], *on, "--attach-volume", f"{spare['id']}:/data", "--detach")
    assert attached["config"]["mounts"][0]["volume"] == spare["id"]
    assert len(cli.json("volumes", "list", *on)) == 3  # no fork for the attached one
    assert cli.run("machine", "clone", "d8e0000000000", *on).code == 3
    bad = cli.run("machine", "clone", source["id"], *on, "--attach-volume", "spare")
    assert bad.code == 2 and "--attach-volume" in bad.stderr


def test_volumes_fork_copies_the_data(cli: Cli, server: Server, app_name: str) -> None:
    on = ("--app", app_name)
    volume = cli.json("volumes", "create", "data", *on, "--region", "iad", "--size", "1")
    writer = cli.json("machine", "run", server.image(), *on, "--volume", "data:/data")
    cli.json("machine", "exec", writer["id"], *on, "--", "sh", "-c", "echo forked > /data/f")
    fork = cli.json("volumes", "fork", volume["id"], *on, "--name", "copy")
    assert fork["id"] != volume["id"] and fork["name"] == "copy" and fork["size_gb"] == 1
    assert fork["region"] == volume["region"]
    reader = cli.json("machine", "run", server.image(), *on, "--volume", f"{fork['id']}:/data")
    assert read(cli, app_name, reader["id"], "/data/f") == "forked\n"
    plain = cli.run("volumes", "fork", volume["id"], *on)
    assert plain.code == 0 and "forked" in plain.stdout
    assert cli.run("volumes", "fork", "vol_nope", *on).code == 3


def test_status_of_an_app_and_of_the_daemon(cli: Cli, server: Server, app_name: str) -> None:
    daemon = cli.json("status", AERODROME_TOKEN="")  # /health needs no token
    assert daemon["ok"] is True and daemon["parts"]["api"] == "up" and daemon["parts"]["registry"] == "up"
    assert "up" in cli.run("status").stdout
    cli.json("ips", "allocate-v6", "--app", app_name)
    cli.json("machine", "run", server.image(), "--app", app_name, "--detach")
    stopped = cli.json("machine", "run", server.image(), "--app", app_name)
    cli.json("machine", "stop", stopped["id"], "--app", app_name)
    cli.json("machine", "wait", stopped["id"], "--app", app_name, "--state", "stopped")
    summary = cli.json("status", "--app", app_name)
    assert summary["app"]["name"] == app_name and len(summary["machines"]) == 2
    assert summary["states"].get("stopped") == 1 and sum(summary["states"].values()) == 2
    assert [ip["type"] for ip in summary["ips"]] == ["v6"] and summary["volumes"] == []
    assert "1 stopped" in cli.run("status", "--app", app_name).stdout
    assert cli.run("status", "--app", f"{app_name}-nope").code == 3
    assert cli.run("status", "--app", app_name, AERODROME_TOKEN="").code == 2
    unreachable = cli.run("status", "--api", "http://127.0.0.1:9")
    assert unreachable.code == 4 and len(unreachable.stderr.strip().splitlines()) == 1


def test_tokens_and_orgs_are_created_through_the_api(cli: Cli, server: Server) -> None:
    created = cli.json("tokens", "create", "--name", "from-api")
    assert created["token"].startswith("fm2_") and created["name"] == "from-api" and created["org_slug"] == "personal"
    assert created["id"] in {t["id"] for t in cli.json("tokens", "list", "--token", created["token"])}
    printed = cli.run("tokens", "create", "--name", "printed")
    assert printed.code == 0 and printed.stdout.count("\n") == 1 and printed.stdout.startswith("fm2_")
    assert cli.run("tokens", "create", "--org", "someone-else").code == 3
    slug = f"org-{uuid.uuid4().hex[:8]}"
    org = cli.json("orgs", "create", slug, "--name", "Another Team")
    assert org["organization"]["slug"] == slug and org["organization"]["name"] == "Another Team"
    (theirs,) = cli.json("orgs", "list", "--token", org["token"])
    assert theirs["slug"] == slug
    assert cli.json("apps", "list", "--org", slug, "--token", org["token"]) == []
    taken = cli.run("orgs", "create", slug)
    assert taken.code == 1 and "HTTP 422" in taken.stderr and "already exists" in taken.stderr
    bad = cli.run("orgs", "create", "Not A Slug!")
    assert bad.code == 1 and "HTTP 400" in bad.stderr
    # the first token of a host: no token yet, written into the data directory (root's)
    first = cli.run("tokens", "create", "--data-dir", str(server.data_dir), AERODROME_TOKEN="")
    assert first.code == 0 and first.stdout.startswith("fm2_")
    assert cli.run("orgs", "list", "--token", first.stdout.strip()).code == 0


def test_the_spinner_shows_the_machines_state_on_a_terminal_only(cli: Cli, server: Server, app_name: str) -> None:
    quiet = cli.run("machine", "run", server.image(), "--app", app_name, "--json")
    assert quiet.code == 0 and quiet.stderr == ""
    result, shown = cli.on_terminal("machine", "run", server.image(), "--app", app_name)
    assert result.returncode == 0 and b" is started in " in result.stdout
    assert b"machine " in shown and (b"created" in shown or b"starting" in shown or b"started" in shown)


def test_shell_completion_prints_a_script() -> None:
    program = Path(sys.executable).parent / "aerodrome"
    result = subprocess.run([str(program), "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_AERODROME_COMPLETE" in result.stdout and "complete " in result.stdout
