"""Parsing `checks` and `statics`, the check board's readiness, and how URLs map into a static root: no I/O."""

from __future__ import annotations

import pytest

from aerodrome.core import (
    CHECK_CRITICAL,
    CHECK_PASSING,
    CheckBoard,
    CheckResult,
    InvalidArgumentError,
    StaticSpec,
    parse_checks,
    parse_statics,
)


def test_checks_have_flys_names_defaults_and_kinds() -> None:
    config = {
        "checks": {"db": {"type": "tcp", "port": 5432}, "up": {"type": "http", "port": 80, "kind": "readiness"}},
        "services": [
            {"internal_port": 8080, "checks": [{"type": "http", "path": "/h", "headers": {"X-A": ["1", "2"]}}]},
            {"internal_port": 9090, "checks": [{"type": "tcp", "interval": "5s", "grace_period": "10s"}]},
        ],
    }
    db, up, first, second = parse_checks(config)
    assert (db.name, db.kind, db.interval, db.timeout, db.readiness) == ("db", "informational", 15.0, 2.0, False)
    assert up.readiness
    assert (first.name, first.port, first.path, first.readiness) == ("servicecheck-00-http-8080", 8080, "/h", True)
    assert first.headers == (("X-A", "1"), ("X-A", "2"))
    assert (second.name, second.interval, second.grace_period) == ("servicecheck-01-tcp-9090", 5.0, 10.0)
    listed = parse_checks({"checks": {"x": {"type": "http", "port": 1, "headers": [{"name": "H", "values": ["v"]}]}}})
    assert listed[0].headers == (("H", "v"),)


@pytest.mark.parametrize(
    "checks",
    [
        {"x": {"type": "tcp", "port": 0}},
        {"x": {"type": "tcp", "port": True}},
        {"x": {"type": "http", "port": 80, "method": "BREW"}},
        {"x": {"type": "http", "port": 80, "protocol": "gopher"}},
        {"x": {"type": "http", "port": 80, "timeout": "2m"}},
        {"x": {"type": "http", "port": 80, "headers": [{"name": "Bad Name", "values": ["v"]}]}},
        {"x": {"type": "http", "port": 80, "path": "/a b"}},
        {str(n): {"type": "tcp", "port": 80} for n in range(33)},
    ],
)
def test_bad_checks_are_invalid_arguments(checks: object) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_checks({"checks": checks})


def test_the_board_is_ready_only_when_every_readiness_check_passes() -> None:
    (info, ready) = parse_checks(
        {"checks": {"i": {"type": "tcp", "port": 1}, "r": {"type": "tcp", "port": 2, "kind": "readiness"}}}
    )
    board = CheckBoard()
    told: list[tuple[str, str]] = []
    board.subscribe(lambda machine_id, _app, result: told.append((result.name, result.status)))
    assert not board.ready("m")  # not checked at all yet
    board.track("m", "app", (info, ready), "2026-01-01T00:00:00Z")
    assert not board.ready("m") and [s for _, s in told] == ["warning", "warning"]
    assert board.record("m", "app", CheckResult("r", CHECK_PASSING, "ok", "t"))
    assert not board.record("m", "app", CheckResult("r", CHECK_PASSING, "ok", "t2"))  # nothing new
    board.record("m", "app", CheckResult("i", CHECK_CRITICAL, "refused", "t"))
    assert board.ready("m")  # an informational check does not gate
    before = board.results("m")
    board.record("m", "app", CheckResult("r", CHECK_CRITICAL, "404", "t"))
    assert not board.ready("m") and board.results("m") is not before
    board.forget("m")
    assert board.results("m") == () and not board.record("m", "app", CheckResult("r", CHECK_PASSING, "", "t"))


@pytest.mark.parametrize(
    ("url", "guest"),
    [
        ("/assets", "/srv/www/index.html"),
        ("/assets/", "/srv/www/index.html"),
        ("/assets/a/b.js", "/srv/www/a/b.js"),
        ("/assets/a%20b.txt", "/srv/www/a b.txt"),
        ("/assets/a/", "/srv/www/a/index.html"),
        ("/assetsx/a", None),
        ("/assets/../etc/passwd", None),
        ("/assets/%2E%2E/etc/passwd", None),
        ("/assets/a/./b", None),
        ("/assets//b", None),
        ("/assets/a%00", None),
        ("/assets/a%5cb", None),
        ("/assets/%ff", None),
    ],
)
def test_urls_map_only_beneath_the_guest_path(url: str, guest: str | None) -> None:
    (spec,) = parse_statics(
        {"statics": [{"guest_path": "/srv/www/", "url_prefix": "/assets", "index_document": "index.html"}]}
    )
    assert spec == StaticSpec("/srv/www", "/assets/", "index.html")
    assert spec.guest_file(url) == guest


def test_a_static_without_an_index_serves_no_directory() -> None:
    (spec,) = parse_statics({"statics": [{"guest_path": "/", "url_prefix": "/"}]})
    assert spec.guest_file("/") is None and spec.guest_file("/x/") is None and spec.guest_file("/x") == "/x"
