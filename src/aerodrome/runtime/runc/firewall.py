"""The host-wide part of machine networking: forwarding, unreachable routes, egress, and the isolation rules.

Each family's missing rules are loaded in one `iptables-restore --noflush` (a process per rule would cost
more than a machine start); every daemon start re-adds the rules of the organisations it knows, so a crash
between allocating an organisation's subnet and adding its rules heals itself.

Per organisation: forwarding within its subnets, and (IPv6) input from its /64 to its flycast /80, where the
edge binds the organisation's flycast addresses on the host; nothing else of the host is open to machines.
Egress, when on, lets the IPv4 pool out through one interface (the default route's), masqueraded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from aerodrome.runtime.process import run
from aerodrome.runtime.runc.network import CHAIN, IFACE_PREFIX, IPV6_PREFIX, flycast_prefix6

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


def _flycast_rule(subnet6: str) -> str:
    return f"-s {subnet6} -d {flycast_prefix6(subnet6)} -j ACCEPT"


async def install(pool4: str, subnets4: list[str], subnets6: list[str]) -> None:
    """Enable forwarding, route the pools nowhere but to machines, and (re)load the isolation rules."""
    await run(["ip", "-4", "route", "replace", "unreachable", pool4], timeout=10)
    await run(["ip", "-6", "route", "replace", "unreachable", str(IPV6_PREFIX)], timeout=10)
    await _load(IPV4, subnets4, [])
    await _load(IPV6, subnets6, [_flycast_rule(s) for s in subnets6])
    for family in (IPV4, IPV6):
        _enable_forwarding(family)


def _enable_forwarding(family: Family) -> None:
    Path(family.forwarding).write_text("1")


async def _load(family: Family, subnets: list[str], input_rules: list[str]) -> None:
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
    filter_script += [f"-I {INPUT_CHAIN} 1 {r}" for r in input_rules if f"-A {INPUT_CHAIN} {r}" not in rules]
    jumps = [(table, rule) for table, rule in _jumps(family) if rule not in rules]
    filter_script += [rule for table, rule in jumps if table == "filter"]  # after the chains they jump to
    raw_script = [rule for table, rule in jumps if table == "raw"]
    script = (["*filter", *filter_script, "COMMIT"] if filter_script else []) + (
        ["*raw", *raw_script, "COMMIT"] if raw_script else []
    )
    if script:
        await run([family.restore, "--noflush"], stdin="\n".join(script).encode() + b"\n", timeout=10)


async def allow_org(subnet4: str, subnet6: str) -> None:
    """Let one organisation's machines reach each other and its flycast addresses on the host.

    Added when the organisation's first machine lands on the host; the edge only binds the addresses.
    """
    await _insert_once(IPV4, CHAIN, _org_rule(subnet4))
    await _insert_once(IPV6, CHAIN, _org_rule(subnet6))
    await _insert_once(IPV6, INPUT_CHAIN, _flycast_rule(subnet6))


async def _insert_once(family: Family, chain: str, rule: str) -> None:
    """Insert at the top unless present: runtimes under other roots share the chains (and organisations)."""
    present = await run([family.tool, "-C", chain, *rule.split()], timeout=10, check=False)
    if present.returncode != 0:
        await run([family.tool, "-I", chain, "1", *rule.split()], timeout=10)


async def forget_orgs(subnets4: list[str], subnets6: list[str]) -> None:
    """Remove the rules of these organisation subnets."""
    for family, subnets in ((IPV4, subnets4), (IPV6, subnets6)):
        for subnet in subnets:
            await run([family.tool, "-D", CHAIN, *_org_rule(subnet).split()], timeout=10, check=False)
    for subnet in subnets6:
        await run([IPV6.tool, "-D", INPUT_CHAIN, *_flycast_rule(subnet).split()], timeout=10, check=False)


async def default_uplink() -> str | None:
    """The interface of the host's IPv4 default route, if it has one."""
    routes = json.loads((await run(["ip", "-j", "-4", "route", "show", "default"], timeout=10)).stdout or b"[]")
    return next((str(r["dev"]) for r in routes if r.get("dev")), None)


def _egress_rules(pool4: str, uplink: str) -> list[tuple[str, str]]:
    """(table, rule) pairs, spelled as iptables-save prints them."""
    return [
        ("filter", f"-A {CHAIN} -s {pool4} -o {uplink} -j ACCEPT"),
        ("filter", f"-A {CHAIN} -d {pool4} -i {uplink} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ("nat", f"-A POSTROUTING -s {pool4} -o {uplink} -j MASQUERADE"),
    ]


async def egress_rules(pool4: str) -> list[tuple[str, str]]:
    """The egress rules of the pool on the host now, through whichever interface."""
    patterns = [(t, re.compile(re.escape(r).replace("UPLINK", r"\S+"))) for t, r in _egress_rules(pool4, "UPLINK")]
    found: list[tuple[str, str]] = []
    table = ""
    for line in (await run([IPV4.save], timeout=10)).text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        found += [(table, line) for t, pattern in patterns if t == table and pattern.fullmatch(line)]
    return found


async def set_egress(pool4: str, uplink: str | None) -> None:
    """Let the pool's machines open connections out through `uplink`, masqueraded; with None, through nothing.

    Other organisations' machines stay unreachable (they sit behind other interfaces) and so does the host
    (that is INPUT, not FORWARD).
    """
    wanted = _egress_rules(pool4, uplink) if uplink else []
    present = await egress_rules(pool4)
    for table, rule in present:
        if (table, rule) not in wanted:
            await run([IPV4.tool, "-t", table, "-D", *rule.split()[1:]], timeout=10, check=False)
    for table, rule in wanted:
        if (table, rule) not in present:
            chain, *spec = rule.split()[1:]
            await run([IPV4.tool, "-t", table, "-I", chain, "1", *spec], timeout=10)


async def uninstall(pool4: str) -> None:
    """Remove the pool's unreachable route and egress, and the chains too once no machine interface is left."""
    await run(["ip", "-4", "route", "del", "unreachable", pool4], timeout=10, check=False)
    await set_egress(pool4, None)
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
