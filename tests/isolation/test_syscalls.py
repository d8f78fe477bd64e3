"""What a program in a machine may and may not do, probed from inside a real machine of a real `aerodrome serve`:
the seccomp allow-list refuses namespaces, mounts, io_uring, tracing, keyrings, bpf, perf, userfaultfd and the
kernel's own calls, the capability set lacks NET_RAW and MKNOD, and ordinary programs still work."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aerodrome.runtime.runc.userns import IDS_PER_MACHINE, RANGE_COUNT, RANGE_START
from tests.api.helpers import create_machine, delete_app, http_inside, machine_exec, wait_for
from tests.isolation.conftest import python_files
from tests.support.server import Server, running_server

pytestmark = [pytest.mark.root]

APP = "isolation"
GUEST_SCRIPT = Path(__file__).parent / "guest_threads.py"
# The machine's program probes first (so the probe runs as the init's child, as any program does), then serves.
PROBE_THEN_SERVE = "/probe > /tmp/probe.part && mv /tmp/probe.part /tmp/probe.json; exec httpd -f -p 8080 -h /www"
READ_PROBE = "for i in $(seq 100); do [ -e /tmp/probe.json ] && exec cat /tmp/probe.json; sleep 0.1; done; exit 1"

EPERM, ENOSYS = errno.EPERM, errno.ENOSYS
# Each attempt runs in a child of the probe's own. Those marked "profile" succeed in a machine without the seccomp
# profile (checked on this kind of host); those marked "caps" fail there too, for want of a capability.
EXPECTED = {
    "clone_newuser_newnet": EPERM,  # profile: clone is allowed only without namespace flags
    "unshare_newuser": EPERM,  # profile
    "unshare_newnet": EPERM,  # profile and caps
    "clone3": ENOSYS,  # profile: so that glibc falls back to clone
    "io_uring_setup": EPERM,  # profile
    "bpf": EPERM,  # profile and the kernel's unprivileged_bpf_disabled
    "perf_event_open": EPERM,  # profile: a task clock of one's own is otherwise allowed
    "keyctl": EPERM,  # profile
    "add_key": EPERM,  # profile
    "userfaultfd": EPERM,  # profile: user-mode-only faults are otherwise allowed
    "ptrace_attach": EPERM,  # profile: of its own child
    "process_vm_readv": EPERM,  # profile: of itself
    "socket_packet_raw": EPERM,  # caps: no CAP_NET_RAW
    "socket_inet_raw_icmp": EPERM,  # caps
    "socket_inet_stream": 0,
    "socket_vsock": EPERM,  # profile
    "mknod_char_device": EPERM,  # caps: no CAP_MKNOD
    "mount_tmpfs": EPERM,  # profile and caps
    "kexec_load": EPERM,  # profile and caps
    "init_module": EPERM,  # profile and caps
    "setns": EPERM,  # profile and caps
    "personality_query": 0,
    "personality_addr_no_randomize": EPERM,  # profile
    "fork_exec_wait": 0,
    "posix_spawn": 0,  # glibc's posix_spawn tries clone3 first too
    "pthread_create": 0,  # likewise
}
# Bits of /proc/self/status's capability masks
CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_MKNOD = 10, 12, 13, 21, 27


@pytest.fixture(scope="module")
def guest_python() -> tuple[str, dict[str, bytes], dict[str, int]]:
    """The host's python3 as the image carries it: its path, files and modes."""
    return python_files(GUEST_SCRIPT)


@pytest.fixture(scope="module")
def server(probe_binary: bytes, guest_python: tuple[str, dict[str, bytes], dict[str, int]]) -> Iterator[Server]:
    _, files, modes = guest_python
    files = {**files, "/probe": probe_binary, "/guest_threads.py": GUEST_SCRIPT.read_bytes()}
    with running_server() as started:
        started.push_image("isolation", files=files, modes={**modes, "/probe": 0o755})
        yield started


@pytest.fixture(scope="module")
def machine(server: Server) -> Iterator[str]:
    """A machine whose program ran the probe, then serves /www with busybox httpd."""
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).status_code == 201
        config = {"image": server.image("isolation"), "init": {"cmd": ["sh", "-c", PROBE_THEN_SERVE]}}
        machine_id = str(create_machine(api, APP, config)["id"])
        wait_for(api, APP, machine_id, "started")
        yield machine_id
        delete_app(api, APP)


