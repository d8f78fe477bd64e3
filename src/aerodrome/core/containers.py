"""Multi-container machines: a config's `containers[]`, validated, and the order their dependencies impose.

Fly's Pilot runs several OCI images in one machine: they share its network namespace, cgroup and volumes, and
each has its own root filesystem, argv, env, files, restart policy, `depends_on` and `healthchecks`. This module
is the pure part: parsing (every error an InvalidArgumentError, a 400 in Fly's shape), the dependency graph
(unknown names and cycles refused) and the per-container state the host reports. A config without `containers`
is a one-container machine, unchanged.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from graphlib import CycleError, TopologicalSorter
from typing import Any

from aerodrome.core.config import GuestFile, MachineSpec, parse_guest_file
from aerodrome.core.durations import parse_signal
from aerodrome.core.errors import InvalidArgumentError
from aerodrome.core.parsing import MAX_ITEMS, MAX_NAME, MAX_PATH, MAX_VALUE, parse_int, parse_string_map, parse_text

JSON = dict[str, Any]

MAX_CONTAINERS = 16
RESTART_POLICIES = ("no", "always", "on-failure")  # spot-price is not for containers (Fly's note)
CHECK_KINDS = ("readiness", "liveness")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class DependencyCondition(StrEnum):
    STARTED = "started"
    HEALTHY = "healthy"
    EXITED_SUCCESSFULLY = "exited_successfully"


class ContainerState(StrEnum):
    """Where one container of a running machine is; Fly's Pilot names the same phases."""

    PENDING = "pending"  # waiting for its dependencies
    RUNNING = "running"
    EXITED = "exited"  # ended, and its restart policy does not bring it back
    FAILED = "failed"  # never started: a dependency cannot be met, or its process could not be launched


@dataclass(frozen=True, slots=True)
class ContainerDependency:
    name: str
    condition: DependencyCondition = DependencyCondition.STARTED


@dataclass(frozen=True, slots=True)
class ContainerHealthcheck:
    """One of Fly's container healthchecks: exactly one of `exec_command`, `http_port` or `tcp_port` is set."""

    name: str
    kind: str = "readiness"
    exec_command: tuple[str, ...] = ()
    http_port: int = 0
    http_path: str = "/"
    http_method: str = "GET"
    tcp_port: int = 0
    interval: float = 10.0
    timeout: float = 5.0
    grace_period: float = 0.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True, slots=True)
class ContainerMount:
    name: str  # a machine volume: `volumes[].name` (a scratch directory shared by containers) or a mount's name
    path: str


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    image: str
    init_exec: tuple[str, ...] = ()
    init_entrypoint: tuple[str, ...] = ()
    init_cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[tuple[str, str], ...] = ()  # (env_var, secret name); none: the machine's secrets
    files: tuple[GuestFile, ...] = ()
    user: str = ""
    depends_on: tuple[ContainerDependency, ...] = ()
    healthchecks: tuple[ContainerHealthcheck, ...] = ()
    restart_policy: str = "no"
    restart_max_retries: int = 0
    mounts: tuple[ContainerMount, ...] = ()
    stop_signal: int = 15
    stop_timeout: float = 10.0


def parse_containers(config: JSON, volume_names: frozenset[str]) -> tuple[ContainerSpec, ...]:
    """`config.containers`, each checked, names unique, dependencies known and acyclic; mounts name one of
    `volume_names` (the machine's scratch volumes and mounted volumes)."""
    raw = config.get("containers") or []
    if not isinstance(raw, list):
        raise InvalidArgumentError("invalid containers: must be a list")
    if len(raw) > MAX_CONTAINERS:
        raise InvalidArgumentError(f"invalid containers: {len(raw)} containers, at most {MAX_CONTAINERS} allowed")
    containers = tuple(_container(item, index, volume_names) for index, item in enumerate(raw))
    names = [c.name for c in containers]
    for name in names:
        if names.count(name) > 1:
            raise InvalidArgumentError(f"invalid containers: duplicate container name {name!r}")
    start_order(containers)
    return containers


