"""The daemon raises its soft limit on open files to the hard one: it holds a descriptor per running machine."""

from __future__ import annotations

import resource
import subprocess
import sys

CHILD = """
import resource
from aerodrome.cli.config import raise_fd_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
assert soft == 256, soft
print(raise_fd_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def _lowered() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_a_low_soft_limit_is_raised_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    shown = subprocess.run(
        [sys.executable, "-c", CHILD], preexec_fn=_lowered, capture_output=True, text=True, check=True
    ).stdout.split()
    expected = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    assert [int(value) for value in shown] == [expected, expected, hard]
