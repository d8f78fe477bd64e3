"""The addresses `serve` listens on, and the report of the ports it took.

Any listener may be given port 0: the kernel picks a free port as the socket is bound, so daemons started side by
side (tests in parallel) never race for a port probed earlier and bound later. Once every listener listens, the
daemon writes what it took to `ports.json` in its data directory (0600, replaced atomically, removed at exit)
and prints the same object on stdout as one line, `aerodrome: ports {...}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

from aerodrome.cli.config import HostCheckError, split_hostport

PORTS_FILE = "ports.json"
PORTS_LINE = "aerodrome: ports "


def bind_listener(address: str, default_port: int, what: str) -> socket.socket:
    """A TCP socket bound to `address` (`host:port`, port 0 for any free one) and listening."""
    host, port = split_hostport(address, default_port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until the server accepts them
    except OSError as exc:
        sock.close()
        raise HostCheckError(f"the {what} cannot listen on {address}: {exc.strerror}") from None
    return sock


def hostport(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bound_address(sock: socket.socket) -> str:
    """The `host:port` a bound socket holds (the port the kernel chose for port 0)."""
    host, port = sock.getsockname()[:2]
    return hostport(host, port)


def report_ports(data_dir: Path, ports: dict[str, str]) -> None:
    """Write `ports` (listener → `host:port`) and this process's pid to the data directory, then print them."""
    report = json.dumps({"pid": os.getpid(), **ports}, sort_keys=True)
    staging = data_dir / f".{PORTS_FILE}.{os.getpid()}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(report + "\n")
    os.replace(staging, data_dir / PORTS_FILE)
    print(PORTS_LINE + report, file=sys.stdout, flush=True)


def clear_ports(data_dir: Path) -> None:
    """Remove the report: a daemon that is not serving (starting, or stopped) shows none, never a stale one."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PORTS_FILE).unlink()


def read_ports(data_dir: Path, pid: int) -> dict[str, str] | None:
    """The ports daemon `pid` reported in `data_dir`, or None while it has not (yet)."""
    try:
        report = json.loads((data_dir / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("pid") != pid:
        return None
    return {name: value for name, value in report.items() if name != "pid" and isinstance(value, str)}
