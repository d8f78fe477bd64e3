"""Cutting a machine's output into lines, and aerodrome's own lines about its events (no I/O)."""

from __future__ import annotations

from aerodrome.core import Machine, MachineEvent, MachineState, event_log_line, split_output


def test_complete_lines_are_taken_and_an_unfinished_one_waits() -> None:
    assert split_output(b"a\nb\r\nc") == (["a", "b"], 5)
    assert split_output(b"a\nc", final=True) == (["a", "c"], 3)
    assert split_output(b"\xff\n") == (["\ufffd"], 2)


def test_a_line_without_newline_is_cut_at_the_bound() -> None:
    lines, used = split_output(b"x" * 25, max_line=10)
    assert lines == ["x" * 10, "x" * 10] and used == 20
    lines, used = split_output(b"x" * 10 + b"\n", max_line=10)
    assert (lines, used) == (["x" * 10], 11)  # no empty line after a line of exactly the bound


def _machine() -> Machine:
    return Machine("m1", "app", "n", "iad", MachineState.STOPPED, "i", {}, "", {}, "", "")


def _event(kind: str, status: str, **exit_event: object) -> MachineEvent:
    return MachineEvent("e", "m1", kind, status, "flyd", 1_700_000_000_000, {"exit_event": exit_event})


def test_events_become_runner_lines() -> None:
    oom = event_log_line(_machine(), _event("exit", "stopped", exit_code=137, oom_killed=True))
    assert oom is not None and oom.level == "error" and "out of memory" in oom.message
    assert oom.provider == "runner" and oom.timestamp_us == 1_700_000_000_000_000
    restarting = event_log_line(_machine(), _event("exit", "starting", exit_code=1, restarting=True))
    assert restarting is not None and "exited with code 1; restarting" in restarting.message
    started = event_log_line(_machine(), _event("start", "started"))
    assert started is not None and started.message == "machine started"
    assert event_log_line(_machine(), _event("cordon", "started")) is None
