"""The `.internal` names against a snapshot of machines, without sockets: forms, organisations, started only."""

from __future__ import annotations

import dns.rdatatype

from aerodrome.inside import Names, Peer, Snapshot
from aerodrome.inside.names import NXDOMAIN, chunks, records

API = ("fdaa::3", "169.254.0.3")


def peer(
    id_: str, app: str, org: str = "personal", region: str = "iad", *, started: bool = True, group: str = "app"
) -> Peer:
    return Peer(id_, app, org, region, f"fdaa::{id_}", f"172.30.0.{id_}", started, group, registered=True)


def snapshot(*peers: Peer, apps: dict[str, set[str]] | None = None) -> Snapshot:
    made = Snapshot()
    for org, names in (apps or {}).items():
        made.apps[org] |= names
    for p in peers:
        made.apps[p.org].add(p.app)
        made.add(p)
    return made


A1, A2, A3 = peer("1", "a"), peer("2", "a", region="ams", group="worker"), peer("3", "a", started=False)
B1, C1 = peer("4", "b"), peer("5", "c", org="other")
SNAP = snapshot(A1, A2, A3, B1, C1, apps={"personal": {"empty"}})
NAMES = Names(api=API)


def addresses(name: str, caller: Peer = A1) -> set[str]:
    answer = NAMES.answer(SNAP, caller, name)
    assert answer is not None and answer.exists, name
    return {a for a in answer.addresses if ":" in a}


def test_address_forms_name_started_machines_of_the_app() -> None:
    assert addresses("a.internal") == addresses("global.a.internal") == {A1.ipv6, A2.ipv6}
    assert addresses("ams.a.internal") == {A2.ipv6}
    assert addresses("2.vm.a.internal") == {A2.ipv6}
    assert addresses("3.vm.a.internal") == set()  # not started: no data, but the name exists
    assert addresses("worker.process.a.internal") == {A2.ipv6}
    assert addresses("top1.nearest.of.a.internal") == {A1.ipv6}  # the caller's region first
    assert addresses("top5.nearest.of.a.internal", caller=A2) == {A1.ipv6, A2.ipv6}
    assert addresses("empty.internal") == set()


def test_texts() -> None:
    def text(name: str, caller: Peer = A1) -> str:
        answer = NAMES.answer(SNAP, caller, name)
        assert answer is not None
        return answer.texts[0]

    assert text("vms.a.internal") == "1 iad,2 ams"
    assert text("regions.a.internal") == "ams,iad"
    assert text("_apps.internal") == "a,b,empty"
    assert text("_apps.internal", caller=C1) == "c"
    assert "instance=4,app=b,ip=fdaa::4,region=iad" in text("_instances.internal")
    assert "instance=5" not in text("_instances.internal")


def test_other_organisations_and_unknown_forms_do_not_exist() -> None:
    for name in ("c.internal", "vms.c.internal", "x.y.a.internal", "internal", "top0.nearest.of.a.internal"):
        assert NAMES.answer(SNAP, A1, name) == NXDOMAIN, name
    assert NAMES.answer(SNAP, C1, "a.internal") == NXDOMAIN
    assert NAMES.answer(SNAP, A1, "example.com") is None  # forwarded, not ours
    assert NAMES.answer(SNAP, A1, "_api.internal") is not None


def test_records_by_type() -> None:
    answer = NAMES.answer(SNAP, A1, "a.internal")
    assert answer is not None
    by_type = dict(records(answer, dns.rdatatype.ANY))
    assert set(by_type) == {dns.rdatatype.AAAA, dns.rdatatype.A}
    assert records(answer, dns.rdatatype.TXT) == []
    assert chunks(b"x" * 300) == [b"x" * 255, b"x" * 45] and chunks(b"") == [b""]
