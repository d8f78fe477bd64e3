"""Parsing of request input, without I/O: JSON as Go reads it, durations, bounded numbers and strings."""

from __future__ import annotations

import math

import pytest

from aerodrome.core import (
    MAX_DURATION,
    InvalidArgumentError,
    normalize_config,
    parse_bool,
    parse_duration,
    parse_int,
    parse_json,
    parse_string_map,
    parse_text,
)
from aerodrome.core.parsing import MAX_DEPTH


def refused(match: str) -> pytest.RaisesContext[InvalidArgumentError]:
    return pytest.raises(InvalidArgumentError, match=match)


# JSON


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_refuses_non_finite_constants_and_names_the_field(constant: str) -> None:
    with refused(rf"invalid ttl: {constant} is not a finite number"):
        parse_json(f'{{"ttl": {constant}}}')
    with refused(rf"invalid config\.services\[1\]\.internal_port: {constant}"):
        parse_json(f'{{"config": {{"services": [{{}}, {{"internal_port": {constant}}}]}}}}')


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" * 400 + ".0"])
def test_json_refuses_numbers_that_overflow_to_infinity(number: str) -> None:
    with refused(r"invalid lease_ttl: .* is not a finite number"):
        parse_json(f'{{"lease_ttl": {number}}}')


def test_json_at_top_level_names_the_body() -> None:
    with refused("invalid JSON body: NaN is not a finite number"):
        parse_json("NaN")


def test_json_keeps_finite_numbers_and_big_integers() -> None:
    assert parse_json('{"a": 1.5, "b": 1e300, "c": 123456789012345678901234567890}') == {
        "a": 1.5,
        "b": 1e300,
        "c": 123456789012345678901234567890,
    }


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_refuses_deep_nesting_without_recursing(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    for depth in (MAX_DEPTH + 1, 10_000, 200_000):
        with refused("nested deeper than 64 levels"):
            parse_json(opening * depth + "1" + closing * depth)
    assert parse_json(opening * MAX_DEPTH + "1" + closing * MAX_DEPTH)


def test_json_refuses_malformed_text() -> None:
    with refused("invalid JSON body: Expecting"):
        parse_json("{")
    with refused("invalid JSON body"):
        parse_json(b'{"a": "\xff"}')
    with refused("invalid JSON body"):
        parse_json("1" * 5000)  # more digits than Python converts


# durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("0s", 0.0), ("30", 30.0), (2_000_000_000, 2.0)],
)
def test_durations_as_fly_go_sends_them(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e30, -1, "25h", "9" * 60 + "s", 10**40])
def test_durations_outside_zero_to_a_day_are_refused(value: object) -> None:
    with refused("invalid stop timeout: .* must be between 0s and 86400s"):
        parse_duration(value, field="stop timeout")


@pytest.mark.parametrize("value", ["abc", "-1s", "10", "1x", "s", "", " ", "٣s", True, None, [], {}, "1s" * 100])
def test_durations_that_are_not_durations(value: object) -> None:
    if value == "10":
        assert parse_duration(value) == 10.0  # bare seconds, as in `?timeout=10`
        return
    with refused("invalid timeout"):
        parse_duration(value)


def test_duration_maximum_is_the_callers() -> None:
    assert parse_duration("1h", maximum=MAX_DURATION) == 3600
    with refused("between 0s and 60s"):
        parse_duration("61s", maximum=60)


# numbers, strings, booleans


def test_integers_name_the_field_and_the_wrong_type() -> None:
    with refused(r"invalid lease ttl: 'abc' is not a number"):
        parse_int("abc", "lease ttl", 1, 86400, strings=True)
    with refused(r"invalid lease ttl: '30' is not a number"):
        parse_int("30", "lease ttl", 1, 86400)
    with refused(r"invalid lease ttl: 1.5 is not a whole number"):
        parse_int(1.5, "lease ttl", 1, 86400)
    with refused(r"invalid lease ttl: True is not a number"):
        parse_int(True, "lease ttl", 1, 86400)
    with refused(r"invalid lease ttl: 100000 must be between 1 and 86400"):
        parse_int(100_000, "lease ttl", 1, 86400)
    for huge in ("1e400", "inf", "nan", 10**400):
        with refused("invalid lease ttl"):
            parse_int(huge, "lease ttl", 1, 86400, strings=True)


def test_integers_that_pass() -> None:
    assert parse_int(30, "ttl", 1, 60) == 30
    assert parse_int(30.0, "ttl", 1, 60) == 30
    assert parse_int(" 30 ", "ttl", 1, 60, strings=True) == 30


def test_strings_are_bounded_and_free_of_nul() -> None:
    assert parse_text("web", "name", 10) == "web"
    with refused("invalid name: 11 characters, at most 10 allowed"):
        parse_text("x" * 11, "name", 10)
    with refused("invalid name: must not contain a NUL"):
        parse_text("a\x00b", "name", 10)
    with refused("invalid name: 5 is not a string"):
        parse_text(5, "name", 10)
    with refused(r"invalid name: \['x+\.\.\. is not a string"):
        parse_text(["x" * 1000], "name", 10)  # the echo of a wrong value is cut short


def test_booleans_are_json_booleans() -> None:
    assert parse_bool(None, "skip_launch", False) is False
    assert parse_bool(True, "skip_launch", False) is True
    with refused("invalid skip_launch: 'yes' is not a boolean"):
        parse_bool("yes", "skip_launch", False)


def test_string_maps() -> None:
    assert parse_string_map({"a": "b"}, "metadata") == {"a": "b"}
    with refused("invalid metadata key: must not be empty"):
        parse_string_map({"": "b"}, "metadata")
    with refused("invalid metadata.a: 1 is not a string"):
        parse_string_map({"a": 1}, "metadata")
    with refused("entries, at most 1024 allowed"):
        parse_string_map({str(i): "" for i in range(2000)}, "metadata")


