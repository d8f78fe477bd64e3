"""Fly's `.internal` names, answered for the caller's organisation only (pure: no I/O).

Addresses (AAAA, and A with the private IPv4 address, an aerodrome extension for IPv4-only programs) of
started machines only:
    <app>.internal, global.<app>.internal, <region>.<app>.internal, <id>.vm.<app>.internal,
    <group>.process.<app>.internal, top<N>.nearest.of.<app>.internal
TXT: vms.<app>.internal ("<id> <region>,…"), regions.<app>.internal ("iad,…"), _apps.internal ("a,b,…"),
_instances.internal ("instance=<id>,app=<app>,ip=<6pn>,region=<region>;…"). `_api.internal` is the
Machines API's address on the host. Another organisation's app does not exist (NXDOMAIN), as on Fly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import dns.rdatatype
from dns.rdatatype import RdataType

from aerodrome.inside.directory import Peer, Snapshot

SUFFIX = ".internal"
_NEAREST = re.compile(r"top([1-9][0-9]{0,2})\.nearest\.of")
TXT_CHUNK = 255  # the longest character-string a TXT record holds; longer values are split into several


@dataclass(frozen=True, slots=True)
class Answer:
    """What the resolver says of one name: NXDOMAIN (`exists` false), or these records (none: no data)."""

    exists: bool = True
    addresses: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()


NXDOMAIN = Answer(exists=False)


@dataclass(frozen=True, slots=True)
class Names:
    """Answers `.internal` questions from a snapshot of the machines; `api` are the API's addresses."""

    api: tuple[str, ...]
    nearest_limit: int = 100

    def answer(self, snapshot: Snapshot, caller: Peer, qname: str) -> Answer | None:
        """The answer for `qname` (lower case, no final dot) asked by `caller`; None: not an internal name."""
        if qname != SUFFIX[1:] and not qname.endswith(SUFFIX):
            return None
        labels = qname[: -len(SUFFIX)].split(".") if qname.endswith(SUFFIX) else []
        org = caller.org
        if labels == ["_api"]:
            return Answer(addresses=self.api)
        if labels == ["_apps"]:
            return Answer(texts=(",".join(sorted(snapshot.apps[org])),))
        if labels == ["_instances"]:
            return Answer(texts=(";".join(_instance(p) for p in _started(snapshot.peers[org])),))
        if not labels or labels[-1] not in snapshot.apps[org]:
            return NXDOMAIN
        app, selector = labels[-1], ".".join(labels[:-1])
        peers = [p for p in _started(snapshot.peers[org]) if p.app == app]
        return self._in_app(peers, selector, caller)

    def _in_app(self, peers: list[Peer], selector: str, caller: Peer) -> Answer:
        if selector == "vms":
            return Answer(texts=(",".join(f"{p.id} {p.region}" for p in peers),))
        if selector == "regions":
            return Answer(texts=(",".join(sorted({p.region for p in peers})),))
        if selector in ("", "global"):
            return _addresses(peers)
        parts = selector.split(".")
        if len(parts) == 1:
            return _addresses(p for p in peers if p.region == parts[0])
        if len(parts) == 2 and parts[1] == "vm":
            return _addresses(p for p in peers if p.id == parts[0])
        if len(parts) == 2 and parts[1] == "process":
            return _addresses(p for p in peers if p.group == parts[0])
        if nearest := _NEAREST.fullmatch(selector):
            # One host: the caller's region first, then the rest, each by machine id (a stable order).
            ranked = sorted(peers, key=lambda p: (p.region != caller.region, p.id))
            return _addresses(ranked[: min(int(nearest[1]), self.nearest_limit)])
        return NXDOMAIN


def _started(peers: Iterable[Peer]) -> list[Peer]:
    return [p for p in peers if p.started]


def _instance(peer: Peer) -> str:
    return f"instance={peer.id},app={peer.app},ip={peer.ipv6},region={peer.region}"


def _addresses(peers: Iterable[Peer]) -> Answer:
    chosen = list(peers)
    return Answer(addresses=(*(p.ipv6 for p in chosen if p.ipv6), *(p.ipv4 for p in chosen if p.ipv4)))


def records(answer: Answer, qtype: int) -> list[tuple[RdataType, list[str] | list[bytes]]]:
    """The records of `answer` that answer a question of type `qtype`: (type, values)."""
    wanted = {qtype} if qtype != dns.rdatatype.ANY else {dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT}
    found: list[tuple[RdataType, list[str] | list[bytes]]] = []
    v6 = [a for a in answer.addresses if ":" in a]
    v4 = [a for a in answer.addresses if ":" not in a]
    if dns.rdatatype.AAAA in wanted and v6:
        found.append((dns.rdatatype.AAAA, v6))
    if dns.rdatatype.A in wanted and v4:
        found.append((dns.rdatatype.A, v4))
    if dns.rdatatype.TXT in wanted and answer.texts:
        found.append((dns.rdatatype.TXT, [t.encode() for t in answer.texts]))
    return found


def chunks(text: bytes) -> list[bytes]:
    """A TXT value as character-strings of at most 255 bytes (an empty value is one empty string)."""
    return [text[i : i + TXT_CHUNK] for i in range(0, len(text), TXT_CHUNK)] or [b""]
