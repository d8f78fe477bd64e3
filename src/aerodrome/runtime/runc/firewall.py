"""The host-wide part of machine networking: unreachable routes, egress, and the isolation rules.

Each family's missing rules are loaded in one `iptables-restore --noflush` (a process per rule would cost
more than a machine start); every daemon start re-adds the rules of the organisations it knows, so a crash
between allocating an organisation's subnet and adding its rules heals itself.

Per organisation: forwarding within its subnets, and (IPv6) input from its /64 to its flycast /80, where the
edge binds the organisation's flycast addresses on the host; nothing else of the host is open to machines.
aerodrome's jumps lead FORWARD, INPUT and raw PREROUTING, so no earlier rule of the host decides for machines.
Egress (egress.py) lets the IPv4 pool out through one interface, masqueraded, to anything but private ranges.

Forwarding is turned on per interface, never host-wide: IPv4's on each machine's veth (network.py) and on the
uplink while egress uses it (egress.py); IPv6's (`force_forwarding`) on each veth, or, on kernels before 6.17
that lack it, host-wide with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aerodrome.runtime.process import run
from aerodrome.runtime.runc import egress, routes
from aerodrome.runtime.runc.egress import OUT_CHAIN, Egress
from aerodrome.runtime.runc.iptables import IPV4, IPV6, Family, Script, Tables, first_in_chain, merge, restore, save
from aerodrome.runtime.runc.network import CHAIN, IFACE_PREFIX, IPV6_PER_INTERFACE, flycast_prefix6

log = logging.getLogger(__name__)

INPUT_CHAIN = f"{CHAIN}-IN"
MATCH = f"{IFACE_PREFIX}+"
IPV6_ALL_FORWARDING = Path("/proc/sys/net/ipv6/conf/all/forwarding")


def _jumps() -> list[tuple[str, str, str]]:
    """(table, built-in chain, rule) that hook aerodrome's chains in, first in each."""
    return [
        ("filter", "FORWARD", f"-i {MATCH} -j {CHAIN}"),
        ("filter", "FORWARD", f"-o {MATCH} -j {CHAIN}"),
        ("filter", "INPUT", f"-i {MATCH} -j {INPUT_CHAIN}"),
        ("raw", "PREROUTING", f"-i {MATCH} -m rpfilter --invert -j DROP"),
    ]


def _org_rule(subnet: str) -> str:
    return f"-s {subnet} -d {subnet} -j ACCEPT"


def _flycast_rule(subnet6: str) -> str:
    return f"-s {subnet6} -d {flycast_prefix6(subnet6)} -j ACCEPT"


def _input_base(family: Family) -> list[str]:
    return ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", f"-p {family.icmp} -j ACCEPT", "-j DROP"]


async def install(pool4: str, subnets4: list[str], subnets6: list[str], way_out: Egress) -> None:
    """Route the pools nowhere but to machines (or refuse, FailedPreconditionError, if the host routes part of
    them), enable IPv6 forwarding where the kernel cannot per interface, and (re)load the rules."""
    await routes.claim(pool4)
    if not IPV6_PER_INTERFACE:
        _enable_ipv6_forwarding_host_wide()
    await _load(IPV4, subnets4, [], (pool4, way_out))
    await _load(IPV6, subnets6, [_flycast_rule(s) for s in subnets6], None)


_warned = False


def _enable_ipv6_forwarding_host_wide() -> None:
    global _warned
    if IPV6_ALL_FORWARDING.read_text().strip() == "1":
        return
    if not _warned:
        log.warning(
            "this kernel has no per-interface IPv6 forwarding (net.ipv6.conf.<dev>.force_forwarding, Linux 6.17+): "
            "setting net.ipv6.conf.all.forwarding=1, which also stops this host accepting router advertisements"
        )
        _warned = True
    IPV6_ALL_FORWARDING.write_text("1")


