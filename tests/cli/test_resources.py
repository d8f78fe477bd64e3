"""`aerodrome volumes`, `ips`, `secrets`, `certs`, `tokens`, `orgs`, `login` and `logout` against a real
`aerodrome serve`, through the CLI entry point."""

from __future__ import annotations

import json
import stat
import tomllib
import uuid

from tests.cli.runner import Cli
from tests.support.server import Server


def test_volumes_and_their_snapshots(cli: Cli, server: Server, app_name: str) -> None:
    on = ("--app", app_name)
    volume = cli.json("volumes", "create", "data", *on, "--region", "iad", "--size", "1")
    assert volume["name"] == "data" and volume["size_gb"] == 1 and volume["id"].startswith("vol_")
    assert [v["id"] for v in cli.json("volumes", "list", *on)] == [volume["id"]]
    assert volume["id"] in cli.run("volumes", "list", *on).stdout
    shown = cli.json("volumes", "show", volume["id"], *on)
    assert shown["id"] == volume["id"] and shown["bytes_total"] > 0
    extended = cli.json("volumes", "extend", volume["id"], *on, "--size", "2")
    assert extended["volume"]["size_gb"] == 2 and extended["needs_restart"] is False
    machine = cli.json("machine", "run", server.image(), *on, "--volume", "data:/data")
    assert machine["config"]["mounts"][0]["path"] == "/data"
    snapshot = cli.json("volumes", "snapshots", "create", volume["id"], *on)
    assert snapshot["id"] and snapshot["status"]
    assert [s["id"] for s in cli.json("volumes", "snapshots", "list", volume["id"], *on)] == [snapshot["id"]]
    held = cli.run("volumes", "destroy", volume["id"], *on)
    assert held.code == 6 and "HTTP 412" in held.stderr
    cli.json("machine", "destroy", machine["id"], *on, "--force")
    assert cli.json("volumes", "destroy", volume["id"], *on)["id"] == volume["id"]
    assert cli.run("volumes", "show", "vol_nope", *on).code == 3


def test_ips_allocate_list_release(cli: Cli, app_name: str) -> None:
    on = ("--app", app_name)
    shared = cli.json("ips", "allocate-v4", *on, "--shared")
    assert shared["type"] == "shared_v4" and shared["address"]
    dedicated = cli.json("ips", "allocate-v4", *on)
    public_v6 = cli.json("ips", "allocate-v6", *on)
    private_v6 = cli.json("ips", "allocate-v6", *on, "--private")
    assert (dedicated["type"], public_v6["type"], private_v6["type"]) == ("v4", "v6", "private_v6")
    listed = {ip["address"]: ip["type"] for ip in cli.json("ips", "list", *on)}
    expected = {ip["address"]: ip["type"] for ip in (shared, dedicated, public_v6, private_v6)}
    assert listed == expected
    assert cli.json("ips", "release", dedicated["address"], *on) == {"released": dedicated["address"]}
    assert dedicated["address"] not in {ip["address"] for ip in cli.json("ips", "list", *on)}
    assert cli.run("ips", "release", dedicated["address"], *on).code == 3


def test_secrets_set_list_unset(cli: Cli, server: Server, app_name: str) -> None:
    on = ("--app", app_name)
    update = cli.json("secrets", "set", "API_KEY=abc", "OTHER=x=y", *on)
    assert sorted(s["name"] for s in update["secrets"]) == ["API_KEY", "OTHER"]
    from_stdin = cli.run("secrets", "set", "PIPED=-", *on, "--json", input="from stdin\n")
    assert from_stdin.code == 0, from_stdin.stderr
    listed = cli.json("secrets", "list", *on)
    assert sorted(s["name"] for s in listed) == ["API_KEY", "OTHER", "PIPED"]
    assert all(s["value"] is None and s["digest"] for s in listed)  # never a value
    assert "abc" not in cli.run("secrets", "list", *on).stdout
    machine = cli.json("machine", "run", server.image(), *on)
    said = cli.run("machine", "exec", machine["id"], *on, "--", "sh", "-c", 'echo "$OTHER/$PIPED"')
    assert said.stdout == "x=y/from stdin\n"
    unknown = cli.run("secrets", "unset", "API_KEY", "NOPE", *on)
    assert unknown.code == 2 and "NOPE" in unknown.stderr
    assert len(cli.json("secrets", "list", *on)) == 3  # nothing changed
    cli.json("secrets", "unset", "API_KEY", "PIPED", *on)
    assert [s["name"] for s in cli.json("secrets", "list", *on)] == ["OTHER"]


