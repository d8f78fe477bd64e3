"""The host-wide part of machine networking: forwarding, unreachable routes, and the isolation rules.

Each family's missing rules are loaded in one `iptables-restore --noflush` (a process per rule would cost
more than a machine start); every daemon start re-adds the rules of the organisations it knows, so a crash
between allocating an organisation's subnet and adding its rule heals itself.
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
    """Add what is missing, and only that: other runtimes on the host (tests, a second root) share the chains."""
    saved = (await run([family.save], timeout=10)).text
    rules = set(saved.splitlines())
    filter_script: list[str] = []
    for chain in (CHAIN, INPUT_CHAIN):
        if f":{chain} " not in saved:
            filter_script.append(f":{chain} - [0:0]")
    if f"-A {CHAIN} -j DROP" not in rules:
        filter_script.append(f"-A {CHAIN} -j DROP")
    filter_script += [f"-I {CHAIN} 1 {_org_rule(s)}" for s in subnets if f"-A {CHAIN} {_org_rule(s)}" not in rules]
    if f"-A {INPUT_CHAIN} -j DROP" not in rules:
        filter_script += [
            f"-F {INPUT_CHAIN}",
            f"-A {INPUT_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            f"-A {INPUT_CHAIN} -p {family.icmp} -j ACCEPT",
            f"-A {INPUT_CHAIN} -j DROP",
        ]
    jumps = [(table, rule) for table, rule in _jumps(family) if rule not in rules]
    filter_script += [rule for table, rule in jumps if table == "filter"]  # after the chains they jump to
    raw_script = [rule for table, rule in jumps if table == "raw"]
    script = (["*filter", *filter_script, "COMMIT"] if filter_script else []) + (
        ["*raw", *raw_script, "COMMIT"] if raw_script else []
    )
    if script:
        await run([family.restore, "--noflush"], stdin="\n".join(script).encode() + b"\n", timeout=10)


async def allow_org(subnet4: str, subnet6: str) -> None:
    """Let one organisation's machines reach each other (added when its first machine lands on the host)."""
    await run([IPV4.tool, "-I", CHAIN, "1", *_org_rule(subnet4).split()], timeout=10)
    await run([IPV6.tool, "-I", CHAIN, "1", *_org_rule(subnet6).split()], timeout=10)


async def forget_orgs(subnets4: list[str], subnets6: list[str]) -> None:
    """Remove the rules of these organisation subnets."""
    for family, subnets in ((IPV4, subnets4), (IPV6, subnets6)):
        for subnet in subnets:
            await run([family.tool, "-D", CHAIN, *_org_rule(subnet).split()], timeout=10, check=False)


async def uninstall(pool4: str) -> None:
    """Remove the pool's unreachable route, and the chains too once no machine interface is left on the host."""
    await run(["ip", "-4", "route", "del", "unreachable", pool4], timeout=10, check=False)
    links = (await run(["ip", "-o", "link", "show"], timeout=10)).text
    if any(line.split()[1].startswith(IFACE_PREFIX) for line in links.splitlines()):
        return
    for family in (IPV4, IPV6):
        for table, rule in _jumps(family):
            await run([family.tool, "-t", table, "-D", *rule.split()[1:]], timeout=10, check=False)
        for chain in (CHAIN, INPUT_CHAIN):
            await run([family.tool, "-F", chain], timeout=10, check=False)
            await run([family.tool, "-X", chain], timeout=10, check=False)
    await run(["ip", "-6", "route", "del", "unreachable", str(IPV6_PREFIX)], timeout=10, check=False)
