"""Damaged records: a record the runtime writes survives a crash whole, and one that does not read anyway (a host
crash before these fsyncs, a disk error, a hand edit) is set aside and fails its machine, never the daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from aerodrome.core import FailedPreconditionError, SandboxSpec
from aerodrome.runtime.runc import layout
from aerodrome.runtime.runc.exits import last_exit
from aerodrome.runtime.runc.instance import read_started
from aerodrome.runtime.runc.layout import Layout, MachinePaths, read_json, spec_from_json, spec_to_json, write_json
from aerodrome.runtime.runc.network import AddressPool, netns_name
from tests.api.helpers import create_machine, http_inside, wait_for
from tests.support.server import Server, running_server

POOL = "10.99.0.0/16"

WRITER = """
import sys
from pathlib import Path
from aerodrome.runtime.runc.layout import write_json
path, n = Path(sys.argv[1]), 0
print("ready", flush=True)
while True:
    n += 1
    write_json(path, {"n": n, "pad": "x" * (n % 7) * 50_000})
"""


def test_a_writer_killed_at_any_moment_leaves_a_whole_record(tmp_path: Path) -> None:
    record = tmp_path / "machine.json"
    write_json(record, {"n": 0, "pad": ""})
    seen = set()
    for attempt in range(25):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(record)], stdout=subprocess.PIPE)
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(0.002 * (attempt % 10))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        data = json.loads(record.read_bytes())  # never half a file
        assert data["pad"] == "x" * (data["n"] % 7) * 50_000
        seen.add(data["n"])
    assert len(seen) > 1  # the writer was killed at different moments


def test_a_record_is_flushed_before_its_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(f"rename {src} {dst}")
        real_replace(src, dst)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    monkeypatch.setattr(layout.os, "replace", replace)
    record = tmp_path / "exit.json"
    write_json(record, {"exit_code": 0})
    tmp = tmp_path / "exit.json.tmp"
    assert calls == [f"fsync {tmp}", f"rename {tmp} {record}", f"fsync {tmp_path}"]
    assert read_json(record) == {"exit_code": 0}
    calls.clear()
    write_json(record, {"exit_code": 1}, durable=False)  # a record that only guards a daemon crash
    assert calls == [f"rename {tmp} {record}"]
    assert read_json(record) == {"exit_code": 1}


def _quarantined(root: Path, owner: str) -> list[str]:
    return sorted(p.name for p in (root / "quarantine" / owner).iterdir())


def test_an_unreadable_exit_or_start_record_counts_as_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = Layout(tmp_path, mounts=tmp_path / "mounts").machine("m1")
    paths.dir.mkdir(parents=True)
    paths.last_exit.write_text('{"exit_code": 1, "signal"')
    paths.started.write_text('{"pid": "one", "start_time": 1}')
    assert last_exit(paths) is None
    assert read_started(paths) is None
    assert not paths.last_exit.exists() and not paths.started.exists()
    names = _quarantined(tmp_path, "m1")
    assert [n.split(".corrupt-")[0] for n in names] == ["exit.json", "started.json"]
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 2 and all(line.startswith("machine m1: ") for line in lines)
    assert last_exit(paths) is None  # and no second line for it
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"memory_mb": "lots"}, TypeError),
        ({"argv": "/bin/sh"}, TypeError),
        ({"env": {"A": 1}}, TypeError),
        ({"sealed": "not a token"}, InvalidToken),
        ({"mounts": [{"nonsense": 1}]}, TypeError),
    ],
)
def test_a_spec_of_the_wrong_shape_does_not_read(change: dict[str, object], error: type[Exception]) -> None:
    key = Fernet(Fernet.generate_key())
    spec = SandboxSpec("m1", "v1", "app", 1, "sha256:" + "0" * 64, ("/bin/sh",), env={"A": "1"})
    record = spec_to_json(spec, key)
    assert spec_from_json(record, key) == spec
    if "env" in change:  # inside the sealed part
        record["sealed"] = key.encrypt(json.dumps({"env": change["env"], "files": []}).encode()).decode()
    else:
        record.update(change)
    with pytest.raises(error):
        spec_from_json(record, key)
    assert isinstance(error(), layout.RECORD_ERRORS)


def test_an_unreadable_orgs_file_is_rebuilt_from_the_machines(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    first = AddressPool(orgs, POOL, org_prefixlen=24)
    a, b = first.allocate("a", 1), first.allocate("b", 7)
    orgs.write_bytes(orgs.read_bytes()[:10])  # half of it
    rebuilt = AddressPool(orgs, POOL, org_prefixlen=24)
    assert rebuilt.damage is not None
    rebuilt.adopt(a)
    rebuilt.adopt(b)
    rebuilt.rebuilt()
    assert read_json(orgs)["slots"] == {"1": a.slot, "7": b.slot}
    assert rebuilt.allocate("c", 7).subnet4 == b.subnet4
    assert rebuilt.allocate("d", 9).slot not in (a.slot, b.slot)
    assert _quarantined(tmp_path, "host")[0].startswith("orgs.json.corrupt-")


def test_an_unreadable_orgs_file_with_machines_of_another_pool_refuses_to_start(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.json"
    allocation = AddressPool(orgs, POOL, org_prefixlen=24).allocate("a", 1)
    orgs.write_text("garbage")
    pool = AddressPool(orgs, POOL, org_prefixlen=20)  # the lost file said /24
    pool.adopt(allocation)
    with pytest.raises(FailedPreconditionError, match="was unreadable"):
        pool.rebuilt()
    assert orgs.read_text() == "garbage"  # left for a start with the right pool to rebuild


# -- a real daemon ---------------------------------------------------------------------------------------------


def _paths(server: Server, machine_id: str) -> MachinePaths:
    return MachinePaths(server.data_dir / "runtime" / "machines" / machine_id, Path("/nonexistent"))


def _damage(server: Server, truncated: str, garbage: str, undecryptable: str) -> None:
    record = _paths(server, truncated).record
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])
    _paths(server, garbage).record.write_bytes(b"\x00\xffnot json at all\n")
    record = _paths(server, undecryptable).record
    data = json.loads(record.read_bytes())
    data["spec"]["sealed"] = Fernet(Fernet.generate_key()).encrypt(b'{"env": {}, "files": []}').decode()
    record.write_text(json.dumps(data))


def _state(api: object, machine_id: str) -> str:
    import httpx

    assert isinstance(api, httpx.Client)
    state: str = api.get(f"/v1/apps/records/machines/{machine_id}").json()["state"]
    return state


def test_damaged_machine_records_fail_their_machines_and_the_daemon_starts() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            assert api.post("/v1/apps", json={"app_name": "records", "org_slug": "personal"}).status_code == 201
            machines = {}
            for name, launch in (("truncated", True), ("garbage", False), ("undecryptable", False), ("intact", True)):
                machines[name] = create_machine(api, "records", {"image": image}, skip_launch=not launch)["id"]
            machines["resting"] = create_machine(api, "records", {"image": image}, skip_launch=True)["id"]
            wait_for(api, "records", machines["truncated"], "started")
            wait_for(api, "records", machines["intact"], "started")
        server.stop()
        _damage(server, machines["truncated"], machines["garbage"], machines["undecryptable"])
        log_start = server.log_path.stat().st_size
        server.start()
        broken = [machines[n] for n in ("truncated", "garbage", "undecryptable")]
        with server.client() as api:
            assert api.get("/health").status_code == 200
            deadline = time.monotonic() + 60
            while any(_state(api, m) != "failed" for m in broken) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [_state(api, m) for m in broken] == ["failed"] * 3
            for machine_id in broken:
                events = api.get(f"/v1/apps/records/machines/{machine_id}/events").json()
                assert events[0]["status"] == "failed" and "unreadable" in events[0]["request"]["error"]
                kept = list((server.data_dir / "runtime" / "quarantine" / machine_id).iterdir())
                assert [p.name.split(".corrupt-")[0] for p in kept] == ["machine.json"]
            # the machine that ran with a damaged record was ended, its network with it
            assert not Path("/run/netns", netns_name(machines["truncated"])).exists()
            log = server.log_path.read_bytes()[log_start:].decode(errors="replace").splitlines()
            for machine_id in broken:
                assert len([line for line in log if f"machine {machine_id}: " in line]) == 1
            # the others are as they were, and work
            assert _state(api, machines["intact"]) == "started"
            assert _state(api, machines["resting"]) == "created"
            assert api.post(f"/v1/apps/records/machines/{machines['intact']}/stop").status_code == 200
            wait_for(api, "records", machines["intact"], "stopped")
            for machine_id in (machines["intact"], machines["resting"], *broken):  # a failed machine starts again
                assert api.post(f"/v1/apps/records/machines/{machine_id}/start").status_code == 200, machine_id
                wait_for(api, "records", machine_id, "started")


def test_an_unreadable_orgs_file_is_rebuilt_for_the_running_machines_or_refused() -> None:
    with running_server() as server:
        image = server.push_image("busybox")
        with server.client() as api:
            assert api.post("/v1/apps", json={"app_name": "records", "org_slug": "personal"}).status_code == 201
            running = create_machine(api, "records", {"image": image})
            wait_for(api, "records", running["id"], "started")
        server.stop()
        orgs = server.data_dir / "runtime" / "orgs.json"
        recorded = json.loads(orgs.read_bytes())
        orgs.write_bytes(orgs.read_bytes()[:7])
        # Given another subnet size than the lost file named, the machines' subnets cannot be rebuilt: serve refuses
        # with one line and leaves the file.
        log_start = server.log_path.stat().st_size
        server.extra_args = ("--org-prefix-len", "24")
        with pytest.raises(RuntimeError, match="exited early"):
            server.start()
        assert server.process is not None and server.process.returncode == 2
        log = server.log_path.read_bytes()[log_start:].decode(errors="replace").splitlines()
        assert len([line for line in log if "orgs.json was unreadable" in line]) == 1
        assert len(orgs.read_bytes()) == 7
        server.extra_args = ()
        log_start = server.log_path.stat().st_size
        server.start()
        assert json.loads(orgs.read_bytes()) == recorded
        log = server.log_path.read_bytes()[log_start:].decode(errors="replace").splitlines()
        assert len([line for line in log if "host: " in line and "orgs.json is unreadable" in line]) == 1
        assert _quarantined(server.data_dir / "runtime", "host")[0].startswith("orgs.json.corrupt-")
        with server.client() as api:
            assert _state(api, running["id"]) == "started"
            assert "hello" in http_inside(api, "records", running["id"])
            other = create_machine(api, "records", {"image": image})
            assert other["private_ip"].split(":")[:3] == running["private_ip"].split(":")[:3]
            assert other["private_ip"] != running["private_ip"]
            wait_for(api, "records", other["id"], "started")