def start_order(containers: tuple[ContainerSpec, ...]) -> list[str]:
    """The containers' names, each after everything it depends on; a dependency on itself or a cycle is refused."""
    known = {c.name for c in containers}
    graph: dict[str, list[str]] = {}
    for container in containers:
        for dependency in container.depends_on:
            if dependency.name not in known:
                raise InvalidArgumentError(
                    f"invalid containers: {container.name} depends on unknown container {dependency.name!r}"
                )
        graph[container.name] = [d.name for d in container.depends_on]
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise InvalidArgumentError(f"invalid containers: dependency cycle {cycle}") from None


def volume_names(config: JSON) -> frozenset[str]:
    """What a container's mount may name: the machine's `volumes[].name` and its mounts' `name`/`volume`."""
    names: set[str] = set()
    for key in ("volumes", "mounts"):
        entries = config.get(key) or []
        if not isinstance(entries, list):
            raise InvalidArgumentError(f"invalid {key}: must be a list")
        for entry in entries:
            if isinstance(entry, dict):
                names.update(v for k in ("name", "volume") if isinstance(v := entry.get(k), str) and v)
    return frozenset(names)


def scratch_volumes(config: JSON) -> tuple[str, ...]:
    """The machine's `volumes[]` names with a `temp_dir`: per-run directories its containers share."""
    entries = config.get("volumes") or []
    if not isinstance(entries, list) or len(entries) > MAX_ITEMS:
        raise InvalidArgumentError("invalid volumes: must be a list of at most 64 entries")
    names = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidArgumentError("invalid volumes: each volume must be an object")
        names.append(_name(entry.get("name"), "volumes[].name"))
    return tuple(names)


def _container(raw: object, index: int, volumes: frozenset[str]) -> ContainerSpec:
    where = f"containers[{index}]"
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid {where}: must be an object")
    name = _name(raw.get("name"), f"{where}.name")
    image = parse_text(raw.get("image"), f"{where}.image", 512, required=True).strip()
    restart = raw.get("restart") or {}
    if not isinstance(restart, dict):
        raise InvalidArgumentError(f"invalid {where}.restart: must be an object")
    policy = restart.get("policy") or "no"
    if policy not in RESTART_POLICIES:
        raise InvalidArgumentError(
            f"invalid {where}.restart.policy {policy!r}: use one of {', '.join(RESTART_POLICIES)}"
        )
    stop = raw.get("stop") or {}
    if not isinstance(stop, dict):
        raise InvalidArgumentError(f"invalid {where}.stop: must be an object")
    files = raw.get("files") or []
    if not isinstance(files, list) or len(files) > MAX_ITEMS:
        raise InvalidArgumentError(f"invalid {where}.files: must be a list of at most {MAX_ITEMS} entries")
    return ContainerSpec(
        name=name,
        image=image,
        init_exec=_strings(raw, "exec", where),
        init_entrypoint=_strings(raw, "entrypoint", where),
        init_cmd=_strings(raw, "cmd", where),
        env=parse_string_map(raw.get("env"), f"{where}.env"),
        secrets=_secrets(raw.get("secrets"), where),
        files=tuple(parse_guest_file(f) for f in files),
        user=parse_text(raw.get("user") or "", f"{where}.user", MAX_NAME),
        depends_on=tuple(_dependency(d, where) for d in _list(raw, "depends_on", where)),
        healthchecks=_healthchecks(_list(raw, "healthchecks", where), where),
        restart_policy=policy,
        restart_max_retries=parse_int(restart.get("max_retries") or 0, f"{where}.restart.max_retries", 0, 10_000),
        mounts=tuple(_mount(m, where, volumes) for m in _list(raw, "mounts", where)),
        stop_signal=parse_signal(stop.get("signal") or "SIGTERM"),
        stop_timeout=float(parse_int(stop.get("timeout") or 10, f"{where}.stop.timeout", 1, 300, strings=False)),
    )


def _name(value: object, field_name: str) -> str:
    name = parse_text(value, field_name, MAX_NAME, required=True)
    if not set(name) <= NAME_CHARS:
        raise InvalidArgumentError(f"invalid {field_name} {name!r}: use lowercase letters, digits, - and _")
    return name


