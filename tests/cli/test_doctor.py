"""`aerodrome doctor --quick`, for real: it starts its own daemon, kills it at one step of each operation, sends it
hostile inputs, and reports lost = leaked = 5xx = 0 (or fails with what went wrong)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from aerodrome.cli.doctor import QUICK_STEPS
from tests.support.commands import run_command

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs root and runc"),
]


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return run_command([sys.executable, "-m", "aerodrome", "doctor", *args], timeout=900)


def test_quick_doctor_reports_no_loss_no_leak_no_5xx() -> None:
    done = doctor("--quick", "--json")
    figures = json.loads(done.stdout)
    assert figures["failures"] == [], done.stderr[-3000:]
    assert done.returncode == 0
    assert figures["ok"] is True
    assert figures["steps"] == figures["faults_injected"] == len(QUICK_STEPS)
    assert figures["lost"] == figures["leaked"] == figures["server_errors"] == 0
    assert figures["hostile_inputs"] >= 50
    assert figures["operations"] > figures["faults_injected"]
    assert figures["requests"] > figures["hostile_inputs"]


def test_unknown_steps_are_refused_before_anything_starts() -> None:
    done = doctor("--steps", "machine.start.nowhere")
    assert done.returncode == 2
    assert "unknown steps machine.start.nowhere" in done.stderr