def _base(tables: Tables, family: Family, subnets: list[str], input_rules: list[str]) -> list[str]:
    """Add what is missing, and only that: other runtimes on the host (tests, a second root) share the chains."""
    lines = [f":{chain} - [0:0]" for chain in (CHAIN, INPUT_CHAIN) if not tables.has_chain("filter", chain)]
    forward = tables.rules("filter", CHAIN)
    if "-j DROP" not in forward:
        lines.append(f"-A {CHAIN} -j DROP")
    lines += [f"-I {CHAIN} 1 {_org_rule(s)}" for s in subnets if _org_rule(s) not in forward]
    present = tables.rules("filter", INPUT_CHAIN)
    if "-j DROP" not in present:
        lines += [f"-F {INPUT_CHAIN}", *(f"-A {INPUT_CHAIN} {rule}" for rule in _input_base(family))]
        present = []
    lines += [f"-I {INPUT_CHAIN} 1 {r}" for r in input_rules if r not in present]
    return lines


def _hooks(tables: Tables, guards: list[str], stale: list[str], *, installing: bool) -> Script:
    """Lines that put aerodrome's rules first in the built-in chains (only those present, unless installing)."""
    by_chain: dict[tuple[str, str], list[str]] = {("filter", "FORWARD"): list(guards)}
    for table, chain, rule in _jumps():
        if installing or rule in tables.rules(table, chain):
            by_chain.setdefault((table, chain), []).append(rule)
    forward = tables.rules("filter", "FORWARD")
    script: Script = {"filter": [f"-D FORWARD {rule}" for rule in stale if rule in forward]}
    for (table, chain), ours in by_chain.items():
        present = [rule for rule in tables.rules(table, chain) if rule not in stale]
        script.setdefault(table, []).extend(first_in_chain(present, chain, ours))
    return script


async def _load(family: Family, subnets: list[str], input_rules: list[str], way_out: tuple[str, Egress] | None) -> None:
    tables = await save(family)
    script: Script = {"filter": _base(tables, family, subnets, input_rules)}
    if way_out is None:
        await restore(family, merge(script, _hooks(tables, [], [], installing=True)))
        return
    change = egress.plan(tables, *way_out)
    egress.set_forwarding(change.disable, "0")  # before the guards that stand for them go
    hooks = _hooks(tables, change.guards, change.stale_guards, installing=True)
    await restore(family, merge(script, change.script, hooks))
    egress.set_forwarding(change.enable, "1")  # once the guards are in place


async def set_egress(pool4: str, uplink: str | None, *, public: bool = True, allow: tuple[str, ...] = ()) -> None:
    """Let the pool's machines open connections out through `uplink`, masqueraded: to anything not denied with
    `public`, and to the `allow`ed networks; with None, through nothing."""
    tables = await save(IPV4)
    way_out = Egress(egress.check_uplink(uplink), public, egress.check_allow(allow, pool4))
    change = egress.plan(tables, pool4, way_out)
    egress.set_forwarding(change.disable, "0")
    await restore(IPV4, merge(change.script, _hooks(tables, change.guards, change.stale_guards, installing=False)))
    egress.set_forwarding(change.enable, "1")


async def egress_rules(pool4: str) -> list[tuple[str, str]]:
    """The egress rules of the pool on the host now, through whichever interface."""
    return egress.egress_rules(await save(IPV4), pool4)


async def default_uplink() -> str | None:
    """The interface of the host's IPv4 default route, if it has one."""
    routes_ = json.loads((await run(["ip", "-j", "-4", "route", "show", "default"], timeout=10)).stdout or b"[]")
    return next((str(r["dev"]) for r in routes_ if r.get("dev")), None)


async def allow_org(subnet4: str, subnet6: str) -> None:
    """Let one organisation's machines reach each other and its flycast addresses on the host.

    Added when the organisation's first machine lands on the host; the edge only binds the addresses.
    """
    await _insert_once(IPV4, CHAIN, _org_rule(subnet4))
    await _insert_once(IPV6, CHAIN, _org_rule(subnet6))
    await _insert_once(IPV6, INPUT_CHAIN, _flycast_rule(subnet6))


def _service_rules(addresses: tuple[str, ...], ports: tuple[str, ...]) -> list[tuple[Family, str]]:
    """AERODROME-IN's openings to the host's services for machines: each port on each service address."""
    rules = []
    for address in addresses:
        family, length = (IPV6, 128) if ":" in address else (IPV4, 32)
        for port in ports:
            protocol, number = port.split("/")
            rules.append((family, f"-d {address}/{length} -p {protocol} -m {protocol} --dport {number} -j ACCEPT"))
    return rules