def _list(raw: JSON, key: str, where: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise InvalidArgumentError(f"invalid {where}.{key}: must be a list of at most {MAX_ITEMS} entries")
    return value


def _strings(raw: JSON, key: str, where: str) -> tuple[str, ...]:
    value = _list(raw, key, where)
    if not all(isinstance(a, str) for a in value):
        raise InvalidArgumentError(f"invalid {where}.{key}: must be a list of strings")
    return tuple(parse_text(a, f"{where}.{key}[{i}]", MAX_VALUE) for i, a in enumerate(value))


def _secrets(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise InvalidArgumentError(f"invalid {where}.secrets: must be a list of {{env_var, name}}")
    pairs = []
    for secret in raw:
        env_var = parse_text(secret.get("env_var"), f"{where}.secrets[].env_var", MAX_NAME, required=True)
        pairs.append((env_var, parse_text(secret.get("name") or env_var, f"{where}.secrets[].name", MAX_NAME)))
    return tuple(pairs)


def _dependency(raw: object, where: str) -> ContainerDependency:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid {where}.depends_on: each entry must be an object")
    name = parse_text(raw.get("name"), f"{where}.depends_on[].name", MAX_NAME, required=True)
    condition = raw.get("condition") or "started"
    if condition not in tuple(DependencyCondition):
        choices = ", ".join(DependencyCondition)
        raise InvalidArgumentError(f"invalid {where}.depends_on condition {condition!r}: use one of {choices}")
    return ContainerDependency(name, DependencyCondition(condition))


def _healthchecks(raw: list[Any], where: str) -> tuple[ContainerHealthcheck, ...]:
    checks = tuple(_healthcheck(item, f"{where}.healthchecks[{i}]") for i, item in enumerate(raw))
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"invalid {where}.healthchecks: names must be unique within the container")
    return checks


def _healthcheck(raw: object, where: str) -> ContainerHealthcheck:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid {where}: must be an object")
    kinds = [k for k in ("exec", "http", "tcp") if raw.get(k)]
    if len(kinds) != 1:
        raise InvalidArgumentError(f"invalid {where}: set exactly one of exec, http or tcp")
    probe = raw[kinds[0]]
    if not isinstance(probe, dict):
        raise InvalidArgumentError(f"invalid {where}.{kinds[0]}: must be an object")
    kind = raw.get("kind") or "readiness"
    if kind not in CHECK_KINDS:
        raise InvalidArgumentError(f"invalid {where}.kind {kind!r}: use readiness or liveness")
    seconds = {
        key: float(parse_int(raw.get(key) or default, f"{where}.{key}", low, 3600))
        for key, default, low in (("interval", 10, 1), ("timeout", 5, 1), ("grace_period", 0, 0))
    }
    port = parse_int(probe.get("port"), f"{where}.{kinds[0]}.port", 1, 65535) if kinds[0] != "exec" else 0
    command = _strings(probe, "command", f"{where}.exec") if kinds[0] == "exec" else ()
    if kinds[0] == "exec" and not command:
        raise InvalidArgumentError(f"invalid {where}.exec.command: must not be empty")
    return ContainerHealthcheck(
        name=parse_text(raw.get("name") or kinds[0], f"{where}.name", MAX_NAME),
        kind=kind,
        exec_command=command,
        http_port=port if kinds[0] == "http" else 0,
        http_path=parse_text(probe.get("path") or "/", f"{where}.http.path", MAX_PATH),
        http_method=parse_text(probe.get("method") or "GET", f"{where}.http.method", 16).upper(),
        tcp_port=port if kinds[0] == "tcp" else 0,
        success_threshold=parse_int(raw.get("success_threshold") or 1, f"{where}.success_threshold", 1, 100),
        failure_threshold=parse_int(raw.get("failure_threshold") or 3, f"{where}.failure_threshold", 1, 100),
        **seconds,
    )


def _mount(raw: object, where: str, volumes: frozenset[str]) -> ContainerMount:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid {where}.mounts: each mount must be an object")
    name = parse_text(raw.get("name"), f"{where}.mounts[].name", MAX_NAME, required=True)
    if name not in volumes:
        raise InvalidArgumentError(f"invalid {where}.mounts: no machine volume named {name!r}")
    path = parse_text(raw.get("path"), f"{where}.mounts[].path", MAX_PATH, required=True)
    if not path.startswith("/") or path == "/" or ".." in path.split("/"):
        raise InvalidArgumentError(f"invalid {where}.mounts: path {path!r} must be an absolute path other than /")
    return ContainerMount(name, path)


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """One container as its host runs it: the image resolved, the argv and env laid over the image's, and each
    mount's `name` a scratch volume of the machine or (starting with "/") the guest path of a mounted volume."""

    name: str
    image_digest: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    user: str = ""
    files: tuple[GuestFile, ...] = ()
    depends_on: tuple[ContainerDependency, ...] = ()
    healthchecks: tuple[ContainerHealthcheck, ...] = ()
    restart_policy: str = "no"
    restart_max_retries: int = 0
    mounts: tuple[ContainerMount, ...] = ()
    stop_signal: int = 15
    stop_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    """What the host reports of one container of a machine that runs (the Machine's `containers`)."""

    name: str
    state: ContainerState
    exit_code: int | None = None
    restart_count: int = 0
    healthy: bool | None = None  # None: it has no healthchecks
    updated_at: str = ""

    def to_json(self) -> JSON:
        data: JSON = {"name": self.name, "state": self.state.value, "restart_count": self.restart_count}
        if self.exit_code is not None:
            data["exit_code"] = self.exit_code
        if self.healthy is not None:
            data["healthy"] = self.healthy
        if self.updated_at:
            data["updated_at"] = self.updated_at
        return data


def container_versions(
    spec: MachineSpec, machine_env: dict[str, str], secrets: dict[str, str]
) -> tuple[ContainerSpec, ...]:
    """The machine's containers as its host gets them: each env over the machine's (whose secrets a container
    listing its own `secrets` gets only those of), and each mount of a mounted volume named by its guest path."""
    volume_paths = {mount.volume: mount.path for mount in spec.mounts}
    versions = []
    for container in spec.containers:
        base = machine_env
        if container.secrets:
            base = {k: v for k, v in machine_env.items() if k not in secrets}
            base.update({env_var: secrets[name] for env_var, name in container.secrets if name in secrets})
        mounts = tuple(ContainerMount(volume_paths.get(m.name, m.name), m.path) for m in container.mounts)
        versions.append(replace(container, env={**base, **container.env}, mounts=mounts))
    return tuple(versions)


def runs_to_json(runs: tuple[ContainerRun, ...]) -> list[JSON]:
    """The containers of a host's record (sealed with the env, since theirs holds secrets too)."""
    return [
        {
            **{name: getattr(run, name) for name in _RUN_FIELDS if name not in ("files", "depends_on", "healthchecks")},
            "files": [
                {"guest_path": f.guest_path, "data": base64.b64encode(f.data).decode(), "mode": f.mode}
                for f in run.files
            ],
            "depends_on": [{"name": d.name, "condition": d.condition.value} for d in run.depends_on],
            "healthchecks": [asdict(check) for check in run.healthchecks],
            "mounts": [asdict(mount) for mount in run.mounts],
        }
        for run in runs
    ]


def runs_from_json(data: list[JSON]) -> tuple[ContainerRun, ...]:
    """The containers of a record; TypeError, KeyError or ValueError when it is damaged."""
    if not isinstance(data, list):
        raise TypeError("spec.containers is not a list")
    return tuple(_run_from_json(item) for item in data)


def _run_from_json(item: JSON) -> ContainerRun:
    checks = tuple(
        ContainerHealthcheck(**{**c, "exec_command": tuple(c["exec_command"])}) for c in item["healthchecks"]
    )
    run = ContainerRun(
        **{
            **item,
            "argv": tuple(item["argv"]),
            "files": tuple(GuestFile(f["guest_path"], base64.b64decode(f["data"]), f["mode"]) for f in item["files"]),
            "depends_on": tuple(
                ContainerDependency(d["name"], DependencyCondition(d["condition"])) for d in item["depends_on"]
            ),
            "healthchecks": checks,
            "mounts": tuple(ContainerMount(m["name"], m["path"]) for m in item["mounts"]),
        }
    )
    if not isinstance(run.name, str) or not all(isinstance(a, str) for a in run.argv) or not isinstance(run.env, dict):
        raise TypeError("spec.containers holds a value of the wrong type")
    return run


_RUN_FIELDS = tuple(f.name for f in fields(ContainerRun))