def test_certs_add_list_show_check_remove(cli: Cli, app_name: str) -> None:
    on = ("--app", app_name)
    host = f"www-{uuid.uuid4().hex[:8]}.example.com"
    added = cli.json("certs", "add", host, *on)
    assert added["hostname"] == host and added["configured"] and added["certificates"][0]["source"] == "fly"
    assert [c["hostname"] for c in cli.json("certs", "list", *on)] == [host]
    assert cli.json("certs", "show", host, *on)["certificates"] == added["certificates"]
    checked = cli.json("certs", "check", host, *on)
    assert checked["configured"] and checked["validation_errors"] == []
    assert host in cli.run("certs", "show", host, *on).stdout
    assert cli.json("certs", "remove", host, *on) == {"removed": host}
    assert cli.json("certs", "list", *on) == []
    assert cli.run("certs", "show", host, *on).code == 3


def test_tokens_and_orgs(cli: Cli, server: Server) -> None:
    fresh = server.cli("tokens", "create", "--name", "cli-resources").strip()
    listed = {t["name"]: t for t in cli.json("tokens", "list")}
    assert "cli-resources" in listed and fresh not in str(listed)
    revoked = cli.json("tokens", "revoke", listed["cli-resources"]["id"])
    assert revoked["revoked"] is True
    assert cli.run("tokens", "list", "--token", fresh).code == 1  # refused from its next request
    assert cli.run("tokens", "revoke", "nope").code == 3
    (org,) = cli.json("orgs", "list")
    assert org["slug"] == "personal"


def test_login_keeps_a_checked_token_in_a_private_file_and_logout_removes_it(cli: Cli, server: Server) -> None:
    refused = cli.run("login", "--token", "fm2_wrong", AERODROME_TOKEN="")
    assert refused.code == 1 and "HTTP 401" in refused.stderr and not cli.config.exists()
    logged = cli.run("login", "--json", AERODROME_TOKEN="", input=f"{server.token}\n")
    assert logged.code == 0, logged.stderr
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config.parent.stat().st_mode) == 0o700
    assert tomllib.loads(cli.config.read_text()) == {"api": server.api_url, "token": server.token}
    # now neither flag nor environment is needed
    assert cli.run("orgs", "list", AERODROME_API="", AERODROME_TOKEN="").code == 0
    cli.config.chmod(0o644)
    exposed = cli.run("orgs", "list", AERODROME_API="", AERODROME_TOKEN="")
    assert exposed.code == 2 and "chmod 600" in exposed.stderr
    cli.config.chmod(0o600)
    assert cli.json("logout") == {"config": str(cli.config), "removed": True}
    assert not cli.config.exists()
    after = cli.run("orgs", "list", AERODROME_API="", AERODROME_TOKEN="")
    assert after.code == 2 and "login" in after.stderr


def test_mcp_launch_runs_the_guides_calls_through_the_client(cli: Cli, server: Server) -> None:
    name = f"mcp-{uuid.uuid4().hex[:10]}"
    launched = cli.run("mcp", "launch", "--app", name, "--image", server.image())
    try:
        assert launched.code == 0, launched.stderr
        config = json.loads(launched.stdout)["mcpServers"][name]
        assert config["args"][:3] == ["mcp", "proxy", "--url"] and config["args"][3] == f"http://{name}.localhost:8080/"
        assert [s["name"] for s in cli.json("secrets", "list", "--app", name)] == ["FLY_MCP_BEARER_TOKEN"]
        assert sorted(ip["type"] for ip in cli.json("ips", "list", "--app", name)) == ["shared_v4", "v6"]
        assert [v["name"] for v in cli.json("volumes", "list", "--app", name)] == ["data"]
        (machine,) = cli.json("machine", "list", "--app", name)
        assert machine["state"] == "created" and machine["config"]["mounts"][0]["path"] == "/data"
        again = cli.run("mcp", "launch", "--app", name, "--image", server.image())
        assert again.code == 1 and "HTTP 422" in again.stderr
    finally:
        cli.run("apps", "destroy", name, "--yes")
