"""What machines may reach outside the host: connections out through one uplink, never to private ranges.

Egress is IPv4 only: machines' IPv6 addresses are private to the host (fdaa::/16, no NAT66), so IPv6 never
leaves it. Out through the uplink, a pool's connections pass chain AERODROME-OUT, shared by every pool on the
host and rewritten whole (in one transaction) when it changes:

    -s <pool> -d <allowed> -j ACCEPT      what the user opened (`--egress-allow`, a LAN service say)
    -d <denied> -j DROP                   link-local (cloud metadata), loopback, RFC 1918, CGNAT, multicast…
    -m addrtype --dst-type LOCAL,BROADCAST -j DROP
    -s <pool> -j ACCEPT                   the rest, with egress on (`--no-egress` leaves only the allowed)
    -j DROP

The host's own addresses are INPUT's business (AERODROME-IN), other organisations' machines sit behind other
veths (AERODROME): neither is ever forwarded out of the uplink.

Return traffic is forwarded from the uplink, so its `forwarding` sysctl must be on. Where it was off, the host
forwarded nothing that arrived there, and a guard at the top of FORWARD keeps it so for all but machines'
traffic; the guard also records that aerodrome turned forwarding on, so it is turned off again (and the guard
removed) once no pool's egress goes through that uplink.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aerodrome.core import FailedPreconditionError, InvalidArgumentError
from aerodrome.runtime.runc.iptables import Script, Tables
from aerodrome.runtime.runc.network import CHAIN, IFACE_PREFIX

OUT_CHAIN = f"{CHAIN}-OUT"
MATCH = f"{IFACE_PREFIX}+"

#: Never reached by egress: this network, RFC 1918, CGNAT (RFC 6598), loopback, link-local (cloud metadata
#: at 169.254.169.254), multicast, and the reserved range with the limited broadcast address.
DENIED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
_IFACE = re.compile(r"[A-Za-z0-9_.@:-]{1,15}")


@dataclass(frozen=True, slots=True)
class Egress:
    """A pool's way out: through `uplink` (None: none), to anything not denied (`public`) and to `allow`."""

    uplink: str | None = None
    public: bool = True
    allow: tuple[str, ...] = ()

    @property
    def on(self) -> bool:
        return self.uplink is not None and (self.public or bool(self.allow))


def check_allow(values: Iterable[str], pool4: str) -> tuple[str, ...]:
    """The allowed networks in iptables' spelling; a bad entry is an InvalidArgumentError naming it."""
    pool = ipaddress.IPv4Network(pool4)
    allowed: list[str] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip())
        except ValueError as exc:
            raise InvalidArgumentError(f"egress allow {value!r}: not a network ({exc})") from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise InvalidArgumentError(
                f"egress allow {value!r}: IPv6 has no egress (machines' IPv6 addresses are private to the host)"
            )
        if network.overlaps(pool):
            raise InvalidArgumentError(f"egress allow {value!r} overlaps the machine pool {pool4}")
        allowed.append(network.with_prefixlen)
    return tuple(dict.fromkeys(allowed))


def check_uplink(name: str | None) -> str | None:
    if name is not None and not _IFACE.fullmatch(name):
        raise InvalidArgumentError(f"uplink {name!r} is not an interface name")
    return name


def _forwarding(uplink: str) -> Path:
    return Path(f"/proc/sys/net/ipv4/conf/{uplink}/forwarding")


def guard(uplink: str) -> str:
    """The FORWARD rule that keeps an uplink forwarding only to machines, spelled as iptables-save does."""
    return f'-i {uplink} ! -o {MATCH} -m comment --comment "aerodrome: {uplink} forwards to machines only" -j DROP'


_GUARD = re.compile(r'-i (\S+) ! -o ad-\+ -m comment --comment "aerodrome: \S+ forwards to machines only" -j DROP')
_MASQUERADE = re.compile(r"-s (\S+) -o (\S+) -j MASQUERADE")
_ALLOWED = re.compile(r"-s (\S+) -d (\S+) -j ACCEPT")
_PUBLIC = re.compile(r"-s (\S+) -j ACCEPT")


