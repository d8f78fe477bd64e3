"""What `serve` and the administrator's commands take from the host: root, and `AERODROME_DATA_DIR`."""

from __future__ import annotations

import json
import os
import stat
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


def test_serve_binds_port_zero_and_reports_the_ports_it_took() -> None:
    with running_server() as server:
        report_path = server.data_dir / "ports.json"
        report = json.loads(report_path.read_text())
        assert stat.S_IMODE(report_path.stat().st_mode) == 0o600
        assert report == {
            "pid": server.pid,
            "api": f"127.0.0.1:{server.api_port}",
            "registry": f"127.0.0.1:{server.registry_port}",
            "edge_http": f"127.0.0.1:{server.edge_http_port}",
            "edge_https": f"127.0.0.1:{server.edge_https_port}",
        }
        assert len({server.api_port, server.registry_port, server.edge_http_port, server.edge_https_port}) == 4
        line = f"aerodrome: ports {json.dumps(report, sort_keys=True)}\n"
        assert line in server.log_path.read_text()  # the same object on stdout, for a caller that reads it
        assert httpx.get(f"{server.api_url}/health").status_code == 200
        assert httpx.get(f"http://{server.registry}/v2/").status_code == 401  # token auth, at the reported port
        # the edge answers on the reported port: no app has this name, and it says so
        assert httpx.get(f"http://127.0.0.1:{server.edge_http_port}/", headers={"Host": "nothing.localhost"}).is_error
        server.stop()
        assert not report_path.exists()  # a stopped daemon shows no ports
        taken = (server.api_port, server.registry_port, server.edge_http_port, server.edge_https_port)
        server.start()  # a restart serves the ports the first start took: clients made before it still reach it
        assert (server.api_port, server.registry_port, server.edge_http_port, server.edge_https_port) == taken
        assert json.loads(report_path.read_text())["pid"] == server.pid
