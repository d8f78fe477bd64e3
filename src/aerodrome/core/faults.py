"""The durable steps of every operation, by name, and a test-only hook that kills the daemon at one of them.

Each name is `<resource>.<operation>.<what is durable once it is passed>`: the step has committed a record (a
store transition, the runtime's record) or made a side effect on the host (a netns, a runc container, a volume
image, an unpacked image). A step runner can adopt the same names for its START/COMPLETE rows.

The host agent's operations are step sequences of their own (`aerodrome.agent.steps`): their steps are
`HOST_STEPS`, `agent.<operation>.<step>`, each killed right after it acted and before its COMPLETE is written.

`AERODROME_FAULT_KILL_AT=<step>[#n]` (a testing aid, never for production) makes the daemon send itself SIGKILL
when it passes `<step>` for the `n`-th time (the first by default), as a power cut or an OOM kill would.
Unset, `fault_point` costs one global lookup and a comparison.
"""

from __future__ import annotations

import os
import signal
import sys

FAULT_ENV = "AERODROME_FAULT_KILL_AT"

#: Every step, in the order an operation passes them, with what a kill right after it leaves behind.
FAULT_STEPS: dict[str, str] = {
    "image.pull.fetched": "the image is in the local OCI layout, not unpacked",
    "image.pull.unpacked": "the image rootfs is unpacked, its metadata not yet written",
    "image.pull.recorded": "the image's metadata is written: the image is usable",
    "machine.create.volumes_attached": "the machine's volumes are reserved and mounted, nothing else of it exists",
    "runtime.create.network_allocated": "the machine's directory and addresses exist, its record does not",
    "machine.create.runtime_created": "the host holds the machine's record, the database does not",
    "machine.create.recorded": "the machine is in the database, `created`, not yet answered",
    "machine.start.starting": "the database says `starting`, nothing runs",
    "runtime.start.rootfs_mounted": "the machine's scratch and overlay rootfs are mounted",
    "runtime.start.netns_created": "the machine's network namespace exists",
    "runtime.start.runc_created": "the runc container exists, held back before its program",
    "runtime.start.released": "the machine's program runs with its network",
    "runtime.start.pool_holder_cloned": "the holder of a slot made for the pool after the start runs, unrecorded",
    "machine.start.runtime_started": "the machine runs; the database still says `starting`",
    "machine.start.recorded": "the database says `started`",
    "machine.stop.stopping": "the database says `stopping`, the machine still runs",
    "runtime.stop.signalled": "the machine's init has the stop signal",
    "runtime.exit.recorded": "the exit is in the machine's exit record, the run not torn down",
    "runtime.exit.torn_down": "the run's container, mounts and network are gone, the exit not yet reported",
    "machine.stop.runtime_stopped": "the machine no longer runs; the database still says `stopping`",
    "machine.stop.recorded": "the database says `stopped`",
    "machine.suspend.suspending": "the database says `suspending`, the machine still runs",
    "machine.suspend.runtime_frozen": "the machine is frozen; the database still says `suspending`",
    "machine.suspend.recorded": "the database says `suspended`",
    "machine.update.replacing": "the database says `replacing` and names the new version; the host holds the old one",
    "machine.update.runtime_stopped": "the old version no longer runs",
    "machine.update.runtime_created": "the host and the database hold the new version; the database says `replacing`",
    "machine.update.recorded": "the database holds the new version, at rest",
    "machine.destroy.destroying": "the database says `destroying`, the machine is still on the host",
    "machine.destroy.runtime_destroyed": "the host holds nothing of the machine; its volumes are still attached",
    "machine.destroy.volumes_released": "the machine's volumes are detached",
    "machine.destroy.recorded": "the database says `destroyed`",
    "volume.create.image_built": "the volume's image exists, the database does not know it",
    "volume.create.recorded": "the volume is in the database, not yet answered",
    "volume.extend.resized": "the volume's image is larger, the database has the old size",
    "volume.extend.recorded": "the database has the new size",
    "volume.snapshot.copied": "the snapshot's file exists, the database does not know it",
    "volume.snapshot.recorded": "the snapshot is in the database",
    "app.delete.marked": "the app is marked `destroying`, everything of it still exists",
    "app.delete.machines_destroyed": "the app's machines are destroyed, its volumes remain",
    "app.delete.volumes_deleted": "the app's volumes are deleted, its addresses remain",
    "app.delete.recorded": "the app is gone from the database",
}

#: The host agent's operations and their steps, in order (`aerodrome.agent.operations` runs them).
HOST_STEPS: dict[str, str] = {
    "agent.prepare.pull_image": "the version's image is on the host, nothing of the version is made",
    "agent.prepare.attach_volumes": "the version's volumes are attached in the journal and mounted",
    "agent.prepare.make_sandbox": "the host's record holds the new version",
    "agent.prepare.detach_unused": "the volumes the version no longer mounts are detached",
    "agent.start.check_version": "the host holds the version asked for, and it does not run",
    "agent.start.grow_volumes": "volumes grown while mounted are remounted at their new size",
    "agent.start.run_sandbox": "the machine runs (or is thawed)",
    "agent.stop.check_running": "the machine is known to run or not",
    "agent.stop.stop_sandbox": "the machine no longer runs, its exit is recorded",
    "agent.suspend.freeze": "the machine is frozen",
    "agent.destroy.remove_sandbox": "nothing of the machine is on the host but its volumes' attachments",
    "agent.destroy.detach_volumes": "the machine's volumes are detached",
    "agent.create_volume.check_absent": "the volume is known not to exist",
    "agent.create_volume.build_image": "the volume's image exists",
    "agent.extend_volume.resize": "the volume's image has its new size",
    "agent.snapshot_volume.copy_volume": "the snapshot's file exists",
    "agent.delete_volume.check_detached": "the volume is known to be attached to no machine",
    "agent.delete_volume.remove_image": "the volume's image is gone",
    "agent.delete_snapshot.remove_snapshot": "the snapshot's file is gone",
}


def parse_target(value: str | None) -> tuple[str, int] | None:
    """`step` or `step#n` as (step, n); None when unset. A name that is not a step is a ValueError."""
    if not value:
        return None
    step, _, count = value.partition("#")
    if step not in FAULT_STEPS and step not in HOST_STEPS:
        raise ValueError(f"{FAULT_ENV}: unknown step {step!r}")
    n = int(count) if count else 1
    if n < 1:
        raise ValueError(f"{FAULT_ENV}: the count must be at least 1")
    return step, n


_target = parse_target(os.environ.get(FAULT_ENV))
_passed = 0


def fault_point(step: str) -> None:
    """Mark that `step` is durable; the daemon dies here when told to (see the module's docstring)."""
    if _target is None or _target[0] != step:
        return
    _passed_once(step)


def _passed_once(step: str) -> None:
    global _passed
    _passed += 1
    assert _target is not None
    if _passed == _target[1]:
        sys.stderr.write(f"aerodrome: fault injection: killed at step {step}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
