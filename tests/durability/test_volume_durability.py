"""Volumes across a SIGKILL of the daemon: every byte a machine fsync'ed is there after the restart, and a growth
left pending (an extend the kernel refused online) is still applied at the machine's next start."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server, running_server
from tests.support.skips import skip_by_host
from tests.support.volumes import host_leftovers, online_resize_allowed

APP = "durable-volumes"

# Appends one numbered line and fsyncs it, then records its number as acknowledged (fsync'ed, renamed into place,
# directory fsync'ed): whatever `acked` says, the log holds at least that many whole lines.
WRITER = (
    "pad=$(printf '%0200d' 0 | tr 0 x); i=0; "
    'while true; do i=$((i+1)); echo "line $i $pad $i" >> /data/log; sync /data/log; '
    "echo $i > /data/acked.tmp; sync /data/acked.tmp; mv /data/acked.tmp /data/acked; sync /data; done"
)


@pytest.fixture
def server() -> Iterator[Server]:
    with running_server("--volume-check-interval", "1") as started:
        started.push_image("busybox")
        data_dir = started.data_dir
        with started.client() as api:
            assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).status_code == 201
        yield started
    assert host_leftovers(data_dir) == []


def sh(api: httpx.Client, mid: str, script: str) -> str:
    result = machine_exec(api, APP, mid, "sh", "-c", script)
    assert result["exit_code"] == 0, result
    return str(result["stdout"])


def acked(api: httpx.Client, mid: str) -> int:
    return int(sh(api, mid, "cat /data/acked 2>/dev/null || echo 0"))


def check_log(api: httpx.Client, mid: str, lines: int) -> None:
    """The first `lines` lines of the log are whole and numbered in sequence."""
    script = (
        f'head -n {lines} /data/log | awk \'{{ if ($1 != "line" || $2 != NR || length($3) != 200 || $4 != NR) '
        '{ print "bad " NR; exit 1 } } END { print NR }\''
    )
    assert int(sh(api, mid, script)) == lines


def test_sigkill_during_writes_keeps_every_synced_byte(server: Server) -> None:
    with server.client() as api:
        volume = api.post(f"/v1/apps/{APP}/volumes", json={"name": "data", "region": "iad", "size_gb": 2}).json()
        config = {
            "image": server.image("busybox"),
            "init": {"exec": ["/bin/sh", "-c", WRITER]},
            "mounts": [{"volume": volume["id"], "path": "/data"}],
        }
        mid = create_machine(api, APP, config)["id"]
        wait_for(api, APP, mid, "started")
        deadline = time.monotonic() + 30
        while acked(api, mid) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        before_kill = acked(api, mid)
        assert before_kill >= 50
    server.kill()
    server.start()
    with server.client() as api:
        assert api.get(f"/v1/apps/{APP}/machines/{mid}").json()["state"] == "started"
        now = acked(api, mid)
        assert now > before_kill  # it kept writing while no daemon watched
        check_log(api, mid, now)
        info = api.get(f"/v1/apps/{APP}/volumes/{volume['id']}").json()
        assert info["attached_machine_id"] == mid and info["bytes_used"] > now * 200
        assert api.post(f"/v1/apps/{APP}/machines/{mid}/stop").status_code == 200
        wait_for(api, APP, mid, "stopped")


def test_a_pending_growth_survives_a_sigkill(server: Server) -> None:
    if online_resize_allowed():
        skip_by_host("this host grows mounted filesystems online: no growth is left pending")
    with server.client() as api:
        volume = api.post(f"/v1/apps/{APP}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}).json()
        config = {"image": server.image("busybox"), "mounts": [{"volume": volume["id"], "path": "/data"}]}
        mid = create_machine(api, APP, config)["id"]
        wait_for(api, APP, mid, "started")
        before = int(sh(api, mid, "df -k /data | tail -n 1 | awk '{print $2}'"))
        extended = api.put(f"/v1/apps/{APP}/volumes/{volume['id']}/extend", json={"size_gb": 2}).json()
        assert extended["needs_restart"] is True
    server.kill()
    server.start()
    with server.client() as api:
        assert api.post(f"/v1/apps/{APP}/machines/{mid}/restart").status_code == 200
        wait_for(api, APP, mid, "started")
        after = int(sh(api, mid, "df -k /data | tail -n 1 | awk '{print $2}'"))
        assert after > 1.8 * before
        assert api.get(f"/v1/apps/{APP}/volumes/{volume['id']}").json()["size_gb"] == 2
