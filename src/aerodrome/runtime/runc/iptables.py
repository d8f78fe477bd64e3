"""Reading and changing iptables rules as iptables-save prints them, in one iptables-restore per change.

A rule is compared in iptables-save's spelling (`-s 172.30.0.0/16 -o eth0 -j MASQUERADE`), so what is present
can be told from what is wanted without a process per rule (each costs milliseconds); each change is one
`iptables-restore --noflush` transaction, so no half-loaded rule set is ever in force.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aerodrome.runtime.process import run


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    restore: str
    save: str
    tool: str
    icmp: str


IPV4 = Family("ipv4", "iptables-restore", "iptables-save", "iptables", "icmp")
IPV6 = Family("ipv6", "ip6tables-restore", "ip6tables-save", "ip6tables", "ipv6-icmp")

Script = dict[str, list[str]]  # table → restore lines


@dataclass(slots=True)
class Tables:
    """One family's rules: each table's chains, each chain's rule specs (after `-A CHAIN `) in order."""

    chains: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def has_chain(self, table: str, chain: str) -> bool:
        return chain in self.chains.get(table, {})

    def rules(self, table: str, chain: str) -> list[str]:
        return self.chains.get(table, {}).get(chain, [])


def parse(saved: str) -> Tables:
    tables = Tables()
    chains: dict[str, list[str]] = {}
    for line in saved.splitlines():
        if line.startswith("*"):
            chains = tables.chains.setdefault(line[1:], {})
        elif line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            chains.setdefault(chain, []).append(spec)
    return tables


async def save(family: Family) -> Tables:
    return parse((await run([family.save], timeout=10)).text)


async def restore(family: Family, script: Script) -> None:
    """Apply the lines of each table in one transaction; nothing happens for an empty script.

    A table's new chains are declared before its rules, which may jump to them.
    """
    lines: list[str] = []
    for table, body in script.items():
        if body:
            declared = [line for line in body if line.startswith(":")]
            lines += [f"*{table}", *declared, *(line for line in body if not line.startswith(":")), "COMMIT"]
    if lines:
        await run([family.restore, "--noflush"], stdin="\n".join(lines).encode() + b"\n", timeout=10)


def merge(*scripts: Script) -> Script:
    merged: Script = {}
    for script in scripts:
        for table, lines in script.items():
            merged.setdefault(table, []).extend(lines)
    return merged


def first_in_chain(present: list[str], chain: str, ours: list[str]) -> list[str]:
    """Lines that make `ours` the first rules of a built-in chain, each once, whatever the host put before them.

    Appended rules would come after the host's own: an earlier `-j ACCEPT` would then open to machines whatever
    it opens to anyone. Nothing is written when they already lead the chain.
    """
    counts = Counter(present)
    if sorted(present[: len(ours)]) == sorted(ours) and all(counts[rule] == 1 for rule in ours):
        return []
    deletions = [f"-D {chain} {rule}" for rule in ours for _ in range(counts[rule])]
    return deletions + [f"-I {chain} 1 {rule}" for rule in reversed(ours)]
