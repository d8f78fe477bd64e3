"""`aerodrome agent`: the token file, the listener and its refusals, with a FakeAgent in place of the host's."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aerodrome.agent import RemoteAgent
from aerodrome.cli import app
from aerodrome.cli.agent import bind

FACTORY = {"AERODROME_TEST_AGENT_FACTORY": "tests.support.fake_agent:open_fake_agent"}
WAIT = 30.0  # an upper bound, never a measurement


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "aerodrome", "agent", *args]


def environment() -> dict[str, str]:
    return os.environ | FACTORY | {"PYTHONPATH": str(Path(__file__).parents[2])}


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    args = command("--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}", "--name", "h1", "--region", "ams")
    process = subprocess.Popen(args, env=environment(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(WAIT)
        if process.stderr:
            process.stderr.close()


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the agent never listened")


def test_the_agent_serves_with_the_token_it_made(
    tmp_path: Path, agent_process: tuple[subprocess.Popen[str], str]
) -> None:
    process, url = agent_process
    token_file = tmp_path / "agent.token"
    assert os.stat(token_file).st_mode & 0o777 == 0o600 and os.stat(tmp_path).st_mode & 0o777 == 0o700
    token = token_file.read_text().strip()

    async def ask() -> tuple[str, str]:
        remote = RemoteAgent(url, token)
        try:
            info = await remote.info()
            return info.name, info.region
        finally:
            await remote.close()

    assert asyncio.run(ask()) == ("h1", "ams")
    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT) == 0
    assert process.stderr is not None and "answers on http://127.0.0.1:" in process.stderr.read()


def test_a_restart_keeps_the_token(tmp_path: Path) -> None:
    (tmp_path / "agent.token").write_text("t" * 43 + "\n")
    os.chmod(tmp_path / "agent.token", 0o600)
    port = free_port()
    process = subprocess.Popen(
        command("--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}"),
        env=environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=WAIT)
    assert (tmp_path / "agent.token").read_text() == "t" * 43 + "\n"


def in_process(*args: str) -> tuple[int, str]:
    """The command run through its Typer entry point (for refusals, which never reach a listener)."""
    result = CliRunner().invoke(app, list(args), env=FACTORY | {"COLUMNS": "250"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.stderr.replace("│", " ").split())


@pytest.mark.parametrize(
    ("listen", "complaint"),
    [
        ("0.0.0.0:4290", "not a loopback address"),
        ("192.0.2.1:4290", "mutual TLS"),
        ("example.com:4290", "not a loopback address"),
        ("127.0.0.1", "use HOST:PORT"),
        ("127.0.0.1:http", "use HOST:PORT"),
        ("127.0.0.1:70000", "use HOST:PORT"),
    ],
)
def test_a_listener_off_loopback_or_malformed_is_refused(tmp_path: Path, listen: str, complaint: str) -> None:
    code, stderr = in_process("agent", "--data-dir", str(tmp_path), "--listen", listen)
    assert code == 2 and complaint in stderr
    assert not (tmp_path / "agent.token").exists()


def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = in_process("agent", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert code == 2 and stderr == f"aerodrome: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "agent.token").write_text("t" * 43)
    os.chmod(tmp_path / "agent.token", 0o644)
    code, stderr = in_process("agent", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}")
    assert code == 2 and "chmod 600" in stderr


def test_serve_pairs_each_agent_with_a_token_file(tmp_path: Path) -> None:
    base = ["serve", "--data-dir", str(tmp_path)]
    for extra, complaint in (
        (["--agent", "http://127.0.0.1:4290"], "one --agent-token-file for each --agent"),
        (["--agent", "ftp://x:1", "--agent-token-file", "t"], "use http://HOST:PORT"),
        (["--agent", "http://127.0.0.1:4290/v1", "--agent-token-file", "t"], "use http://HOST:PORT"),
        (["--agent", "http://127.0.0.1:4290", "--agent-token-file", "t"] * 2, "give each --agent once"),
    ):
        code, stderr = in_process(*base, *extra)
        assert code == 2 and complaint in stderr, stderr


async def test_the_agents_connections_send_without_waiting_for_acks() -> None:
    """asyncio sets TCP_NODELAY on an accepted connection only when its socket names IPPROTO_TCP, which it takes
    from the listener: without it each small reply waited for the client's delayed ACK."""
    listener = bind("127.0.0.1", 0)
    listener.listen()
    listener.setblocking(False)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodelay.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(record, sock=listener)
    _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
    try:
        assert await asyncio.wait_for(nodelay, 10) == 1
    finally:
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