def run(server: Server, machine_id: str, *command: str) -> dict[str, Any]:
    with server.client() as api:
        return machine_exec(api, APP, machine_id, *command)


@pytest.fixture(scope="module", params=["program", "exec"])
def probe(request: pytest.FixtureRequest, server: Server, machine: str) -> dict[str, Any]:
    """The probe's report, run as the machine's program (under catatonit and the wrapper) or by exec."""
    command = ("sh", "-c", READ_PROBE) if request.param == "program" else ("/probe",)
    result = run(server, machine, *command)
    assert result["exit_code"] == 0, result
    report: dict[str, Any] = json.loads(result["stdout"])
    return report


def test_denied_calls_fail_and_ordinary_ones_work(probe: dict[str, Any]) -> None:
    assert probe["Seccomp"] == "2" and probe["NoNewPrivs"] == "1"
    assert probe["results"] == EXPECTED


def test_capabilities_lack_raw_sockets_device_nodes_and_admin(probe: dict[str, Any]) -> None:
    effective = int(probe["CapEff"], 16)
    assert probe["CapEff"] == probe["CapPrm"] == probe["CapBnd"]
    for cap in (CAP_NET_RAW, CAP_MKNOD, CAP_SYS_ADMIN, CAP_NET_ADMIN):
        assert not effective & (1 << cap), f"capability {cap} is in {probe['CapEff']}"
    assert effective & (1 << CAP_NET_BIND_SERVICE)  # low ports stay open to the program


def test_machine_root_is_not_host_root(probe: dict[str, Any]) -> None:
    """The machine's ids 0..65535 are one range of host ids, in the range aerodrome owns, and nothing else."""
    for name in ("uid_map", "gid_map"):
        ranges = [line.split() for line in probe[name].splitlines()]
        assert len(ranges) == 1, f"{name}: {probe[name]!r}"
        inside, outside, count = (int(field) for field in ranges[0])
        assert (inside, count) == (0, IDS_PER_MACHINE)
        assert RANGE_START <= outside < RANGE_START + RANGE_COUNT and outside % IDS_PER_MACHINE == 0


def test_busybox_httpd_serves(server: Server, machine: str) -> None:
    with server.client() as api:
        assert "hello from aerodrome" in http_inside(api, APP, machine)


def test_shell_pipelines_subshells_and_jobs(server: Server, machine: str) -> None:
    script = (
        "seq 1 1000 | grep 7 | sort -rn | head -n 3 | tr '\\n' ' '; echo; "
        "x=$(echo abc | sed s/b/B/); (sleep 0.1; echo from-subshell) & wait; echo $x; "
        "cat /etc/passwd | awk -F: '{print $1}' | xargs echo; timeout 5 sh -c 'exit 3'; echo status=$?"
    )
    result = run(server, machine, "sh", "-c", script)
    assert result["exit_code"] == 0, result
    assert result["stdout"].splitlines() == ["997 987 979 ", "from-subshell", "aBc", "root nobody", "status=3"]


def test_python_starts_threads_and_a_child(
    server: Server, machine: str, guest_python: tuple[str, dict[str, bytes], dict[str, int]]
) -> None:
    result = run(server, machine, guest_python[0], "-I", "-S", "/guest_threads.py")
    assert result["exit_code"] == 0, result
    expected_sum = sum(n * (n - 1) // 2 for n in (1000 * i for i in range(8)))
    assert json.loads(result["stdout"]) == {"threads": 8, "sum": expected_sum, "child": "child"}


def test_the_probe_leaves_nothing_behind(server: Server, machine: str) -> None:
    """Whatever an attempt would have made (a device node, a mount) is absent, and the machine still runs."""
    leftovers = run(server, machine, "sh", "-c", "ls /tmp; grep -c aerodrome-probe /proc/mounts; true")
    assert leftovers["stdout"].split() == ["probe.json", "0"], leftovers
    with server.client() as api:
        assert api.get(f"/v1/apps/{APP}/machines/{machine}").json()["state"] == "started"
