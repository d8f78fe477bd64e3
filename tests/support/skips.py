"""Skips that prove nothing must not pass quietly where everything is installed.

Under `CI=1` a skipped test fails, unless it was skipped by `skip_by_host`: a difference of the host's kernel or
capabilities that no installation can change (online ext4 resize without CAP_SYS_RESOURCE, say), where the
other branch of the same behaviour is then tested instead, or by a reason starting `covered: `, for a test
that repeats what this run already did another way. A missing tool, root, or network is never such a
reason: CI installs and has them.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

HOST_PREFIX = "host: "
COVERED_PREFIX = "covered: "  # the same tests already ran in this run, another way


def strict() -> bool:
    return os.environ.get("CI", "") not in ("", "0", "false")


def skip_by_host(reason: str) -> NoReturn:
    """Skip because of what this host's kernel allows; the other branch of the behaviour is tested instead."""
    pytest.skip(HOST_PREFIX + reason)


def allowed_in_ci(reason: str) -> bool:
    return reason.startswith((HOST_PREFIX, COVERED_PREFIX))


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped report gives: pytest keeps it as (path, line, 'Skipped: reason')."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not strict() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if allowed_in_ci(reason):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=1, where everything the tests need is installed: {reason}"
