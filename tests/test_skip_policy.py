"""Under CI=1 a skip fails the run, unless the host's kernel is its reason."""

from __future__ import annotations

import pytest

INNER = """
import pytest
from tests.support.skips import skip_by_host

def test_missing_tool():
    pytest.skip("gcc is not installed")

def test_kernel_withholds():
    skip_by_host("online ext4 resize needs CAP_SYS_RESOURCE")

@pytest.mark.skipif(True, reason="needs root")
def test_marked():
    pass

def test_passes():
    assert True
"""


def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str) -> pytest.RunResult:
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_inner=INNER)
    return pytester.runpytest_inprocess("-p", "tests.support.skips")


def test_under_ci_a_skip_for_a_tool_or_root_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_inner(pytester, monkeypatch, "1")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)  # a setup-time skip becomes an error
    result.stdout.fnmatch_lines(["*skipped under CI=1*gcc is not installed*"])


def test_outside_ci_skips_stay_skips(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run_inner(pytester, monkeypatch, "").assert_outcomes(passed=1, skipped=3)
