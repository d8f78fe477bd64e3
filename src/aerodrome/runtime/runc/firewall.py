"""The host-wide part of machine networking: forwarding, unreachable routes, and the isolation rules.

Each family's rules are loaded in one `iptables-restore --noflush` (a process per rule would cost more
than the whole machine start); the chains are rebuilt from the organisation table on every daemon start,
so a crash between allocating an organisation's subnet and adding its rule heals itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aerodrome.runtime.process import run
from aerodrome.runtime.runc.network import CHAIN, IFACE_PREFIX, IPV6_PREFIX

INPUT_CHAIN = f"{CHAIN}-IN"
MATCH = f"{IFACE_PREFIX}+"


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    restore: str
    save: str
    tool: str
    icmp: str
    forwarding: str


IPV4 = Family("ipv4", "iptables-restore", "iptables-save", "iptables", "icmp", "/proc/sys/net/ipv4/ip_forward")
IPV6 = Family(
    "ipv6", "ip6tables-restore", "ip6tables-save", "ip6tables", "ipv6-icmp", "/proc/sys/net/ipv6/conf/all/forwarding"
)


def _jumps(family: Family) -> list[tuple[str, str]]:
    """(table, rule) pairs that hook the chains into the built-in ones."""
    return [
        ("filter", f"-A FORWARD -i {MATCH} -j {CHAIN}"),
        ("filter", f"-A FORWARD -o {MATCH} -j {CHAIN}"),
        ("filter", f"-A INPUT -i {MATCH} -j {INPUT_CHAIN}"),
        ("raw", f"-A PREROUTING -i {MATCH} -m rpfilter --invert -j DROP"),
    ]


def _org_rule(subnet: str) -> str:
    return f"-s {subnet} -d {subnet} -j ACCEPT"


async def install(pool4: str, subnets4: list[str], subnets6: list[str]) -> None:
    """Enable forwarding, route the pools nowhere but to machines, and (re)load the isolation rules."""
    await run(["ip", "-4", "route", "replace", "unreachable", pool4], timeout=10)
    await run(["ip", "-6", "route", "replace", "unreachable", str(IPV6_PREFIX)], timeout=10)
    for family, subnets in ((IPV4, subnets4), (IPV6, subnets6)):
        await _load(family, subnets)
        _enable_forwarding(family)


def _enable_forwarding(family: Family) -> None:
    Path(family.forwarding).write_text("1")


async def _load(family: Family, subnets: list[str]) -> None:
    saved = (await run([family.save], timeout=10)).text
    tables: dict[str, list[str]] = {"raw": [], "filter": []}
    for table, rule in _jumps(family):
        if rule not in saved:
            tables[table].append(rule)
    filter_rules = [
        f":{CHAIN} - [0:0]",
        f":{INPUT_CHAIN} - [0:0]",
        f"-F {CHAIN}",
        f"-F {INPUT_CHAIN}",
        *(f"-A {CHAIN} {_org_rule(s)}" for s in subnets),
        f"-A {CHAIN} -j DROP",
        f"-A {INPUT_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        f"-A {INPUT_CHAIN} -p {family.icmp} -j ACCEPT",
        f"-A {INPUT_CHAIN} -j DROP",
    ]
    # Chains first, then the jumps to them.
    script = ["*filter", *filter_rules, *tables["filter"], "COMMIT"]
    if tables["raw"]:
        script += ["*raw", *tables["raw"], "COMMIT"]
    await run([family.restore, "--noflush"], stdin="\n".join(script).encode() + b"\n", timeout=10)


async def allow_org(subnet4: str, subnet6: str) -> None:
    """Let one organisation's machines reach each other (added when its first machine lands on the host)."""
    await run([IPV4.tool, "-I", CHAIN, "1", *_org_rule(subnet4).split()], timeout=10)
    await run([IPV6.tool, "-I", CHAIN, "1", *_org_rule(subnet6).split()], timeout=10)


async def uninstall(pool4: str) -> None:
    """Remove every rule and route `install` added (forwarding stays on: other users may rely on it)."""
    for family in (IPV4, IPV6):
        for table, rule in _jumps(family):
            await run([family.tool, "-t", table, "-D", *rule.split()[1:]], timeout=10, check=False)
        for chain in (CHAIN, INPUT_CHAIN):
            await run([family.tool, "-F", chain], timeout=10, check=False)
            await run([family.tool, "-X", chain], timeout=10, check=False)
    await run(["ip", "-4", "route", "del", "unreachable", pool4], timeout=10, check=False)
    await run(["ip", "-6", "route", "del", "unreachable", str(IPV6_PREFIX)], timeout=10, check=False)
