"""Each operation of the host agent as its named steps, for the step runner (`aerodrome.agent.steps`).

Every step is idempotent: re-run after a crash that came after it acted and before its COMPLETE was written, it
finds its work done (or half-done) and finishes it. A check that refuses a request (a machine that runs, a
volume still attached) is a step of its own, first, so that a resumed operation never refuses the work it
began. What later steps need of earlier ones (the image's digest, whether the machine is new) travels in the
operation's state, written with each COMPLETE.

    prepare          pull_image, attach_volumes, make_sandbox, detach_unused   (undo: detach a new machine's)
    start            check_version, grow_volumes, run_sandbox
    stop             check_running, stop_sandbox
    suspend          freeze
    destroy          remove_sandbox, detach_volumes
    create_volume    check_absent, build_image
    extend_volume    resize
    snapshot_volume  copy_volume
    delete_volume    check_detached, remove_image
    delete_snapshot  remove_snapshot
"""

from __future__ import annotations

import json
import logging

from aerodrome.agent import wire
from aerodrome.agent.journal import Journal, exit_to_json
from aerodrome.agent.specs import pinned, sandbox_spec
from aerodrome.agent.steps import JSON, Plan, State, Step
from aerodrome.core import (
    AerodromeError,
    AlreadyExistsError,
    FailedPreconditionError,
    ImageInfo,
    MachineVersionSpec,
    NotFoundError,
    SandboxStatus,
    VolumeMount,
)
from aerodrome.runtime import LoopVolumeBackend, RuncRuntime

log = logging.getLogger("aerodrome.agent")

#: Every operation's steps, in order: the names its START/COMPLETE rows and fault points carry.
OPERATION_STEPS: dict[str, tuple[str, ...]] = {
    "prepare": ("pull_image", "attach_volumes", "make_sandbox", "detach_unused"),
    "start": ("check_version", "grow_volumes", "run_sandbox"),
    "stop": ("check_running", "stop_sandbox"),
    "suspend": ("freeze",),
    "destroy": ("remove_sandbox", "detach_volumes"),
    "create_volume": ("check_absent", "build_image"),
    "extend_volume": ("resize",),
    "snapshot_volume": ("copy_volume",),
    "delete_volume": ("check_detached", "remove_image"),
    "delete_snapshot": ("remove_snapshot",),
}


def resource_of(kind: str, args: JSON) -> str:
    """The machine or volume an operation acts on: its operations run in order after a resume."""
    if kind == "prepare":
        return f"machine:{args['spec']['machine_id']}"
    for name in ("machine_id", "volume_id", "snapshot_id"):
        if name in args:
            return f"{name}:{args[name]}"
    return kind


def spec_args(spec: MachineVersionSpec) -> JSON:
    return {"spec": json.loads(wire.encode(wire.Reply[MachineVersionSpec](value=spec)))["value"]}


def spec_of(args: JSON) -> MachineVersionSpec:
    body = json.dumps({"value": args["spec"]}).encode()
    return wire.decode(wire.Reply[MachineVersionSpec], body).value


