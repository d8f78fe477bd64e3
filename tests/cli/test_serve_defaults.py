"""`serve`'s and `agent`'s flags default to what the parts they build default to: a default is chosen once (in
`ServeOptions`, which takes the control plane's and the edge's own), and the flags are checked against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from aerodrome.cli.main import app
from aerodrome.cli.serve import ServeOptions

SERVE = ServeOptions(data_dir=Path())
MIB = 1024 * 1024


def flag_defaults(command: str) -> dict[str, Any]:
    group: Any = typer.main.get_command(app)  # typer's own click group
    return {param.name: param.default for param in group.commands[command].params if param.name}


def test_serve_flags_default_to_the_serve_options_defaults() -> None:
    flags = flag_defaults("serve")
    assert {name: flags[name] for name in _SAME_NAMES} == {name: getattr(SERVE, name) for name in _SAME_NAMES}
    assert flags["region"] == SERVE.default_region
    assert flags["allow_32bit"] == SERVE.compat_32bit
    assert flags["disk_reserve_mb"] * MIB == SERVE.disk_reserve_bytes
    assert flags["volume_unit_mb"] * MIB == SERVE.volume_unit_bytes
    retention, logs = SERVE.retention, SERVE.logs
    assert (flags["events_per_machine"], flags["event_max_age"]) == (
        retention.events_per_machine,
        retention.event_max_age,
    )
    assert (flags["versions_per_machine"], flags["destroyed_machine_age"], flags["retention_interval"]) == (
        retention.versions_per_machine,
        retention.destroyed_machine_age,
        retention.interval,
    )
    assert (flags["log_bytes_per_machine"], flags["log_max_age"], flags["log_streams"]) == (
        logs.max_bytes_per_machine,
        logs.max_age,
        logs.streams,
    )


def test_agent_flags_default_to_what_serve_defaults_to() -> None:
    flags = flag_defaults("agent")
    assert (flags["registry"], flags["machine_ipv4_pool"], flags["region"], flags["egress"]) == (
        SERVE.registry,
        SERVE.machine_ipv4_pool,
        SERVE.default_region,
        SERVE.egress,
    )


_SAME_NAMES = (
    "api",
    "registry",
    "rate_limits",
    "dashboard",
    "edge_http",
    "edge_https",
    "domain",
    "autostop_idle",
    "machine_ipv4_pool",
    "org_prefix_len",
    "dedicated_ipv4_pool",
    "dedicated_ipv6_pool",
    "egress",
    "dns",
    "image_gc_interval",
    "volume_check_interval",
)
