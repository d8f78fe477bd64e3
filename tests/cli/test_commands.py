"""The command line's contract for scripts: what `serve` says when the host lacks something, `tokens create`'s
output, and `python -m aerodrome` as the same command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def aerodrome(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aerodrome", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_serve_without_the_host_tools_says_what_is_missing(tmp_path: Path) -> None:
    result = aerodrome("serve", "--data-dir", str(tmp_path), env={"PATH": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "runc" in lines[0] and "install" in lines[0]


def test_serve_refuses_an_unknown_or_bad_edge_timeout(tmp_path: Path) -> None:
    for value, complaint in (
        ("linger=5", "NAME one of connect, read"),
        ("read=soon", "is not seconds"),
        ("read=0", "more than 0"),
    ):
        result = aerodrome("serve", "--data-dir", str(tmp_path), "--edge-timeout", value)
        assert result.returncode == 2
        assert "--edge-timeout" in result.stderr and complaint in " ".join(result.stderr.replace("│", " ").split())


def test_tokens_create_prints_only_the_token(tmp_path: Path) -> None:
    result = aerodrome("tokens", "create", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("fm2_")
    other = aerodrome("tokens", "create", "--data-dir", str(tmp_path), "--org", "nope")
    assert other.returncode == 1 and other.stderr.strip() == "aerodrome: organization 'nope' not found"


def test_help_lists_the_commands() -> None:
    result = aerodrome("--help")
    assert result.returncode == 0
    commands = ("serve", "apps", "machine", "volumes", "ips", "secrets", "certs", "tokens", "orgs", "images", "status")
    for command in (*commands, "logs", "login", "mcp"):
        assert command in result.stdout


def test_build_mcp_needs_the_operators_registry_credential(tmp_path: Path) -> None:
    """Before building anything: without serve's data directory there is no credential to push with."""
    result = aerodrome("images", "build-mcp", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1
    message = "".join(result.stderr.split())  # rich wraps the line
    assert "registry/operator.credential" in message and "--creds" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
