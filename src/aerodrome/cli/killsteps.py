"""The kill-at-step campaign: for each named step, the daemon is SIGKILLed there in the middle of the operation
that passes it, started again on the same data directory, and checked: what was acknowledged before is still
there, the resource settles, its version is the one the host runs, each exit is reported once, and once its
app is deleted nothing of it is left on the host (nor, at the end, any rule or route of the machines' pool)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

import httpx

from aerodrome.cli.daemon import Daemon, DaemonGone
from aerodrome.cli.hostile import run_hostile
from aerodrome.cli.killcases import Outcome, Report, Target, app_gone, check_case, operation_of, setup_case, trigger
from aerodrome.cli.probes import Api, ProbeError
from aerodrome.core import FAULT_STEPS

KILL_TIMEOUT = 60.0  # a step the operation does not reach within this is reported as not reached
WITNESS = "kill-witness"


class Campaign:
    def __init__(self, daemon: Daemon, steps: Iterable[str] | None = None) -> None:
        self.daemon = daemon
        self.steps = list(steps if steps is not None else FAULT_STEPS)
        self.report = Report()
        self.machine_ids: set[str] = set()  # every machine made, whose traces must all be gone at the end
        self._apis: list[Api] = []
        self._refusals: list[str] = []
        self._witness: list[tuple[str, str, Any]] = []  # (kind, id, what it was when acknowledged)

    def run(self, *, hostile: bool = False) -> Report:
        """Every step's case in turn; with `hostile`, the hostile inputs first, against a machine and a volume."""
        self.daemon.start()
        try:
            image = self.daemon.push_image("base")
            self._make_witness(image)
            if hostile:
                self._hostile(image)
            for index, step in enumerate(self.steps):
                self.report.outcomes.append(self._case(index, step, image))
            self._finish()
        except BaseException:
            # what the cases left (a case that raised, a daemon that did not come back) is destroyed, not
            # left running over the working directory
            self.daemon.clear()
            raise
        finally:
            self.daemon.kill()
        leaked = asyncio.run(self._leftovers(sorted(self.machine_ids), rules=True))
        self.report.leaked += leaked
        self.report.end_problems += [f"leaked: {item}" for item in leaked]
        self.report.requests = sum(a.requests for a in self._apis)
        self.report.operations = sum(a.operations for a in self._apis)
        self.report.server_errors = [e for a in self._apis for e in a.server_errors]
        return self.report

    def _api(self, client: httpx.Client, app: str) -> Api:
        api = Api(client, app)
        self._apis.append(api)
        return api

    # -- what every kill must leave alone

    def _make_witness(self, image: str) -> None:
        """A started and a stopped machine, a volume and its snapshot, all acknowledged before the first kill."""
        with self.daemon.client() as client:
            api = self._api(client, WITNESS)
            api.create_app()
            running, resting = api.create_machine(image), api.create_machine(image)
            api.wait(running, "started")
            api.wait(resting, "started")
            api.call("POST", f"{api.base}/machines/{resting}/stop")
            api.wait(resting, "stopped")
            volume = api.create_volume()
            snapshot = api.call("POST", f"{api.base}/volumes/{volume}/snapshots")
            for mid in (running, resting):
                machine = api.machine(mid) or {}
                self._witness.append(("machine", mid, (machine.get("state"), machine.get("instance_id"))))
            self._witness += [("volume", volume, 1), ("snapshot", volume, snapshot["id"])]

    def _lost(self, client: httpx.Client) -> list[str]:
        api = self._api(client, WITNESS)
        lost = []
        for kind, ident, then in self._witness:
            if kind == "machine":
                machine = api.machine(ident) or {}
                now: Any = (machine.get("state"), machine.get("instance_id"))
            elif kind == "volume":
                now = (api.volume(ident) or {}).get("size_gb")
            else:
                snapshots = api.call("GET", f"{api.base}/volumes/{ident}/snapshots")
                now = then if any(s["id"] == then for s in snapshots) else None
            if now != then:
                lost.append(f"{kind} {ident}: acknowledged as {then}, now {now}")
        self.report.lost += lost
        return lost

    # -- one step

    def _case(self, index: int, step: str, image: str) -> Outcome:
        op, outcome = operation_of(step), Outcome(step)
        app = f"kill-{index}-{step.replace('.', '-').replace('_', '-')}"[:60].rstrip("-")
        fresh = self.daemon.push_image(f"fresh-{index}", app) if op == "image.pull" else image
        try:
            with self.daemon.client() as client:
                target = Target(self._api(client, app), image)
                setup_case(op, target)
            self.daemon.stop()
            self.daemon.start(fault=step)
            self._trigger_in_background(op, target, fresh)
            outcome.killed = self.daemon.wait_killed(KILL_TIMEOUT) == -9 and self._died_at(step)
            if not outcome.killed:
                outcome.problems.append(f"the daemon was not killed at this step {self._refusals}")
                self.daemon.kill()
            self.daemon.start()
            with self.daemon.client() as client:
                target.api.client = client
                outcome.problems += self._lost(client)
                outcome.problems += check_case(op, target, fresh)
                outcome.problems += self._retire(target.api, target.mid)
        except (ProbeError, DaemonGone, httpx.HTTPError) as exc:
            outcome.problems.append(f"{type(exc).__name__}: {exc}")
            if not self.daemon.alive():
                self.daemon.start()
        return outcome

    def _trigger_in_background(self, op: str, target: Target, fresh: str) -> None:
        """Send the request the kill interrupts, without waiting for its answer: a connection the dead daemon
        accepted may stay open (a process it had just cloned holds it until the next daemon ends that process)."""
        client = self.daemon.client()
        target.api.client = client

        def send() -> None:
            with client:
                try:
                    trigger(op, target, fresh)
                except ProbeError as exc:  # refused before it reached the step
                    self._refusals.append(str(exc))
                except httpx.HTTPError:
                    pass  # the daemon died under it, as it should

        self._refusals.clear()
        threading.Thread(target=send, name=f"trigger {op}", daemon=True).start()

    def _died_at(self, step: str) -> bool:
        return f"killed at step {step}\n" in self.daemon.log_tail(20_000)

    def _retire(self, api: Api, known: str = "") -> list[str]:
        """Delete the case's app, then look for what is left of its machines on the host."""
        machines = api.machines() if api.call("GET", api.base, (200, 404)).get("error") is None else []
        ids = sorted({m["id"] for m in machines} | ({known} if known else set()))
        self.machine_ids.update(ids)
        api.call("DELETE", api.base, (202, 404))
        if not app_gone(api):
            return [f"app {api.app} was not deleted"]
        leaked = asyncio.run(self._leftovers(ids, rules=False))
        self.report.leaked += leaked
        return leaked

    def _hostile(self, image: str) -> None:
        with self.daemon.client() as client:
            api = self._api(client, "doctor-hostile")
            api.create_app()
            vid, mid = api.create_volume(), api.create_machine(image)
            api.wait(mid, "started")
            found = run_hostile(client, api.app, mid, vid, image)
            self.report.inputs += found.inputs
            self.report.hostile_failures += found.failures
            api.requests += found.requests
            self.report.end_problems += [f"leaked: {item}" for item in self._retire(api)]

    def _finish(self) -> None:
        """Delete the witness, stop the daemon as an operator would: then nothing of the campaign may remain."""
        with self.daemon.client() as client:
            self.report.end_problems += self._lost(client)
            self.report.end_problems += [f"leaked: {item}" for item in self._retire(self._api(client, WITNESS))]
        self.daemon.stop()

    async def _leftovers(self, machine_ids: list[str], *, rules: bool) -> list[str]:
        from aerodrome.runtime import host_leftovers  # the host's own view; imported only when it is needed

        data = self.daemon.data_dir
        pool = self.daemon.machine_pool if rules else None
        found = await host_leftovers(data, data / "runtime", machine_ids, pool4=pool)
        if rules:
            volumes = data / "volumes"
            found += [f"volume image {p}" for p in (volumes / "volumes").glob("*.img")]
            found += [f"volume mount {p}" for p in (volumes / "mounts").glob("*")]
            found += [f"snapshot {p}" for p in (volumes / "snapshots").glob("*.img")]  # their apps are gone
            found += [f"machine directory {p}" for p in (data / "runtime" / "machines").glob("*")]
        return found
