"""A machine's processes as /proc shows them to the host: the `ps` of the Machines API."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket

from aerodrome.core import ProcessInfo

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TCP_LISTEN = "0A"


def _decode_address(hex_address: str) -> str:
    """`0100007F:1F90` (as /proc/net/tcp writes it, in host byte order words) → `127.0.0.1:8080`."""
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    # Each 32-bit word is in host byte order (little-endian here).
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    port = int(port_hex, 16)
    if len(words) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, words)}:{port}"
    return f"[{ipaddress.IPv6Address(words)}]:{port}"


def listening_sockets(pid: int) -> dict[int, tuple[str, str]]:
    """inode → (address, proto) of the TCP sockets listening in `pid`'s network namespace."""
    found: dict[int, tuple[str, str]] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == TCP_LISTEN:
                found[int(fields[9])] = (_decode_address(fields[1]), "tcp")
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def process_info(pid: int, listening: dict[int, tuple[str, str]]) -> ProcessInfo | None:
    """One process, or None when it exited while being read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        directory = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime, rss_pages = int(fields[11]), int(fields[12]), int(fields[21])
    command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or comm
    sockets = tuple(sorted(listening[i] for i in _socket_inodes(pid) if i in listening))
    return ProcessInfo(
        pid=pid,
        command=command,
        cpu=utime + stime,
        rss=rss_pages * PAGE_SIZE,
        rtime=utime,
        stime=stime,
        directory=directory,
        listen_sockets=sockets,
    )


def processes(pids: list[int]) -> list[ProcessInfo]:
    """The processes of one machine (host pids); the first pid's netns gives the listening sockets."""
    if not pids:
        return []
    listening = listening_sockets(pids[0])
    return [info for pid in pids if (info := process_info(pid, listening)) is not None]
