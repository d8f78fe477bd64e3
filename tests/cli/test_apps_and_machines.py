"""`aerodrome apps` and `aerodrome machine` against a real `aerodrome serve`: JSON parsed back, tables, and the
exit statuses scripts rely on."""

from __future__ import annotations

import uuid

import httpx

from aerodrome.client import Client, ClientSettings
from tests.cli.runner import Cli
from tests.support.server import Server


def test_apps_create_list_status_destroy(cli: Cli) -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    created = cli.json("apps", "create", name, "--org", "personal")
    assert created["name"] == name and created["organization"]["slug"] == "personal"
    assert name in [a["name"] for a in cli.json("apps", "list")]
    assert name in cli.run("apps", "list").stdout
    status = cli.json("apps", "status", name)
    assert status["app"]["name"] == name and status["machines"] == []
    taken = cli.run("apps", "create", name)
    assert taken.code == 1 and "HTTP 422" in taken.stderr and len(taken.stderr.strip().splitlines()) == 1
    refused = cli.run("apps", "destroy", name)  # no --yes, and no terminal to ask on
    assert refused.code == 2 and "--yes" in refused.stderr
    assert cli.json("apps", "destroy", name, "--yes") == {"name": name, "destroying": True}


def test_machine_run_waits_for_started_and_builds_the_config(cli: Cli, server: Server, app_name: str) -> None:
    machine = cli.json(
        "machine", "run", server.image(), "--app", app_name, "--name", "web",
        "--region", "iad", "--env", "GREETING=hello world", "--cmd", "httpd -f -p 8081 -h /", "--vm-cpus", "1",
        "--vm-memory", "256", "--port", "80:8081/tcp:http", "--port", "443:8081/tcp:http:tls",
        "--autostop", "suspend", "--autostart", "--restart", "on-failure", "--metadata", "role=web",
    )  # fmt: skip
    assert machine["state"] == "started" and machine["name"] == "web" and machine["region"] == "iad"
    config = machine["config"]
    assert config["env"] == {"GREETING": "hello world"}
    assert config["init"]["cmd"] == ["httpd", "-f", "-p", "8081", "-h", "/"]
    assert config["guest"]["memory_mb"] == 256 and config["guest"]["cpus"] == 1
    assert config["restart"]["policy"] == "on-failure" and config["metadata"] == {"role": "web"}
    (service,) = config["services"]
    assert service["internal_port"] == 8081 and service["autostop"] == "suspend" and service["autostart"] is True
    assert [(p["port"], p["handlers"]) for p in service["ports"]] == [(80, ["http"]), (443, ["http", "tls"])]
    listed = cli.json("machine", "list", "--app", app_name)
    assert [m["id"] for m in listed] == [machine["id"]]
    table = cli.run("machine", "list", "--app", app_name).stdout
    assert machine["id"] in table and "started" in table
    status = cli.json("machine", "status", machine["id"], "--app", app_name)
    assert status["id"] == machine["id"] and any(e["type"] == "start" for e in status["events"])
    said = cli.run("machine", "exec", machine["id"], "--app", app_name, "--", "sh", "-c", "echo $GREETING; exit 3")
    assert said.code == 3 and said.stdout == "hello world\n"
    result = cli.json("machine", "exec", machine["id"], "--app", app_name, "--", "echo", "hi")
    assert result["exit_code"] == 0 and result["stdout"] == "hi\n"


def test_machine_lifecycle_commands(cli: Cli, server: Server, app_name: str) -> None:
    image = server.image()
    machine_id = cli.json("machine", "run", image, "--app", app_name)["id"]
    on = ("--app", app_name)
    assert cli.json("machine", "stop", machine_id, *on)["ok"] is True
    assert cli.json("machine", "wait", machine_id, *on, "--state", "stopped")["state"] == "stopped"
    assert cli.json("machine", "start", machine_id, *on)["previous_state"] == "stopped"
    assert cli.json("machine", "wait", machine_id, *on)["state"] == "started"
    assert cli.json("machine", "suspend", machine_id, *on)["ok"] is True
    assert cli.json("machine", "wait", machine_id, *on, "--state", "suspended")["state"] == "suspended"
    cli.json("machine", "start", machine_id, *on)
    assert cli.json("machine", "wait", machine_id, *on)["state"] == "started"
    assert cli.json("machine", "restart", machine_id, *on)["ok"] is True
    assert cli.json("machine", "wait", machine_id, *on)["state"] == "started"
    assert cli.json("machine", "cordon", machine_id, *on)["cordoned"] is True
    assert cli.json("machine", "status", machine_id, *on)["cordoned"] is True
    cli.json("machine", "uncordon", machine_id, *on)
    assert cli.json("machine", "status", machine_id, *on)["cordoned"] is False
    timed_out = cli.run("machine", "wait", machine_id, *on, "--state", "stopped", "--timeout", "1")
    assert timed_out.code == 5 and "stopped" in timed_out.stderr
    running = cli.run("machine", "destroy", machine_id, *on)
    assert running.code == 6 and "HTTP 412" in running.stderr and "hint:" in running.stderr
    assert cli.json("machine", "destroy", machine_id, *on, "--force")["ok"] is True
    gone = cli.run("machine", "status", machine_id, "--app", f"{app_name}-nope")
    assert gone.code == 3 and "HTTP 404" in gone.stderr


