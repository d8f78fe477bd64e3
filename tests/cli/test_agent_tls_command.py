"""`aerodrome agent --cluster-ca FILE`: mutual TLS on its listener, with a FakeAgent in place of the host's; a
control plane reaches it with a client certificate from the same CA file, and plain HTTP gets nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from aerodrome.agent import RemoteAgent
from aerodrome.cli.cluster import control_plane_tls
from aerodrome.cli.config import HostCheckError
from tests.cli.test_agent_command import WAIT, command, environment, free_port, in_process, wait_for_port


def test_an_agent_with_the_cluster_ca_answers_over_mutual_tls_only(tmp_path: Path) -> None:
    port, ca_file = free_port(), tmp_path / "cluster-ca.pem"
    args = command("--data-dir", str(tmp_path / "agent"), "--listen", f"127.0.0.1:{port}", "--name", "h1")
    process = subprocess.Popen(
        [*args, "--cluster-ca", str(ca_file)], env=environment(), stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_port(port, process)
        url = f"https://127.0.0.1:{port}"
        assert ca_file.stat().st_mode & 0o777 == 0o600
        assert not (tmp_path / "agent" / "agent.token").exists()  # the client's certificate is the credential

        async def ask() -> str:
            remote = RemoteAgent(url, tls=control_plane_tls(ca_file), server_name="h1")
            try:
                return (await remote.info()).name
            finally:
                await remote.close()

        assert asyncio.run(ask()) == "h1"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=WAIT)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT)
    assert process.returncode == 0 and "answers on https://127.0.0.1:" in stderr


def test_with_the_cluster_ca_an_address_off_loopback_is_allowed(tmp_path: Path) -> None:
    # a documentation address no interface has: past the loopback check, the bind itself fails
    code, stderr = in_process(
        "agent", "--data-dir", str(tmp_path), "--listen", "192.0.2.1:4290", "--cluster-ca", str(tmp_path / "ca.pem")
    )
    assert code == 2 and "cannot listen on 192.0.2.1:4290" in stderr


def test_serve_needs_the_cluster_ca_for_an_https_agent(tmp_path: Path) -> None:
    code, stderr = in_process("serve", "--data-dir", str(tmp_path), "--agent", "https://127.0.0.1:4290")
    assert code == 2 and "needs --cluster-ca FILE" in stderr
    with pytest.raises(HostCheckError, match="cannot read the cluster CA"):
        control_plane_tls(tmp_path / "missing.pem")
