"""`config.containers` parsed and checked without I/O: names, dependencies and their order, healthchecks,
mounts, restart policies, the env and mounts each container's host gets, and the record's round trip."""

from __future__ import annotations

from typing import Any

import pytest

from aerodrome.core import (
    ContainerDependency,
    ContainerRun,
    DependencyCondition,
    GuestFile,
    InvalidArgumentError,
    container_versions,
    normalize_config,
    parse_containers,
    runs_from_json,
    runs_to_json,
    start_order,
)
from aerodrome.core.containers import ContainerHealthcheck, ContainerMount


def config(*containers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"image": "busybox", "containers": list(containers), **extra}


def test_a_config_without_containers_is_one_container() -> None:
    _, spec = normalize_config({"image": "busybox"})
    assert spec.containers == () and spec.scratch_volumes == ()


def test_containers_parse_with_fly_fields() -> None:
    raw = config(
        {
            "name": "web",
            "image": "nginx:1",
            "cmd": ["nginx", "-g", "daemon off;"],
            "env": {"A": "1"},
            "secrets": [{"env_var": "TOKEN", "name": "API_TOKEN"}],
            "files": [{"guest_path": "/etc/x", "raw_value": "aGk="}],
            "restart": {"policy": "on-failure", "max_retries": 3},
            "stop": {"signal": "SIGQUIT", "timeout": 5},
            "mounts": [{"name": "data", "path": "/var/data"}],
            "healthchecks": [
                {"name": "http", "http": {"port": 80, "path": "/up"}, "interval": 2, "failure_threshold": 2},
                {"name": "file", "exec": {"command": ["test", "-f", "/ready"]}, "kind": "liveness"},
            ],
        },
        {"name": "worker", "image": "busybox", "depends_on": [{"name": "web", "condition": "healthy"}]},
        volumes=[{"name": "data"}],
    )
    _, spec = normalize_config(raw)
    web, worker = spec.containers
    assert web.init_cmd == ("nginx", "-g", "daemon off;") and web.env == {"A": "1"}
    assert web.secrets == (("TOKEN", "API_TOKEN"),) and web.files == (GuestFile("/etc/x", b"hi"),)
    assert (web.restart_policy, web.restart_max_retries, web.stop_signal, web.stop_timeout) == ("on-failure", 3, 3, 5)
    assert web.mounts == (ContainerMount("data", "/var/data"),)
    http, file_check = web.healthchecks
    assert (http.http_port, http.http_path, http.interval, http.failure_threshold) == (80, "/up", 2.0, 2)
    assert file_check.exec_command == ("test", "-f", "/ready") and file_check.kind == "liveness"
    assert worker.depends_on == (ContainerDependency("web", DependencyCondition.HEALTHY),)
    assert worker.restart_policy == "no" and spec.scratch_volumes == ("data",)


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}], "duplicate container name 'a'"),
        ([{"name": "a", "image": "x", "depends_on": [{"name": "zz"}]}], "a depends on unknown container 'zz'"),
        ([{"name": "a", "image": "x", "depends_on": [{"name": "a"}]}], "dependency cycle a -> a"),
        ([{"name": "a", "image": "x", "depends_on": [{"name": "b", "condition": "soon"}]}], "condition 'soon'"),
        ([{"name": "A b", "image": "x"}], "containers[0].name"),
        ([{"name": "a"}], "containers[0].image"),
        ([{"name": "a", "image": "x", "restart": {"policy": "spot-price"}}], "restart.policy 'spot-price'"),
        ([{"name": "a", "image": "x", "mounts": [{"name": "none", "path": "/d"}]}], "no machine volume named 'none'"),
        ([{"name": "a", "image": "x", "healthchecks": [{"tcp": {"port": 1}, "http": {"port": 2}}]}], "exactly one"),
        ([{"name": "a", "image": "x", "healthchecks": [{"exec": {"command": []}}]}], "must not be empty"),
        ([{"name": "a", "image": "x", "healthchecks": [{"tcp": {"port": 0}}]}], "tcp.port"),
        ("nope", "containers: must be a list"),
    ],
)
def test_containers_that_do_not_hold_together_are_refused(containers: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        normalize_config({"image": "busybox", "containers": containers})
    assert message in refused.value.message


def test_a_longer_cycle_is_named() -> None:
    raw = [{"name": n, "image": "x", "depends_on": [{"name": d}]} for n, d in (("a", "b"), ("b", "c"), ("c", "a"))]
    with pytest.raises(InvalidArgumentError, match="dependency cycle"):
        parse_containers({"containers": raw}, frozenset())


def test_start_order_puts_dependencies_first() -> None:
    parsed = parse_containers(
        {
            "containers": [
                {"name": "app", "image": "x", "depends_on": [{"name": "db"}, {"name": "migrate"}]},
                {"name": "migrate", "image": "x", "depends_on": [{"name": "db", "condition": "healthy"}]},
                {"name": "db", "image": "x"},
            ]
        },
        frozenset(),
    )
    assert start_order(parsed) == ["db", "migrate", "app"]


def test_each_container_gets_the_machine_env_and_its_own_secrets() -> None:
    raw = config(
        {"name": "all", "image": "x", "env": {"OWN": "1"}, "mounts": [{"name": "vol", "path": "/in"}]},
        {"name": "picky", "image": "x", "secrets": [{"env_var": "ONLY", "name": "B"}]},
        mounts=[{"volume": "vol", "path": "/machine"}],
    )
    _, spec = normalize_config(raw)
    machine_env = {"A": "secret-a", "B": "secret-b", "FLY_APP_NAME": "app"}
    every, picky = container_versions(spec, machine_env, {"A": "secret-a", "B": "secret-b"})
    assert every.env == {**machine_env, "OWN": "1"}
    assert every.mounts == (ContainerMount("/machine", "/in"),)  # the mounted volume, by its guest path
    assert picky.env == {"FLY_APP_NAME": "app", "ONLY": "secret-b"}


def test_a_record_of_containers_round_trips() -> None:
    run = ContainerRun(
        name="web",
        image_digest="sha256:" + "0" * 64,
        argv=("httpd", "-f"),
        env={"K": "v"},
        files=(GuestFile("/f", b"\x00bytes", 0o600),),
        depends_on=(ContainerDependency("db", DependencyCondition.EXITED_SUCCESSFULLY),),
        healthchecks=(ContainerHealthcheck("up", exec_command=("true",)),),
        mounts=(ContainerMount("data", "/d"),),
        restart_policy="always",
    )
    assert runs_from_json(runs_to_json((run,))) == (run,)
    with pytest.raises((TypeError, KeyError)):
        runs_from_json([{"name": "web"}])
