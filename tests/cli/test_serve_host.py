"""What `serve` and the administrator's commands take from the host: root, and `AERODROME_DATA_DIR`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.server import running_server


def test_serve_refuses_to_start_when_not_root(tmp_path: Path) -> None:
    # a user namespace where this process is uid 65534: `serve` sees no root, and files stay readable
    argv = ["unshare", "--user", "--map-user=65534", "--map-group=65534", sys.executable, "-m", "aerodrome", "serve"]
    done = subprocess.run(
        [*argv, "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "aerodrome: aerodrome serve must run as root (it creates namespaces, cgroups and loop devices): use sudo"
    )
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_the_data_directory_comes_from_aerodrome_data_dir(tmp_path: Path) -> None:
    with running_server() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AERODROME_", "FLY_"))}
        env |= {"AERODROME_DATA_DIR": str(server.data_dir), "HOME": str(tmp_path)}
        argv = [sys.executable, "-m", "aerodrome", "tokens", "create", "--org", "personal"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()
        with httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {token}"}) as api:
            assert api.get("/v1/tokens/current").json()["tokens"][0]["org_slug"] == "personal"
