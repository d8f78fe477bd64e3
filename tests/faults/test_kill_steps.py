"""SIGKILL of the daemon at the durable steps of every operation, for real: a fresh `aerodrome serve` is killed at
each step (AERODROME_FAULT_KILL_AT) in the middle of the operation that passes it, started again on the same data
directory, and checked through the API and on the host: what was acknowledged before is there, the machine or
volume settles, the version the database names is the one the host runs, each exit is reported once, and once
the app is deleted nothing of it is left (netns, veth, mounts, loop devices, cgroups, runc state, rules, routes,
machine directories, volume and snapshot files).

The suite kills at the steps below (`aerodrome doctor --quick`, tested in tests/cli/test_doctor.py, kills at one
step of each operation besides); AERODROME_FAULTS_EXHAUSTIVE=1 kills at every step, which takes several times
longer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aerodrome.cli.daemon import Daemon
from aerodrome.cli.doctor import QUICK_STEPS
from aerodrome.cli.killcases import Outcome, Report
from aerodrome.cli.killsteps import Campaign
from aerodrome.core import FAULT_STEPS

EXHAUSTIVE = os.environ.get("AERODROME_FAULTS_EXHAUSTIVE") == "1"
STEPS = (
    "machine.create.volumes_attached",
    "machine.create.recorded",
    "machine.start.starting",
    "runtime.start.netns_created",
    "machine.start.recorded",
    "runtime.stop.signalled",
    "runtime.exit.torn_down",
    "machine.stop.runtime_stopped",
    "machine.suspend.suspending",
    "machine.update.replacing",
    "machine.update.runtime_stopped",
    "machine.destroy.destroying",
    "volume.snapshot.recorded",
    "app.delete.marked",
)
CHOSEN = tuple(FAULT_STEPS) if EXHAUSTIVE else STEPS

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(3600 if EXHAUSTIVE else 1200),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc to run aerodrome serve"
    ),
]


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    daemon = Daemon(Path(tempfile.mkdtemp(prefix="aerodrome-kill-steps-")))
    try:
        yield Campaign(daemon, CHOSEN).run()
    finally:
        left = daemon.remove(daemon.machine_ids())  # a leak stays in place, to be seen: nothing removed under a mount
        assert left == [], f"the campaign left on the host: {left}"


def _outcome(report: Report, step: str) -> Outcome:
    return next(o for o in report.outcomes if o.step == step)


def test_the_suite_and_doctor_together_cover_every_operation() -> None:
    operations = {step.split(".")[1] for step in (*STEPS, *QUICK_STEPS)}
    assert operations == {step.split(".")[1] for step in FAULT_STEPS}


@pytest.mark.parametrize("step", CHOSEN)
def test_a_kill_at_the_step_loses_nothing_and_settles(report: Report, step: str) -> None:
    outcome = _outcome(report, step)
    assert outcome.killed, f"the daemon was not killed at {step}: {outcome.problems}"
    assert outcome.problems == []


def test_nothing_acknowledged_was_lost_nor_left_on_the_host(report: Report) -> None:
    assert report.lost == []
    assert report.leaked == []
    assert report.end_problems == []
    assert report.server_errors == []
    assert report.faults == len(CHOSEN)
