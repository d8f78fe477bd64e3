"""The behaviour every `aerodrome.core.Runtime` driver must show, written against the Protocol alone.

A driver's test module subclasses `RuntimeConformance` and provides a `harness` fixture (see `Harness`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import secrets
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from aerodrome.control.ips import org_flycast_base
from aerodrome.core import (
    ExitInfo,
    GuestFile,
    ImageInfo,
    InvalidArgumentError,
    Runtime,
    SandboxSpec,
    SandboxStatus,
    VolumeMount,
    machine_id,
)
from aerodrome.runtime.process import run

HTTPD = ("httpd", "-f", "-p", "8080", "-h", "/www")
FLYCAST_PORT = 8181
WAIT = 15.0  # an upper bound for things that take milliseconds; never a measurement


@dataclass
class Harness:
    runtime: Runtime
    image: ImageInfo
    reopen: Callable[[], Awaitable[Runtime]]  # a new runtime on the same host state, as after a daemon restart
    leftovers: Callable[[str], Awaitable[list[str]]]  # what of a machine remains on the host
    cpu_quota: Callable[[str], Awaitable[float]]  # CPUs' worth of time the machine may use

    def spec(self, argv: tuple[str, ...] = HTTPD, *, org: int = 1, **fields: object) -> SandboxSpec:
        return SandboxSpec(
            machine_id=machine_id(),
            instance_id="01J0000000000000000000000",
            app_name="conformance",
            org_network_id=org,
            image_digest=self.image.digest,
            argv=argv,
            **fields,  # type: ignore[arg-type]
        )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.02)


async def http_get(host: str, port: int = 8080) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: machine\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def http_answers(host: str) -> bool:
    try:
        return (await http_get(host)).startswith(b"HTTP/1.")
    except OSError:
        return False


async def shell(h: Harness, machine: str, script: str) -> tuple[int, str]:
    result = await h.runtime.exec(machine, ["sh", "-c", script], None, 10)
    return result.exit_code, result.stdout.decode()


class ExitLog:
    def __init__(self, runtime: Runtime) -> None:
        self.exits: list[tuple[str, ExitInfo]] = []
        runtime.on_exit(self.record)

    async def record(self, machine: str, info: ExitInfo) -> None:
        self.exits.append((machine, info))

    async def wait(self, machine: str) -> ExitInfo:
        async def seen() -> bool:
            return any(m == machine for m, _ in self.exits)

        await eventually(seen, f"exit of {machine}")
        return next(info for m, info in self.exits if m == machine)

    def count(self, machine: str) -> int:
        return sum(m == machine for m, _ in self.exits)


class RuntimeConformance:
    async def test_httpd_answers_on_private_addresses(self, harness: Harness) -> None:
        h = harness
        spec = h.spec()
        info = await h.runtime.create(spec)
        assert await h.runtime.status(spec.machine_id) == SandboxStatus.CREATED
        await h.runtime.start(spec.machine_id)
        assert await h.runtime.status(spec.machine_id) == SandboxStatus.RUNNING
        await eventually(lambda: http_answers(info.private_ipv4), "httpd on the private IPv4")
        assert b"hello from aerodrome" in await http_get(info.private_ipv4)
        assert b"hello from aerodrome" in await http_get(info.private_ip)
        processes = await h.runtime.ps(spec.machine_id)
        httpd = [p for p in processes if p.command.startswith("httpd")]
        assert httpd and httpd[0].rss > 0 and httpd[0].directory == "/www", processes
        assert any(address.endswith(":8080") for address, _ in httpd[0].listen_sockets)

    async def test_argv_env_files_and_hostname_are_visible_inside(self, harness: Harness) -> None:
        h = harness
        script = 'echo "$0 $1" > /tmp/argv; env > /tmp/env; exec sleep 1000'
        spec = h.spec(
            ("sh", "-c", script, "first", "second"),
            env={"GREETING": "hello world"},
            files=(GuestFile("/etc/app/settings.conf", b"answer=42\n", 0o600),),
        )
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        await eventually(lambda: _succeeds(h, spec.machine_id, "test -s /tmp/env"), "the program's first lines")
        assert (await shell(h, spec.machine_id, "cat /tmp/argv"))[1] == "first second\n"
        assert "GREETING=hello world\n" in (await shell(h, spec.machine_id, "cat /tmp/env"))[1]
        assert (await shell(h, spec.machine_id, "cat /etc/app/settings.conf"))[1] == "answer=42\n"
        assert (await shell(h, spec.machine_id, "stat -c %a /etc/app/settings.conf"))[1] == "600\n"
        assert (await shell(h, spec.machine_id, "hostname"))[1] == f"{spec.machine_id}\n"

    async def test_user_and_signals_reach_the_program(self, harness: Harness) -> None:
        h = harness
        script = 'trap "id -u > /tmp/usr1" USR1; touch /tmp/trapped; while true; do sleep 0.02; done'
        spec = h.spec(("sh", "-c", script), user="nobody")
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        assert (await shell(h, spec.machine_id, "id -u"))[1] == "65534\n"
        await eventually(lambda: _succeeds(h, spec.machine_id, "test -e /tmp/trapped"), "the shell's trap")
        await h.runtime.signal(spec.machine_id, signal.SIGUSR1)
        await eventually(lambda: _succeeds(h, spec.machine_id, "test -s /tmp/usr1"), "the USR1 handler")
        assert (await shell(h, spec.machine_id, "cat /tmp/usr1"))[1] == "65534\n"

    async def test_exec_passes_stdin_and_times_out(self, harness: Harness) -> None:
        h = harness
        spec = h.spec(("sleep", "1000"))
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        echoed = await h.runtime.exec(spec.machine_id, ["cat"], b"ping\n", 10)
        assert (echoed.exit_code, echoed.stdout) == (0, b"ping\n")
        failed = await h.runtime.exec(spec.machine_id, ["sh", "-c", "echo oops >&2; exit 4"], None, 10)
        assert (failed.exit_code, failed.stderr) == (4, b"oops\n")
        slow = await h.runtime.exec(spec.machine_id, ["sleep", "1000"], None, 0.3)
        assert slow.exit_code == 128 + 9  # killed at the timeout

    async def test_files_outside_the_guest_root_are_refused(self, harness: Harness) -> None:
        spec = harness.spec(files=(GuestFile("/etc/../../escape", b"x"),))
        with pytest.raises(InvalidArgumentError):
            await harness.runtime.create(spec)

    async def test_memory_limit_kills_with_oom(self, harness: Harness) -> None:
        h = harness
        exits = ExitLog(h.runtime)
        hog = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'
        spec = h.spec(("sh", "-c", hog), memory_mb=64)
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        info = await exits.wait(spec.machine_id)
        assert info.oom_killed
        assert info.exit_code == 128 + signal.SIGKILL and not info.requested_stop
        assert await h.runtime.status(spec.machine_id) == SandboxStatus.STOPPED

    async def test_cpu_quota_follows_the_guest(self, harness: Harness) -> None:
        h = harness
        for cpus in (1, 2):
            spec = h.spec(("sleep", "1000"), cpus=cpus)
            await h.runtime.create(spec)
            await h.runtime.start(spec.machine_id)
            assert await h.cpu_quota(spec.machine_id) == cpus

    async def test_organisations_are_isolated(self, harness: Harness) -> None:
        h = harness
        a1, a2, b1 = h.spec(org=1), h.spec(org=1), h.spec(org=2)
        addresses = {}
        for spec in (a1, a2, b1):
            addresses[spec.machine_id] = await h.runtime.create(spec)
            await h.runtime.start(spec.machine_id)
        target = addresses[a2.machine_id]
        await eventually(lambda: http_answers(target.private_ipv4), "httpd of a2")
        for address in (target.private_ipv4, target.private_ip):
            # busybox-static's wget crashes on Debian 12; nc does the job
            fetch = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {address} 8080"
            assert "hello from aerodrome" in (await shell(h, a1.machine_id, fetch))[1], f"same organisation, {address}"
            assert "hello" not in (await shell(h, b1.machine_id, fetch))[1], f"other organisation, {address}"

    async def test_flycast_addresses_on_the_host_serve_their_organisation_only(self, harness: Harness) -> None:
        h = harness
        a, b = h.spec(("sleep", "1000"), org=1), h.spec(("sleep", "1000"), org=2)
        for spec in (a, b):
            await h.runtime.create(spec)
            await h.runtime.start(spec.machine_id)
        # As the edge does: an address of organisation 1's flycast range, bound on the host's loopback.
        address = str(ipaddress.IPv6Address(org_flycast_base(1) + 1 + secrets.randbelow(1 << 32)))
        await run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo"])

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"flycast of org 1\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, address, FLYCAST_PORT)
        try:
            fetch = f"nc -w 1 {address} {FLYCAST_PORT} </dev/null"
            assert "flycast of org 1" in (await shell(h, a.machine_id, fetch))[1], "same organisation"
            assert "flycast" not in (await shell(h, b.machine_id, fetch))[1], "other organisation"
        finally:
            server.close()
            await server.wait_closed()
            await run(["ip", "-6", "addr", "del", f"{address}/128", "dev", "lo"], check=False)

    async def test_stop_signal_then_kill_after_timeout(self, harness: Harness) -> None:
        h = harness
        handler = h.spec(("sh", "-c", 'trap "exit 3" INT; touch /tmp/trapped; while true; do sleep 0.05; done'))
        default = h.spec(("sleep", "1000"))
        stubborn = h.spec(("sh", "-c", 'trap "" INT; touch /tmp/trapped; while true; do sleep 0.05; done'))
        for spec in (handler, default, stubborn):
            await h.runtime.create(spec)
            await h.runtime.start(spec.machine_id)
        for trapping in (handler.machine_id, stubborn.machine_id):
            await eventually(functools.partial(_succeeds, h, trapping, "test -e /tmp/trapped"), "the shells' traps")
        handled = await h.runtime.stop(handler.machine_id, signal.SIGINT, WAIT)
        assert (handled.exit_code, handled.requested_stop, handled.oom_killed) == (3, True, False)
        interrupted = await h.runtime.stop(default.machine_id, signal.SIGINT, WAIT)
        assert (interrupted.exit_code, interrupted.signal) == (128 + signal.SIGINT, signal.SIGINT)
        killed = await h.runtime.stop(stubborn.machine_id, signal.SIGINT, 0.3)
        assert (killed.exit_code, killed.signal, killed.requested_stop) == (137, signal.SIGKILL, True)
        assert await h.runtime.status(stubborn.machine_id) == SandboxStatus.STOPPED

    async def test_suspend_stops_progress_and_resume_continues(self, harness: Harness) -> None:
        h = harness
        with tempfile.TemporaryDirectory() as data:
            counter = Path(data) / "counter"
            script = (
                "i=0; while true; do i=$((i+1)); echo $i > /data/counter.tmp; mv /data/counter.tmp /data/counter; done"
            )
            spec = h.spec(("sh", "-c", script), mounts=(VolumeMount(data, "/data"),))
            await h.runtime.create(spec)
            await h.runtime.start(spec.machine_id)
            await eventually(lambda: _exists(counter), "the counter")
            await h.runtime.suspend(spec.machine_id)
            assert await h.runtime.status(spec.machine_id) == SandboxStatus.PAUSED
            frozen_at = counter.read_text()
            await asyncio.sleep(0.3)
            assert counter.read_text() == frozen_at
            await h.runtime.resume(spec.machine_id)
            assert await h.runtime.status(spec.machine_id) == SandboxStatus.RUNNING
            await eventually(lambda: _changed(counter, frozen_at), "the counter to move again")
            await h.runtime.destroy(spec.machine_id)

    async def test_exit_codes_are_reported_once(self, harness: Harness) -> None:
        h = harness
        exits = ExitLog(h.runtime)
        spec = h.spec(("sh", "-c", "exit 7"))
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        info = await exits.wait(spec.machine_id)
        assert (info.exit_code, info.signal, info.requested_stop, info.oom_killed) == (7, -1, False, False)
        assert info.exited_at.endswith("Z")
        assert await h.runtime.status(spec.machine_id) == SandboxStatus.STOPPED
        await h.runtime.start(spec.machine_id)  # a stopped machine starts again
        await eventually(lambda: _count_is(exits, spec.machine_id, 2), "the second exit")
        await asyncio.sleep(0.1)
        assert exits.count(spec.machine_id) == 2

    async def test_each_start_sees_a_clean_rootfs(self, harness: Harness) -> None:
        h = harness
        spec = h.spec(("sleep", "1000"))
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        assert (await shell(h, spec.machine_id, "echo dirty > /www/index.html; touch /marker"))[0] == 0
        await h.runtime.stop(spec.machine_id, signal.SIGTERM, WAIT)
        await h.runtime.start(spec.machine_id)
        assert (await shell(h, spec.machine_id, "test -e /marker"))[0] == 1
        assert "hello from aerodrome" in (await shell(h, spec.machine_id, "cat /www/index.html"))[1]

    async def test_recover_adopts_running_and_reports_exits_during_downtime(self, harness: Harness) -> None:
        h = harness
        with tempfile.TemporaryDirectory() as data:
            go, gone = Path(data) / "go", Path(data) / "exiting"
            script = "while ! test -e /data/go; do sleep 0.02; done; touch /data/exiting; exit 5"
            ending = h.spec(("sh", "-c", script), mounts=(VolumeMount(data, "/data"),))
            lasting = h.spec()
            for spec in (ending, lasting):
                await h.runtime.create(spec)
                await h.runtime.start(spec.machine_id)
            await h.runtime.close()  # the daemon goes away; its machines do not
            go.touch()
            await eventually(lambda: _exists(gone), "the machine to end")
            await asyncio.sleep(0.2)
            restarted = await h.reopen()
            exits = ExitLog(restarted)
            statuses = await restarted.recover()
            assert statuses[lasting.machine_id] == SandboxStatus.RUNNING
            info = await exits.wait(ending.machine_id)
            assert (info.exit_code, info.requested_stop) == (5, False)
            assert await restarted.status(ending.machine_id) == SandboxStatus.STOPPED
            stopped = await restarted.stop(lasting.machine_id, signal.SIGINT, WAIT)
            assert stopped.requested_stop and (await exits.wait(lasting.machine_id)).requested_stop
            assert exits.count(ending.machine_id) == 1

    async def test_destroy_leaves_nothing(self, harness: Harness) -> None:
        h = harness
        spec = h.spec()
        await h.runtime.create(spec)
        await h.runtime.start(spec.machine_id)
        await h.runtime.suspend(spec.machine_id)
        await h.runtime.destroy(spec.machine_id)
        assert await h.runtime.status(spec.machine_id) == SandboxStatus.ABSENT
        assert await h.leftovers(spec.machine_id) == []
        await h.runtime.destroy(spec.machine_id)  # idempotent


async def _succeeds(h: Harness, machine: str, script: str) -> bool:
    return (await shell(h, machine, script))[0] == 0


async def _exists(path: Path) -> bool:
    return _read(path) is not None


async def _changed(path: Path, before: str) -> bool:
    return _read(path) != before


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def _count_is(exits: ExitLog, machine: str, count: int) -> bool:
    return exits.count(machine) == count
