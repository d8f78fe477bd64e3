"""A command of ours run to its end, or told to stop (SIGTERM) at its deadline, never killed there."""

from __future__ import annotations

import subprocess


def run_command(argv: list[str], timeout: float, grace: float = 240) -> subprocess.CompletedProcess[str]:
    """Run `argv`, capturing its output; past `timeout` it gets SIGTERM, so that it destroys what it made
    (`doctor` and `bench` clean up on SIGTERM), and the test fails. A SIGKILL would leave its daemon's machines."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            stdout, stderr = process.communicate(timeout=grace)
            raise AssertionError(f"{' '.join(argv[2:4])} did not finish in {timeout:g}s:\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
