"""The cases of the kill-at-step campaign, one per operation: what is set up (and acknowledged) first, the call
that the kill interrupts, and what must hold once the daemon is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aerodrome.cli.probes import Api, check_machine


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
    leaked: list[str] = field(default_factory=list)  # every leak found, in a step's outcome or at the end
    lost: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    inputs: int = 0  # hostile inputs sent
    hostile_failures: list[str] = field(default_factory=list)
    end_problems: list[str] = field(default_factory=list)  # found after the last step, of no step's doing

    @property
    def faults(self) -> int:
        return sum(o.killed for o in self.outcomes)

    @property
    def failures(self) -> list[str]:
        found = [f"{o.step}: {p}" for o in self.outcomes for p in o.problems] + self.end_problems
        return found + [f"5xx: {x}" for x in self.server_errors] + [f"input: {x}" for x in self.hostile_failures]


def operation_of(step: str) -> str:
    """The operation a case runs to reach `step`: the runtime's steps belong to the control plane's operations."""
    kind, action, _ = step.split(".")
    if kind == "runtime":
        return {"create": "machine.create", "start": "machine.start"}.get(action, "machine.stop")
    return f"{kind}.{action}"


# -- each operation: what is set up (acknowledged) first, the call the kill interrupts, and what is checked after


def setup_case(op: str, t: Target) -> None:
    t.api.create_app()
    if op in ("machine.create", "machine.destroy", "app.delete") or op.startswith("volume."):
        t.vid = t.api.create_volume()
    if op in ("machine.start",):
        t.mid = t.api.create_machine(t.image, launch=False, MARK="one")
    elif op in ("machine.stop", "machine.suspend", "machine.update", "machine.destroy", "app.delete"):
        t.mid = t.api.create_machine(t.image, volume=t.vid or None, MARK="one")
        t.api.wait(t.mid, "started")


def trigger(op: str, t: Target, fresh_image: str) -> None:
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


def check_case(op: str, t: Target, fresh_image: str) -> list[str]:
    api = t.api
    if op == "app.delete":  # answered 202 before the kill: the deletion must complete
        return [] if app_gone(api) else [f"app {api.app}: an accepted delete did not complete"]
    if op.startswith("volume."):
        return _check_volume(op, t)
    machines = api.machines()
    problems = [] if len(machines) <= 1 else [f"app {api.app}: {len(machines)} machines, expected at most one"]
    for machine in machines:
        problems += check_machine(api, machine["id"])
    if op == "machine.destroy":
        problems += _check_destroyed(t)
    if t.vid and op == "machine.create":  # the volume is held by the machine that was recorded, if any
        problems += _check_attachment(t, machines[0]["id"] if machines else None)
    if op in ("machine.create", "image.pull") and not machines:  # never recorded: a retry must work
        image = fresh_image if op == "image.pull" else t.image
        problems += check_machine(api, api.create_machine(image, volume=t.vid or None, launch=False))
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


def app_gone(api: Api, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.call("GET", api.base, (200, 404)).get("error") is not None:
            return True
        time.sleep(0.1)
    return False