async def open_services(addresses: tuple[str, ...], ports: tuple[str, ...]) -> None:
    """Let machines reach exactly `ports` at the host's service `addresses`, and nothing else of the host."""
    for family, rule in _service_rules(addresses, ports):
        await _insert_once(family, INPUT_CHAIN, rule)


async def close_services(addresses: tuple[str, ...], ports: tuple[str, ...]) -> None:
    """Take the openings of `open_services` away again (those that are there)."""
    for family, rule in _service_rules(addresses, ports):
        tables = await save(family)
        if rule in tables.rules("filter", INPUT_CHAIN):
            await restore(family, {"filter": [f"-D {INPUT_CHAIN} {rule}"]})


async def _insert_once(family: Family, chain: str, rule: str) -> None:
    """Insert at the top unless present: runtimes under other roots share the chains (and organisations)."""
    present = await run([family.tool, "-C", chain, *rule.split()], timeout=10, check=False)
    if present.returncode != 0:
        await run([family.tool, "-I", chain, "1", *rule.split()], timeout=10)


async def _machines_run_in(subnet: str) -> bool:
    """Whether machines with addresses in `subnet` run on the host: another runtime's, on the same pool, or (IPv6)
    of the same organisation number under another pool, whose /64 is the same."""
    family = "-6" if ":" in subnet else "-4"
    found = await run(["ip", "-o", family, "route", "show", "root", subnet], timeout=10)
    return any(f" dev {IFACE_PREFIX}" in line for line in found.text.splitlines())


async def forget_org(subnet4: str, subnet6: str) -> None:
    """Remove an organisation's rules, each family's unless machines of its subnet still run (they are shared)."""
    unused4 = [] if await _machines_run_in(subnet4) else [subnet4]
    unused6 = [] if await _machines_run_in(subnet6) else [subnet6]
    if unused4 or unused6:
        await forget_orgs(unused4, unused6)


async def forget_orgs(subnets4: list[str], subnets6: list[str]) -> None:
    """Remove the rules of these organisation subnets, in one transaction per family."""
    for family, subnets, flycast in ((IPV4, subnets4, False), (IPV6, subnets6, True)):
        tables = await save(family)
        lines = [f"-D {CHAIN} {_org_rule(s)}" for s in subnets if _org_rule(s) in tables.rules("filter", CHAIN)]
        if flycast:
            inputs = tables.rules("filter", INPUT_CHAIN)
            lines += [f"-D {INPUT_CHAIN} {_flycast_rule(s)}" for s in subnets if _flycast_rule(s) in inputs]
        await restore(family, {"filter": lines})


async def uninstall(pool4: str) -> None:
    """Remove the pool's unreachable route and egress, and the chains too once no machine interface is left
    and no other pool's rules are in them. Nothing goes while machines of the pool run (another runtime's)."""
    if await _machines_run_in(pool4):
        return
    await set_egress(pool4, None)
    await routes.release(pool4, prefix6=False)
    links = (await run(["ip", "-o", "link", "show"], timeout=10)).text
    if any(line.split()[1].startswith(IFACE_PREFIX) for line in links.splitlines()):
        return
    # Another runtime's pool keeps its unreachable route while it runs, machines or not: the chains are its too.
    if (await run(["ip", "-4", "route", "show", "type", "unreachable"], timeout=10)).text.strip():
        return
    removed = [await _remove_chains(family) for family in (IPV4, IPV6)]
    if removed[1]:
        await routes.release(pool4, prefix6=True)


async def _remove_chains(family: Family) -> bool:
    """Unhook and delete the chains if they hold nothing but their skeleton; whether they are gone."""
    tables = await save(family)
    skeleton = {CHAIN: ["-j DROP"], INPUT_CHAIN: _input_base(family), OUT_CHAIN: egress.out_chain({}, [])}
    chains = [chain for chain in skeleton if tables.has_chain("filter", chain)]
    if any(tables.rules("filter", chain) not in ([], skeleton[chain]) for chain in chains):
        return False  # another pool's organisations or egress
    script: Script = {}
    for table, chain, rule in _jumps():
        if rule in tables.rules(table, chain):
            script.setdefault(table, []).append(f"-D {chain} {rule}")
    script.setdefault("filter", []).extend([*(f"-F {c}" for c in chains), *(f"-X {c}" for c in chains)])
    await restore(family, script)
    return True
