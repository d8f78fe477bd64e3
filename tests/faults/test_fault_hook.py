"""The fault hook itself: every step named in the code is registered once, and the hook kills at the n-th pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aerodrome.core import FAULT_ENV, FAULT_STEPS, parse_target

SOURCE = Path(__file__).resolve().parents[2] / "src" / "aerodrome"
POINT = re.compile(r'fault_point\("([a-z_.]+)"\)')


def test_every_fault_point_is_a_registered_step_and_every_step_is_in_the_code_once() -> None:
    found: list[str] = []
    for path in SOURCE.rglob("*.py"):
        found += POINT.findall(path.read_text())
    assert sorted(found) == sorted(FAULT_STEPS)
    for step in FAULT_STEPS:  # <resource>.<operation>.<what is durable>, as a step runner would name them
        assert re.fullmatch(r"[a-z]+\.[a-z]+\.[a-z_]+", step), step


def test_targets_parse_with_an_optional_count() -> None:
    assert parse_target(None) is None and parse_target("") is None
    assert parse_target("machine.start.recorded") == ("machine.start.recorded", 1)
    assert parse_target("machine.start.recorded#3") == ("machine.start.recorded", 3)
    for bad in ("machine.start.nowhere", "machine.start.recorded#0", "machine.start.recorded#x"):
        with pytest.raises(ValueError):
            parse_target(bad)


PROGRAM = """
from aerodrome.core import fault_point
for n in range(1, 4):
    fault_point("volume.extend.resized")
    print(n, flush=True)
"""


@pytest.mark.parametrize(("target", "printed"), [("volume.extend.resized", ""), ("volume.extend.resized#3", "1\n2\n")])
def test_the_process_is_sigkilled_at_the_nth_pass(target: str, printed: str) -> None:
    env = {**os.environ, FAULT_ENV: target}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    assert done.stdout == printed
    assert "killed at step volume.extend.resized" in done.stderr


def test_unset_or_another_step_changes_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    for extra in ({}, {FAULT_ENV: "app.delete.recorded"}):
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM], env={**env, **extra}, capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, "1\n2\n3\n")