def test_machine_leases_shows_and_clears_the_holder(cli: Cli, server: Server, app_name: str) -> None:
    machine_id = cli.json("machine", "run", server.image(), "--app", app_name, "--detach")["id"]
    assert cli.json("machine", "leases", machine_id, "--app", app_name) == {"lease": None}
    with Client(ClientSettings(server.api_url, server.token)) as client:
        client.acquire_lease(app_name, machine_id, ttl=300, description="deploying")
    held = cli.json("machine", "leases", machine_id, "--app", app_name)["lease"]
    assert held["description"] == "deploying" and held["nonce"]
    refused = cli.run("machine", "stop", machine_id, "--app", app_name)  # without the nonce
    assert refused.code == 6 and "HTTP 409" in refused.stderr and "leases" in refused.stderr
    cleared = cli.json("machine", "leases", machine_id, "--app", app_name, "--clear")
    assert cleared["lease"] is None and cleared["released"]["nonce"] == held["nonce"]
    assert cli.json("machine", "leases", machine_id, "--app", app_name) == {"lease": None}
    absent = cli.run("machine", "leases", "nope", "--app", app_name)
    assert absent.code == 3


def test_usage_errors_and_an_unreachable_api(cli: Cli, server: Server, app_name: str) -> None:
    image = server.image()
    for flags, complaint in (
        (("--port", "eighty"), "--port"),
        (("--env", "NOVALUE"), "--env"),
        (("--volume", "data"), "--volume"),
        (("--autostop", "sometimes"), "--autostop"),
        (("--restart", "maybe"), "--restart"),
        (("--cmd", "'unclosed"), "--cmd"),
    ):
        result = cli.run("machine", "run", image, "--app", app_name, *flags)
        assert result.code == 2 and complaint in result.stderr, (flags, result.stderr)
    assert cli.json("machine", "list", "--app", app_name) == []  # nothing was created
    no_token = cli.run("machine", "list", "--app", app_name, AERODROME_TOKEN="")
    assert no_token.code == 2 and "login" in no_token.stderr
    bad_token = cli.run("machine", "list", "--app", app_name, "--token", "fm2_nope")
    assert bad_token.code == 1 and "HTTP 401" in bad_token.stderr
    unreachable = cli.run("apps", "list", "--api", "http://127.0.0.1:9")
    assert unreachable.code == 4 and "cannot reach" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_the_quick_starts_cli_form(cli: Cli, server: Server) -> None:
    """The README's commands, with busybox standing in for flyio/mcp (and its httpd for the MCP server)."""
    server.push_image("flyio/mcp", "latest")
    name = f"mcp-demo-{uuid.uuid4().hex[:8]}"
    on = ("--app", name)
    try:
        cli.json("apps", "create", name, "--org", "personal")
        assert cli.json("ips", "allocate-v4", "--shared", *on)["type"] == "shared_v4"
        assert cli.json("ips", "allocate-v6", *on)["type"] == "v6"
        cli.json("volumes", "create", "data", *on, "--region", "iad", "--size", "1")
        machine = cli.json(
            "machine", "run", "flyio/mcp:latest", *on, "--region", "iad", "--cmd", "httpd -f -p 8080 -h /data",
            "--vm-cpus", "1", "--vm-memory", "1024", "--volume", "data:/data", "--port", "80:8080/tcp:http",
            "--port", "443:8080/tcp:http:tls", "--autostop", "stop", "--autostart",
        )  # fmt: skip
        assert machine["state"] == "started"
        cli.run("machine", "exec", machine["id"], *on, "--", "sh", "-c", "echo served > /data/index.html")
        edge = f"http://127.0.0.1:{server.edge_http_port}/"
        reply = httpx.get(edge, headers={"Host": f"{name}.localhost"}, timeout=60)
        assert reply.status_code == 200 and reply.text == "served\n"
    finally:
        cli.run("apps", "destroy", name, "--yes")
