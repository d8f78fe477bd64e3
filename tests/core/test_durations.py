"""Go duration strings and signal names, as Fly's clients send them."""

from __future__ import annotations

import signal

import pytest

from aerodrome.core import InvalidArgumentError, parse_duration, parse_signal, signal_name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30m", 5400.0),
        ("1h0m0.5s", 3600.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("100ns", 100e-9),
        ("2m3s4ms", 123.004),
        ("  10s  ", 10.0),
        ("0", 0.0),
    ],
)
def test_go_duration_grammar(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["+1s", "1s ago", "1 s", "1S", "s1", "1ss", "1.2.3s", "1d", "\u0661s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"invalid restart\.timeout: time: invalid duration"):
        parse_duration(text, field="restart.timeout")


def test_numbers_are_nanoseconds_as_fly_go_encodes_time_duration() -> None:
    assert parse_duration(10_000_000_000) == 10.0
    assert parse_duration(1.5e9) == 1.5
    assert parse_duration(0) == 0.0
    with pytest.raises(InvalidArgumentError, match="must be between 0s and 86400s"):
        parse_duration(86_400_000_000_001)


def test_long_values_are_cut_short_in_the_error() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_duration(["x" * 1000])
    assert len(str(caught.value)) < 120 and str(caught.value).endswith("... is not a duration")


@pytest.mark.parametrize(
    ("value", "number"),
    [("SIGTERM", 15), ("TERM", 15), ("sigkill", 9), (" int ", 2), (15, 15), ("9", 9), (64, 64), ("SIGUSR1", 10)],
)
def test_signals_by_name_or_number(value: object, number: int) -> None:
    assert parse_signal(value) == number


@pytest.mark.parametrize("value", ["SIGNOPE", "", " ", 0, 65, -1, "0", "65", True, None, 1.5, ["SIGTERM"], "SIG"])
def test_signals_that_are_not(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid signal"):
        parse_signal(value)


def test_signal_names() -> None:
    assert signal_name(15) == "SIGTERM"
    assert signal_name(int(signal.SIGKILL)) == "SIGKILL"
    assert signal_name(40) == "40"  # a real-time signal has no name of its own


@pytest.mark.parametrize("value", [{"x" * 300_000: 1}, "SIG" + "X" * 300_000, "9" * 300_000])
def test_a_huge_invalid_value_is_not_echoed_whole(value: object) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        parse_signal(value)
    assert len(str(refused.value)) < 200 and str(refused.value).startswith("invalid signal: ")
    with pytest.raises(InvalidArgumentError) as refused:
        parse_duration(value, field="timeout")
    assert len(str(refused.value)) < 200