class HostOperations:
    """The plans of one host's operations, over its runtime, volumes and journal."""

    def __init__(
        self, runtime: RuncRuntime, volumes: LoopVolumeBackend, journal: Journal, grow_pending: set[str]
    ) -> None:
        self.runtime = runtime
        self.volumes = volumes
        self.journal = journal
        # volumes grown while mounted whose filesystem grows at the next mount (shared with the agent)
        self.grow_pending = grow_pending

    def plan(self, kind: str, args: JSON) -> Plan:
        build = getattr(self, f"_{kind}", None)
        if kind not in OPERATION_STEPS or build is None:
            raise ValueError(f"unknown operation {kind!r}")
        plan: Plan = build(args)
        assert tuple(s.name for s in plan.steps) == OPERATION_STEPS[kind], kind
        return plan

    # machines

    def _prepare(self, args: JSON) -> Plan:
        spec = spec_of(args)
        machine_id = spec.machine_id
        wanted = [m.volume_id for m in spec.mounts]

        async def pull_image(state: State) -> None:
            image = await self._image(spec)
            state.update(digest=image.digest, image_ref=dict(image.image_ref))
            state.setdefault("new", self.runtime.version_of(machine_id) == "")

        async def attach_volumes(state: State) -> None:
            before = (await self.journal.attached(machine_id)).get(machine_id, [])
            state.setdefault("before", before)
            await self.journal.attach(machine_id, sorted(set(before) | set(wanted)))  # before any mount
            for volume_id in wanted:
                await self.volumes.mount(volume_id)

        async def make_sandbox(state: State) -> None:
            image = self.runtime.images.get(state["digest"]) or await self._image(spec)
            mounts = tuple([VolumeMount(await self.volumes.mount(m.volume_id), m.guest_path) for m in spec.mounts])
            containers = {c.name: await self.runtime.pull_image(c.image, spec.grant) for c in spec.containers}
            info = await self.runtime.create(sandbox_spec(spec, image, mounts, containers))
            state.update(private_ip=info.private_ip, private_ipv4=info.private_ipv4)

        async def detach_unused(state: State) -> None:
            for volume_id in set(state["before"]) - set(wanted):  # no longer the version's
                await self._detach(machine_id, volume_id)

        async def undo(state: State) -> None:
            if state.get("new", self.runtime.version_of(machine_id) == ""):  # a machine never made holds no volume
                await self._detach_all(machine_id)

        def result(state: State) -> JSON:
            keys = ("image_ref", "private_ip", "private_ipv4")
            return {"version": spec.version, **{k: state[k] for k in keys}}

        steps = (
            Step("pull_image", pull_image),
            Step("attach_volumes", attach_volumes),
            Step("make_sandbox", make_sandbox),
            Step("detach_unused", detach_unused),
        )
        return Plan(steps, result=result, undo=undo)

    async def _image(self, spec: MachineVersionSpec) -> ImageInfo:
        """The version's image: by digest when this host has it, else pulled (pinned to the digest if known)."""
        if spec.image_digest:
            cached = self.runtime.images.get(spec.image_digest)
            if cached is not None:
                return cached
        return await self.runtime.pull_image(pinned(spec.image, spec.image_digest), spec.grant)

    def _start(self, args: JSON) -> Plan:
        machine_id, version = args["machine_id"], args["version"]

        async def check_version(state: State) -> None:
            status = await self.runtime.status(machine_id)
            state["resume"] = status is SandboxStatus.PAUSED
            held = self.runtime.version_of(machine_id)
            if not state["resume"] and version and held and held != version:
                raise FailedPreconditionError(f"machine {machine_id} holds version {held} on this host, not {version}")
            if status is SandboxStatus.RUNNING:
                raise FailedPreconditionError(f"machine {machine_id} is already running")

        async def grow_volumes(state: State) -> None:
            if not state["resume"]:
                await self._grow_before_start(machine_id)

        async def run_sandbox(state: State) -> None:
            status = await self.runtime.status(machine_id)
            if status is SandboxStatus.PAUSED:
                await self.runtime.resume(machine_id)
            elif status is not SandboxStatus.RUNNING:  # running: this step started it before the agent died
                await self.runtime.start(machine_id)

        return Plan(
            (Step("check_version", check_version), Step("grow_volumes", grow_volumes), Step("run_sandbox", run_sandbox))
        )

    def _stop(self, args: JSON) -> Plan:
        machine_id, signal, timeout = args["machine_id"], int(args["signal"]), float(args["timeout"])

        async def check_running(state: State) -> None:
            status = await self.runtime.status(machine_id)
            if status is SandboxStatus.ABSENT:
                raise NotFoundError(f"machine {machine_id} not found on this host")
            state["ran"] = status in (SandboxStatus.RUNNING, SandboxStatus.PAUSED)

        async def stop_sandbox(state: State) -> None:
            if not state["ran"]:
                state["exit"] = None
                return
            if await self.runtime.status(machine_id) is SandboxStatus.PAUSED:
                await self.runtime.resume(machine_id)  # a frozen process cannot handle its signal
            # the exit of this run; when it ended while the agent was down, the one recorded since
            state["exit"] = exit_to_json(await self.runtime.stop(machine_id, signal, timeout))

        steps = (Step("check_running", check_running), Step("stop_sandbox", stop_sandbox))
        return Plan(steps, result=lambda state: state["exit"])

    def _suspend(self, args: JSON) -> Plan:
        machine_id = args["machine_id"]

        async def freeze(_: State) -> None:
            await self.runtime.suspend(machine_id)

        return Plan((Step("freeze", freeze),))

    def _destroy(self, args: JSON) -> Plan:
        machine_id = args["machine_id"]

        async def remove_sandbox(_: State) -> None:
            await self.runtime.destroy(machine_id)

        async def detach_volumes(_: State) -> None:
            await self._detach_all(machine_id)

        return Plan((Step("remove_sandbox", remove_sandbox), Step("detach_volumes", detach_volumes)))

    # volumes

    def _create_volume(self, args: JSON) -> Plan:
        volume_id = args["volume_id"]

        async def check_absent(_: State) -> None:
            if volume_id in (await self.volumes.stored())[0]:  # the backend's own create is idempotent; a key is
                raise AlreadyExistsError(f"volume {volume_id} already exists on this host")

        async def build_image(_: State) -> None:
            await self.volumes.create(
                volume_id,
                int(args["size_bytes"]),
                args["fstype"],
                from_snapshot=args.get("from_snapshot"),
                from_volume=args.get("from_volume"),
            )

        return Plan((Step("check_absent", check_absent), Step("build_image", build_image)))

    def _extend_volume(self, args: JSON) -> Plan:
        volume_id = args["volume_id"]

        async def resize(state: State) -> None:
            state["online"] = await self.volumes.extend(volume_id, int(args["size_bytes"]))
            if not state["online"] and await self.volumes.grows_at_mount(volume_id):
                self.grow_pending.add(volume_id)

        return Plan((Step("resize", resize),), result=lambda state: bool(state["online"]))

    def _snapshot_volume(self, args: JSON) -> Plan:
        async def copy_volume(state: State) -> None:
            info = await self.volumes.snapshot(args["volume_id"], args["snapshot_id"])
            state["snapshot"] = {"size": info.size, "digest": info.digest}

        return Plan((Step("copy_volume", copy_volume),), result=lambda state: state["snapshot"])

    def _delete_volume(self, args: JSON) -> Plan:
        volume_id = args["volume_id"]

        async def check_detached(_: State) -> None:
            holders = [m for m, held in (await self.journal.attached()).items() if volume_id in held]
            if holders:
                raise FailedPreconditionError(f"volume {volume_id} is attached to machine {holders[0]}")

        async def remove_image(_: State) -> None:
            await self.volumes.delete(volume_id)
            self.grow_pending.discard(volume_id)

        return Plan((Step("check_detached", check_detached), Step("remove_image", remove_image)))

    def _delete_snapshot(self, args: JSON) -> Plan:
        async def remove_snapshot(_: State) -> None:
            await self.volumes.delete_snapshot(args["snapshot_id"])

        return Plan((Step("remove_snapshot", remove_snapshot),))

    # attached volumes on this host

    async def _detach(self, machine_id: str, volume_id: str) -> None:
        await self.volumes.unmount(volume_id)
        await self.journal.detach(machine_id, volume_id)

    async def _detach_all(self, machine_id: str) -> None:
        for volume_id in (await self.journal.attached(machine_id)).get(machine_id, []):
            await self._detach(machine_id, volume_id)

    async def find_pending_grows(self) -> None:
        for volume_ids in (await self.journal.attached()).values():
            for volume_id in volume_ids:
                try:
                    if await self.volumes.grows_at_mount(volume_id):
                        self.grow_pending.add(volume_id)
                except AerodromeError as exc:
                    log.warning("could not read the size of volume %s: %s", volume_id, exc)

    async def _grow_before_start(self, machine_id: str) -> None:
        """Remount (and so grow) a stopped machine's volumes that were extended while it was using them."""
        if not self.grow_pending:
            return  # the common case: no query on the start path
        for volume_id in (await self.journal.attached(machine_id)).get(machine_id, []):
            if volume_id not in self.grow_pending:
                continue
            try:
                await self.volumes.unmount(volume_id)
                await self.volumes.mount(volume_id)
            except AerodromeError as exc:
                # The start goes on with the old size; the next start tries again.
                log.warning("volume %s did not grow before its machine started: %s", volume_id, exc)
                await self.volumes.mount(volume_id)
                continue
            self.grow_pending.discard(volume_id)
