"""The kill-at-step campaign: for each named step, the daemon is SIGKILLed there in the middle of the operation
that passes it, started again on the same data directory, and checked: every acknowledged change is still
there, the resource settles, its version is the one the host runs, each exit is reported once; at the end,
with everything destroyed and the daemon stopped, nothing of it is left on the host."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from aerodrome.cli.daemon import Daemon, DaemonGone
from aerodrome.cli.probes import Api, ProbeError, check_machine
from aerodrome.core import FAULT_STEPS
from aerodrome.runtime import host_leftovers

KILL_TIMEOUT = 60.0


@dataclass
class Target:
    """What one case works on: its app, and the machine and volume its setup made."""

    api: Api
    image: str
    mid: str = ""
    vid: str = ""


@dataclass
class Outcome:
    step: str
    killed: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    operations: int = 0
    requests: int = 0
    leaked: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    @property
    def faults(self) -> int:
        return sum(o.killed for o in self.outcomes)

    @property
    def failures(self) -> list[str]:
        found = [f"{o.step}: {p}" for o in self.outcomes for p in o.problems]
        return found + [f"lost: {x}" for x in self.lost] + [f"leaked: {x}" for x in self.leaked] + self.server_errors


def operation_of(step: str) -> str:
    """The operation a case runs to reach `step`: the runtime's steps belong to the control plane's operations."""
    kind, action, _ = step.split(".")
    if kind == "runtime":
        return {"create": "machine.create", "start": "machine.start"}.get(action, "machine.stop")
    return f"{kind}.{action}"


# -- each operation: what is set up (acknowledged) first, the call the kill interrupts, and what is checked after


def _setup(op: str, t: Target) -> None:
    t.api.create_app()
    if op in ("machine.create", "machine.destroy", "app.delete") or op.startswith("volume."):
        t.vid = t.api.create_volume()
    if op in ("machine.start",):
        t.mid = t.api.create_machine(t.image, launch=False, MARK="one")
    elif op in ("machine.stop", "machine.suspend", "machine.update", "machine.destroy", "app.delete"):
        t.mid = t.api.create_machine(t.image, volume=t.vid or None, MARK="one")
        t.api.wait(t.mid, "started")


def _trigger(op: str, t: Target, fresh_image: str) -> None:
    api, base = t.api, f"{t.api.base}/machines/{t.mid}"
    calls: dict[str, Callable[[], object]] = {
        "image.pull": lambda: api.create_machine(fresh_image, launch=False),
        "machine.create": lambda: api.create_machine(t.image, volume=t.vid, MARK="one"),
        "machine.start": lambda: api.call("POST", f"{base}/start"),
        "machine.stop": lambda: api.call("POST", f"{base}/stop"),
        "machine.suspend": lambda: api.call("POST", f"{base}/suspend"),
        "machine.update": lambda: api.call(
            "POST", base, json={"config": {"image": t.image, "env": {"MARK": "two"}, "restart": {"policy": "no"}}}
        ),
        "machine.destroy": lambda: api.call("DELETE", base, params={"force": "true"}),
        "volume.create": api.create_volume,
        "volume.extend": lambda: api.call("PUT", f"{api.base}/volumes/{t.vid}/extend", json={"size_gb": 2}),
        "volume.snapshot": lambda: api.call("POST", f"{api.base}/volumes/{t.vid}/snapshots"),
        "app.delete": lambda: api.call("DELETE", api.base, (202,)),
    }
    calls[op]()


def _check(op: str, t: Target, fresh_image: str) -> list[str]:
    api = t.api
    if op == "app.delete":  # answered 202 before the kill: the deletion must complete
        return [] if _app_gone(api) else [f"app {api.app}: an accepted delete did not complete"]
    if op.startswith("volume."):
        return _check_volume(op, t)
    machines = api.machines()
    problems = [] if len(machines) <= 1 else [f"app {api.app}: {len(machines)} machines, expected at most one"]
    for machine in machines:
        problems += check_machine(api, machine["id"])
    if op == "machine.destroy":
        problems += _check_destroyed(t)
    elif op in ("machine.create", "image.pull") and not machines:  # never recorded: a retry must work
        mid = api.create_machine(fresh_image if op == "image.pull" else t.image, volume=t.vid or None)
        problems += check_machine(api, mid)
    if t.vid and op == "machine.create":
        problems += _check_attachment(t, machines[0]["id"] if machines else None)
    return problems


def _check_destroyed(t: Target) -> list[str]:
    machine = t.api.machine(t.mid)
    problems = [] if machine is None or machine["state"] == "destroyed" else [f"machine {t.mid}: not destroyed"]
    problems += _check_attachment(t, None)
    return problems


def _check_attachment(t: Target, holder: str | None) -> list[str]:
    volume = t.api.volume(t.vid)
    attached = volume.get("attached_machine_id") if volume else "(volume gone)"
    return [] if attached == holder else [f"volume {t.vid}: attached to {attached!r}, expected {holder!r}"]


def _check_volume(op: str, t: Target) -> list[str]:
    api = t.api
    volumes = api.volumes()
    expected = 2 if op == "volume.create" else 1
    if len(volumes) not in (expected - 1, expected):
        return [f"app {api.app}: {len(volumes)} volumes, expected {expected - 1} or {expected}"]
    if op == "volume.create" and len(volumes) == 1:
        api.create_volume()  # the unanswered create left nothing: a retry works
    elif op == "volume.extend" and (api.volume(t.vid) or {}).get("size_gb") != 2:
        api.call("PUT", f"{api.base}/volumes/{t.vid}/extend", json={"size_gb": 2})
    elif op == "volume.snapshot" and not api.call("GET", f"{api.base}/volumes/{t.vid}/snapshots"):
        api.call("POST", f"{api.base}/volumes/{t.vid}/snapshots")
    if op == "volume.extend" and (api.volume(t.vid) or {}).get("size_gb") != 2:
        return [f"volume {t.vid}: an extend to 2 did not hold"]
    return []


def _app_gone(api: Api, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.call("GET", api.base, (200, 404)).get("error") is not None:
            return True
        time.sleep(0.1)
    return False


# -- the campaign


class Campaign:
    def __init__(self, daemon: Daemon, steps: Iterable[str] | None = None) -> None:
        self.daemon = daemon
        self.steps = list(steps if steps is not None else FAULT_STEPS)
        self.report = Report()
        self.apps: list[str] = []
        self.machine_ids: set[str] = set()  # "app/id" of machines that must still exist
        self.seen_ids: set[str] = set()  # every machine made, for the leak check
        self.snapshot_ids: set[str] = set()
        self.prefixes6: set[str] = set()
        self._apis: list[Api] = []

    def run(self) -> Report:
        self.daemon.start()
        try:
            image = self.daemon.push_image("base")
            for index, step in enumerate(self.steps):
                self.report.outcomes.append(self._case(index, step, image))
            self._clean_up()
        finally:
            self.daemon.kill()
        self.report.leaked = asyncio.run(self._leftovers())
        self.report.requests = sum(a.requests for a in self._apis)
        self.report.server_errors = [e for a in self._apis for e in a.server_errors]
        return self.report

    def _api(self, client: httpx.Client, app: str) -> Api:
        api = Api(client, app)
        self._apis.append(api)
        return api

    def _case(self, index: int, step: str, image: str) -> Outcome:
        op, outcome = operation_of(step), Outcome(step)
        app = f"kill-{index}-{step.replace('.', '-').replace('_', '-')}"[:60].rstrip("-")
        self.apps.append(app)
        fresh = self.daemon.push_image(f"fresh-{index}", app) if op == "image.pull" else image
        try:
            with self.daemon.client() as client:
                target = Target(self._api(client, app), image)
                _setup(op, target)
                self.report.operations += 2
            self.daemon.stop()
            self.daemon.start(fault=step)
            with self.daemon.client() as client:
                target.api.client = client
                with contextlib.suppress(httpx.TransportError):
                    _trigger(op, target, fresh)
            outcome.killed = self.daemon.wait_killed(KILL_TIMEOUT) == -9 and self._died_at(step)
            if not outcome.killed:
                outcome.problems.append("the daemon was not killed at this step")
                self.daemon.kill()
            self.daemon.start()
            with self.daemon.client() as client:
                target.api.client = client
                outcome.problems += self._lost(client)
                outcome.problems += _check(op, target, fresh)
                self.report.operations += 2
                self._remember(target)
        except (ProbeError, DaemonGone, httpx.HTTPError) as exc:
            outcome.problems.append(f"{type(exc).__name__}: {exc}")
            if not self.daemon.alive():
                self.daemon.start()
        return outcome

    def _died_at(self, step: str) -> bool:
        return f"killed at step {step}\n" in self.daemon.log_tail(20_000)

    def _lost(self, client: httpx.Client) -> list[str]:
        """Every machine an earlier case left is still there (a kill in one operation loses nothing else)."""
        problems = []
        for entry in sorted(self.machine_ids):
            app, mid = entry.split("/")
            api = self._api(client, app)
            if api.machine(mid) is None:
                problems.append(f"machine {entry}, acknowledged earlier, was lost")
                self.report.lost.append(entry)
        return problems

    def _remember(self, target: Target) -> None:
        """What the case left that later cases must still find, and what the leak check looks for."""
        api = target.api
        self.seen_ids.update(filter(None, [target.mid]))
        if api.call("GET", api.base, (200, 404)).get("error") is not None:
            return  # deleted
        for machine in api.machines():
            self.seen_ids.add(machine["id"])
            self.machine_ids.add(f"{api.app}/{machine['id']}")
            with contextlib.suppress(ValueError, KeyError):
                self.prefixes6.add(str(ipaddress.IPv6Network(f"{machine['private_ip']}/64", strict=False)))
        for volume in api.volumes():
            snapshots = api.call("GET", f"{api.base}/volumes/{volume['id']}/snapshots")
            self.snapshot_ids.update(s["id"] for s in snapshots)

    def _clean_up(self) -> None:
        """Delete every app, wait until they are gone, then stop the daemon as an operator would."""
        with self.daemon.client() as client:
            for app in self.apps:
                client.delete(f"/v1/apps/{app}")
            for app in self.apps:
                if not _app_gone(self._api(client, app), timeout=180):
                    self.report.leaked.append(f"app {app} was not deleted")
        self.daemon.stop()

    async def _leftovers(self) -> list[str]:
        ids = sorted(self.seen_ids)
        data = self.daemon.data_dir
        found = await host_leftovers(data, data / "runtime", ids, self.daemon.machine_pool, sorted(self.prefixes6))
        volumes = data / "volumes"
        found += [f"volume image {p}" for p in (volumes / "volumes").glob("*.img")]
        found += [f"volume mount {p}" for p in (volumes / "mounts").glob("*")]
        found += [f"snapshot {p}" for p in (volumes / "snapshots").glob("*.img") if p.stem not in self.snapshot_ids]
        return found
