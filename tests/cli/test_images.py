"""`aerodrome images push|import|list|rm` against a real `aerodrome serve` and its embedded registry: a local
docker archive and an OCI layout pushed with the organisation token, an image imported, listed, run and deleted."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.runner import Cli
from tests.support.server import Server


def export(server: Server, destination: str) -> None:
    """The shared busybox image, copied out of the registry as the operator, to a local form."""
    argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"--src-creds={server.operator_credentials}"]
    subprocess.run([*argv, f"docker://{server.image()}", destination], check=True, capture_output=True, timeout=120)


def test_push_import_list_run_and_remove(cli: Cli, server: Server, app_name: str, tmp_path: Path) -> None:
    on = ("--app", app_name, "--registry", server.registry)
    export(server, f"docker-archive:{tmp_path / 'busybox.tar'}")
    export(server, f"oci:{tmp_path / 'layout'}:latest")
    pushed = cli.run("images", "push", str(tmp_path / "busybox.tar"), *on, "--tag", "v1", "--json")
    assert pushed.code == 0 and pushed.stderr == "", pushed.stderr  # no progress without a terminal
    archive = pushed.json()
    assert archive["image"] == f"{server.registry}/{app_name}:v1" and archive["digest"].startswith("sha256:")
    assert archive["source"].startswith("docker-archive:")
    result, shown = cli.on_terminal("images", "push", str(tmp_path / "busybox.tar"), *on, "--tag", "v1")
    assert result.returncode == 0 and result.stdout.decode() == f"{archive['image']}\n"
    assert f"pushing {archive['image']}".encode() in shown  # the bar of blobs, on the terminal only
    layout = cli.json("images", "push", str(tmp_path / "layout"), *on, "--tag", "v2")
    assert layout["source"].startswith("oci:") and layout["image"].endswith(":v2")
    imported = cli.json("images", "import", server.image(), *on, "--tag", "imported")
    assert imported["image"] == f"{server.registry}/{app_name}:imported"
    nested = cli.json("images", "import", server.image(), *on, "--repository", "tools")
    assert nested["image"] == f"{server.registry}/{app_name}/tools:latest"
    listed = {i["tag"]: i["digest"] for i in cli.json("images", "list", *on)}
    assert listed == {"imported": imported["digest"], "v1": archive["digest"], "v2": layout["digest"]}
    assert app_name in cli.run("images", "list", *on).stdout
    machine = cli.json("machine", "run", archive["image"], "--app", app_name)
    assert machine["state"] == "started" and machine["config"]["image"] == archive["image"]
    assert cli.json("images", "rm", "imported", *on) == {"deleted": f"{server.registry}/{app_name}:imported"}
    left = {i["tag"] for i in cli.json("images", "list", *on)}
    assert left == {tag for tag, digest in listed.items() if digest != imported["digest"]}
    assert cli.run("images", "rm", "imported", *on).code == 3
    assert cli.json("images", "list", *on, "--repository", "never-pushed") == []


def test_refusals(cli: Cli, server: Server, app_name: str, tmp_path: Path) -> None:
    on = ("--registry", server.registry)
    missing = cli.run("images", "push", str(tmp_path / "nothing"), "--app", app_name, *on)
    assert missing.code == 2 and "no such" in missing.stderr
    (tmp_path / "junk.tar").write_text("not a tar")
    junk = cli.run("images", "push", str(tmp_path / "junk.tar"), "--app", app_name, *on)
    assert junk.code == 2 and "not a tar" in junk.stderr
    export(server, f"docker-archive:{tmp_path / 'busybox.tar'}")
    absent = cli.run("images", "push", str(tmp_path / "busybox.tar"), "--app", f"{app_name}-nope", *on)
    assert absent.code == 3 and "HTTP 404" in absent.stderr
    assert cli.run("images", "list", "--app", f"{app_name}-nope", *on).code == 3
    unknown = cli.run("images", "import", f"{server.registry}/library/never-there:v9", "--app", app_name, *on)
    assert unknown.code in (1, 3) and len(unknown.stderr.strip().splitlines()) == 1