# MachineConfig


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"image": "x" * 300_000}, r"invalid config\.image: 300000 characters, at most 4096"),
        ({"image": "busybox latest"}, r"invalid config\.image: must not contain spaces"),
        ({"image": "127.0.0.1:5000/" + "a" * 4000}, r"invalid config\.image: its name is 4015 characters, at most 255"),
        ({"image": "library/" + "a" * 190}, r"invalid config\.image: its name is 198 characters, at most 191"),
        ({"image": "busybox:" + "t" * 129}, r"invalid config\.image: its tag is 129 characters, at most 128"),
        ({"image": "busybox\x00"}, r"invalid config\.image: must not contain a NUL"),
        ({"image": ["busybox"]}, r"invalid config\.image: \['busybox'\] is not a string"),
        ({"image": "b", "env": {"A": "x" * 200_000}}, r"invalid env\.A: 200000 characters"),
        ({"image": "b", "env": {"A=B": "x"}}, r"invalid env: a variable's name must not contain '='"),
        ({"image": "b", "env": {"A": "a\x00"}}, r"invalid env\.A: must not contain a NUL"),
        ({"image": "b", "metadata": {"k": 5}}, r"invalid config\.metadata\.k: 5 is not a string"),
        ({"image": "b", "metadata": {"k": "v" * 200_000}}, r"invalid config\.metadata\.k: 200000 characters"),
        ({"image": "b", "init": {"cmd": ["a\x00"]}}, r"invalid init\.cmd\[0\]: must not contain a NUL"),
        ({"image": "b", "init": {"cmd": ["a"] * 2000}}, r"invalid init\.cmd: 2000 arguments"),
        ({"image": "b", "guest": {"cpu_kind": ["shared"]}}, r"invalid guest\.cpu_kind"),
        ({"image": "b", "guest": {"cpus": 10**400}}, r"invalid guest\.cpus: .* must be between 1 and 16"),
        ({"image": "b", "stop_config": {"timeout": 1e30}}, r"invalid stop_config\.timeout"),
        ({"image": "b", "stop_config": {"timeout": "abc"}}, r"invalid stop_config\.timeout"),
        ({"image": "b", "auto_destroy": "yes"}, r"invalid config\.auto_destroy: 'yes' is not a boolean"),
        ({"image": "b", "files": [{"guest_path": "/" + "a" * 5000}]}, r"invalid files\.guest_path"),
    ],
)
def test_machine_config_bounds(config: dict[str, object], message: str) -> None:
    with refused(message):
        normalize_config(config)


def test_a_reasonable_config_passes() -> None:
    _, spec = normalize_config(
        {
            "image": "  registry.local/busybox:latest ",
            "env": {"A": "b"},
            "metadata": {"fly_process_group": "app"},
            "init": {"cmd": ["httpd", "-f"]},
            "stop_config": {"timeout": "30s"},
        }
    )
    assert spec.image == "registry.local/busybox:latest"
    longest = "r.local:5000/" + "a" * 242 + ":" + "t" * 128 + "@sha256:" + "0" * 64
    assert normalize_config({"image": longest})[1].image == longest
    assert spec.stop_timeout == 30.0


def test_json_refuses_lone_surrogates_in_values_and_keys() -> None:
    with refused(r"invalid stdin: not valid Unicode"):
        parse_json('{"stdin": "a\\ud800"}')
    with refused(r"invalid config\.env: not valid Unicode"):
        parse_json('{"config": {"env": {"\\udfff": "x"}}}')
    assert parse_json('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}  # a proper pair is one character


# edges


def test_field_paths() -> None:
    from aerodrome.core.parsing import field_path

    assert field_path(("config", "services", 0, "internal_port")) == "config.services[0].internal_port"
    assert field_path((0, "a")) == "[0].a"
    assert field_path(()) == ""


def test_integers_from_strings_edges() -> None:
    assert parse_int("1e3", "count", 0, 5000, strings=True) == 1000
    assert parse_int(-0.0, "count", 0, 1) == 0
    with refused(r"invalid count: '1 +' is not a number"):  # a long string is not parsed at all
        parse_int("1" + " " * 40, "count", 0, 5, strings=True)
    with refused(r"invalid count: '1\.5' is not a whole number"):
        parse_int("1.5", "count", 0, 5, strings=True)
    with refused(r"invalid count: -1 must be between 0 and 5"):
        parse_int(-1, "count", 0, 5)


def test_required_text_and_maps_edges() -> None:
    with refused("invalid name: must not be empty"):
        parse_text("  ", "name", 10, required=True)
    assert parse_text("", "name", 10) == ""
    assert parse_string_map(None, "env") == {}
    with refused("invalid env: must be an object"):
        parse_string_map(["A=b"], "env")
    with refused(r"invalid env\.A: 3 characters, at most 2 allowed"):
        parse_string_map({"A": "abc"}, "env", max_value=2)
    with refused(r"invalid env key: \d+ characters, at most 1024"):
        parse_string_map({"k" * 2000: ""}, "env")


def test_json_accepts_nesting_in_objects_and_lists_mixed_to_the_limit() -> None:
    half = MAX_DEPTH // 2
    text = '{"a": [' * half + "1" + "]}" * half
    assert parse_json(text)
    with refused("nested deeper than 64 levels"):
        parse_json('{"a": [' * (half + 1) + "1" + "]}" * (half + 1))


def test_json_empty_and_whitespace_bodies_are_refused() -> None:
    for body in ("", "   ", b""):
        with refused("invalid request body: Expecting value"):
            parse_json(body, what="request body")
