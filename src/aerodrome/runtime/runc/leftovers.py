"""What of some machines is still on the host: how `aerodrome doctor` (and tests) prove a run leaked nothing.

Only what names these machines, this data directory or this address pool is reported, so that other runtimes
working on the same host meanwhile are not mistaken for leaks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from aerodrome.runtime.process import run
from aerodrome.runtime.runc.cgroups import MachineCgroup
from aerodrome.runtime.runc.layout import mounts_dir
from aerodrome.runtime.runc.netpool import pool_leftovers
from aerodrome.runtime.runc.network import host_iface_name, netns_name

_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")


async def host_leftovers(
    data_dir: Path,
    runtime_root: Path,
    machine_ids: Iterable[str],
    *,
    pool4: str | None = None,
) -> list[str]:
    """Containers, mounts, cgroups, directories, netns and veths that remain of `machine_ids`. With `pool4` (once
    no machine should be left at all): also every container, mount and loop device under `data_dir`, the network
    slot pool's live holders and netns, and the firewall rules and routes that name the IPv4 `pool4` or these
    machines' veths."""
    ids = sorted(set(machine_ids))
    found = await _containers(runtime_root, ids, everything=pool4 is not None)
    found += _mounts(data_dir, mounts_dir(runtime_root), ids, everything=pool4 is not None)
    for machine_id in ids:
        found += [f"cgroup {path}" for path in MachineCgroup(machine_id).leftovers()]
        for directory in (runtime_root / "machines" / machine_id, mounts_dir(runtime_root) / machine_id):
            if directory.exists():
                found.append(f"directory {directory}")
    found += await _network(ids)
    if pool4 is not None:
        found += pool_leftovers(runtime_root / "netpool")
        found += await _loop_devices(_real(data_dir))
        found += await _rules_and_routes(pool4, ids)
    return found


async def _containers(runtime_root: Path, ids: list[str], *, everything: bool) -> list[str]:
    listing = (await run(["runc", "--root", str(runtime_root / "runc"), "list", "-q"], check=False)).text.split()
    return [f"runc container {name}" for name in listing if everything or name in ids]


def _real(path: Path) -> str:
    return str(path.resolve())


def _mounts(data_dir: Path, machine_mounts: Path, ids: list[str], *, everything: bool) -> list[str]:
    roots = (str(data_dir.resolve()), str(machine_mounts))
    with open("/proc/self/mountinfo") as table:
        targets = [line.split()[4] for line in table]
    return [f"mount {t}" for t in targets if (everything and t.startswith(roots)) or any(m in t for m in ids)]


async def _loop_devices(data_dir: str) -> list[str]:
    listing = (await run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], check=False)).text
    return [f"loop device {line.strip()}" for line in listing.splitlines() if data_dir in line]


async def _network(ids: list[str]) -> list[str]:
    veths = {host_iface_name(m) for m in ids}
    links = (await run(["ip", "-o", "link", "show"], check=False)).text.splitlines()
    found = [f"veth {line.split()[1]}" for line in links if line.split()[1].split("@")[0].rstrip(":") in veths]
    namespaces = {netns_name(m) for m in ids}
    listed = (await run(["ip", "netns", "list"], check=False)).text.split()
    return found + [f"netns {name}" for name in listed if name in namespaces]


async def _rules_and_routes(pool4: str, ids: list[str]) -> list[str]:
    """Rules and routes naming an address or network inside the IPv4 pool, or one of these machines' veths. An
    organisation's IPv6 rules are not counted: every runtime on the host shares them (its org ids are the same);
    nor are wider networks that contain the pool (egress rules for 172.16.0.0/12, shared as well)."""
    pool = ipaddress.IPv4Network(pool4)
    veths = [host_iface_name(m) for m in ids]
    found = []
    for tool, family in (("iptables-save", "-4"), ("ip6tables-save", "-6")):
        rules = (await run([tool], check=False)).text.splitlines()
        found += [f"{tool.split('-')[0]} rule {r}" for r in rules if not r.startswith("#") and _ours(r, pool, veths)]
        routes = (await run(["ip", family, "route", "show", "table", "all"], check=False)).text.splitlines()
        found += [f"route {r}" for r in routes if _ours(r, pool, veths)]
    return found


def _ours(line: str, pool: ipaddress.IPv4Network, veths: Sequence[str]) -> bool:
    if any(veth in line for veth in veths):
        return True
    for token in _IPV4.findall(line):
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(token, strict=False).subnet_of(pool):
                return True
    return False