def _pool_rules(pool4: str, uplink: str) -> list[tuple[str, str, str]]:
    """(table, chain, spec) of one pool's egress outside AERODROME-OUT."""
    return [
        ("filter", CHAIN, f"-s {pool4} -o {uplink} -j {OUT_CHAIN}"),
        ("filter", CHAIN, f"-d {pool4} -i {uplink} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ("nat", "POSTROUTING", f"-s {pool4} -o {uplink} -j MASQUERADE"),
    ]


def _present_pool_rules(tables: Tables, pool4: str) -> list[tuple[str, str, str]]:
    """The pool's egress rules outside AERODROME-OUT now, through whichever uplink (and an older version's)."""
    pool = re.escape(pool4)
    patterns = [(t, c, re.compile(re.escape(s).replace("UPLINK", r"\S+"))) for t, c, s in _pool_rules(pool4, "UPLINK")]
    patterns.append(("filter", CHAIN, re.compile(rf"-s {pool} -o \S+ -j ACCEPT")))  # before AERODROME-OUT
    return [
        (table, chain, rule)
        for table, chain, pattern in patterns
        for rule in tables.rules(table, chain)
        if pattern.fullmatch(rule)
    ]


def out_chain(allowed: dict[str, list[str]], public: list[str]) -> list[str]:
    """AERODROME-OUT's rules for every pool's allowed networks and every pool with egress to the public."""
    return [
        *(f"-s {pool} -d {network} -j ACCEPT" for pool, networks in allowed.items() for network in networks),
        *(f"-d {network} -j DROP" for network in DENIED),
        "-m addrtype --dst-type LOCAL,BROADCAST -j DROP",
        *(f"-s {pool} -j ACCEPT" for pool in public),
        "-j DROP",
    ]


def _out_chain_with(tables: Tables, pool4: str, egress: Egress) -> list[str]:
    """AERODROME-OUT with other pools' entries as they are and this pool's as `egress` says."""
    allowed: dict[str, list[str]] = {}
    public: list[str] = []
    for rule in tables.rules("filter", OUT_CHAIN):
        if (m := _ALLOWED.fullmatch(rule)) and m[1] != pool4:
            allowed.setdefault(m[1], []).append(m[2])
        elif (m := _PUBLIC.fullmatch(rule)) and m[1] != pool4:
            public.append(m[1])
    if egress.on:
        allowed[pool4] = list(egress.allow)
        if egress.public:
            public.append(pool4)
    return out_chain({p: n for p, n in allowed.items() if n}, public)


@dataclass(slots=True)
class Plan:
    """One change of a pool's egress: restore lines, the guards FORWARD should hold, and the uplinks whose
    forwarding changes around the restore."""

    script: Script = field(default_factory=dict)
    guards: list[str] = field(default_factory=list)  # FORWARD's guards afterwards; the caller puts them first
    stale_guards: list[str] = field(default_factory=list)  # guards to delete from FORWARD
    enable: list[str] = field(default_factory=list)  # uplinks to turn forwarding on for, after the restore
    disable: list[str] = field(default_factory=list)  # and off for, before it

    def add(self, table: str, line: str) -> None:
        self.script.setdefault(table, []).append(line)


def plan(tables: Tables, pool4: str, egress: Egress) -> Plan:
    """What takes the host from `tables` to the pool having `egress`, other pools' egress untouched."""
    result = Plan()
    _plan_out_chain(result, tables, pool4, egress)  # first: the pool's jump needs the chain
    wanted = _pool_rules(pool4, egress.uplink) if egress.on and egress.uplink else []
    present = _present_pool_rules(tables, pool4)
    for table, chain, rule in present:
        if (table, chain, rule) not in wanted:
            result.add(table, f"-D {chain} {rule}")
    if wanted and not tables.has_chain("filter", CHAIN):
        result.add("filter", f":{CHAIN} - [0:0]")
    for table, chain, rule in wanted:
        if (table, chain, rule) not in present:
            result.add(table, f"-I {chain} 1 {rule}")
    _plan_uplinks(result, tables, pool4, egress)
    return result


def _plan_out_chain(result: Plan, tables: Tables, pool4: str, egress: Egress) -> None:
    rules = _out_chain_with(tables, pool4, egress)
    exists = tables.has_chain("filter", OUT_CHAIN)
    if exists and tables.rules("filter", OUT_CHAIN) == rules:
        return
    if not exists and not egress.on:
        return  # nothing to take away, and no chain to make for it
    result.add("filter", f"-F {OUT_CHAIN}" if exists else f":{OUT_CHAIN} - [0:0]")
    for rule in rules:
        result.add("filter", f"-A {OUT_CHAIN} {rule}")


def _plan_uplinks(result: Plan, tables: Tables, pool4: str, egress: Egress) -> None:
    in_use = {m[2] for r in tables.rules("nat", "POSTROUTING") if (m := _MASQUERADE.fullmatch(r)) and m[1] != pool4}
    if egress.on and egress.uplink:
        if not _forwarding(egress.uplink).exists():
            raise FailedPreconditionError(f"the uplink {egress.uplink} is not an interface of this host")
        in_use.add(egress.uplink)
    guarded = {m[1]: rule for rule in tables.rules("filter", "FORWARD") if (m := _GUARD.fullmatch(rule))}
    for uplink in sorted(in_use):
        off = _forwarding(uplink).exists() and _forwarding(uplink).read_text().strip() == "0"
        if uplink in guarded or off:  # turned on by aerodrome, now or before
            result.guards.append(guarded.get(uplink, guard(uplink)))
        if off:
            result.enable.append(uplink)
    for uplink, rule in guarded.items():
        if uplink not in in_use:
            result.stale_guards.append(rule)
            result.disable.append(uplink)


def set_forwarding(uplinks: list[str], value: str) -> None:
    for uplink in uplinks:
        path = _forwarding(uplink)
        if path.exists():  # an uplink gone from the host took its setting with it
            path.write_text(value)


def egress_rules(tables: Tables, pool4: str) -> list[tuple[str, str]]:
    """The pool's egress rules on the host, (table, `-A CHAIN spec`), AERODROME-OUT's included."""
    found = [(table, f"-A {chain} {rule}") for table, chain, rule in _present_pool_rules(tables, pool4)]
    own = re.compile(rf"-s {re.escape(pool4)} (-d \S+ )?-j ACCEPT")
    found += [("filter", f"-A {OUT_CHAIN} {r}") for r in tables.rules("filter", OUT_CHAIN) if own.fullmatch(r)]
    return found
