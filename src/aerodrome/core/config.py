"""Machine configuration: validation of Fly's `MachineConfig` and the typed view the runtime and edge act on.

The stored config is the client's JSON with defaults filled in (Fly echoes it back); `MachineSpec` is
what aerodrome reads from it. Both come from `normalize_config`, so they never disagree.
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aerodrome.core.checks import CheckSpec, parse_checks
from aerodrome.core.durations import parse_duration, parse_signal
from aerodrome.core.errors import InvalidArgumentError
from aerodrome.core.guest_dns import DnsSpec, parse_dns
from aerodrome.core.parsing import MAX_IMAGE, MAX_ITEMS, MAX_PATH, MAX_VALUE, parse_bool, parse_string_map, parse_text
from aerodrome.core.statics import StaticSpec, parse_statics

if TYPE_CHECKING:
    from aerodrome.core.containers import ContainerSpec

JSON = dict[str, Any]

DEFAULT_GUEST: JSON = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
MAX_CPUS = {"shared": 16, "performance": 16}
DEFAULT_ROOTFS_GB = 8  # Fly's: a machine's root filesystem holds 8 GB of writes unless rootfs.size_gb says
MAX_ROOTFS_GB = 500
RESTART_POLICIES = ("no", "always", "on-failure", "spot-price")
AUTOSTOP_VALUES = ("off", "stop", "suspend")
MAX_IMAGE_NAME, MAX_IMAGE_TAG = 255, 128  # distribution/reference's NameTotalLengthMax and tag grammar


@dataclass(frozen=True, slots=True)
class GuestFile:
    guest_path: str
    data: bytes
    mode: int = 0o644
    secret_name: str | None = None  # the content is this app secret's value, base64-decoded, when the machine is made


@dataclass(frozen=True, slots=True)
class MountSpec:
    volume: str
    path: str
    extend_threshold_percent: int = 0
    add_size_gb: int = 0
    size_gb_limit: int = 0


@dataclass(frozen=True, slots=True)
class PortSpec:
    port: int
    handlers: tuple[str, ...] = ()
    force_https: bool = False


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    protocol: str
    internal_port: int
    ports: tuple[PortSpec, ...]
    autostop: str = "off"  # off | stop | suspend
    autostart: bool = True
    min_machines_running: int = 0
    concurrency_type: str = "connections"
    soft_limit: int = 20
    hard_limit: int = 0  # 0: no limit
    # aerodrome's extension `aerodrome_busy`: autostop counts a machine this busy as active (0: not looked at)
    busy_cpu_percent: float = 0.0
    busy_io_bytes_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class MachineSpec:
    image: str
    init_exec: tuple[str, ...] = ()
    init_entrypoint: tuple[str, ...] = ()
    init_cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[GuestFile, ...] = ()
    cpu_kind: str = "shared"
    cpus: int = 1
    memory_mb: int = 256
    mounts: tuple[MountSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    restart_policy: str = "on-failure"
    restart_max_retries: int = 10
    stop_signal: int = 2  # SIGINT, Fly's default
    stop_timeout: float = 10.0
    auto_destroy: bool = False
    rootfs_size_gb: int = DEFAULT_ROOTFS_GB
    dns: DnsSpec = field(default_factory=DnsSpec)
    process_group: str = ""  # metadata.fly_process_group
    checks: tuple[CheckSpec, ...] = ()  # top-level checks, then the services'
    statics: tuple[StaticSpec, ...] = ()
    containers: tuple[ContainerSpec, ...] = ()  # several images in one machine (Fly's `containers`)
    scratch_volumes: tuple[str, ...] = ()  # `volumes[].name`: per-run directories the containers share
    schedule: str = ""  # hourly, daily, weekly or monthly: the control plane starts the machine once a period
    standbys: tuple[str, ...] = ()  # the machines this one stands by for: not routed to, started when one stops


def normalize_config(raw: object) -> tuple[JSON, MachineSpec]:
    """Validate a client's MachineConfig; return the config to store and echo, and its typed view."""
    if not isinstance(raw, dict):
        raise InvalidArgumentError("config is required")
    config: JSON = copy.deepcopy(raw)
    image = config.get("image")
    if image is None or (isinstance(image, str) and not image.strip()):
        raise InvalidArgumentError("invalid config: image is required")
    image = parse_text(image, "config.image", MAX_IMAGE).strip()
    if any(c.isspace() or not c.isprintable() for c in image):
        raise InvalidArgumentError("invalid config.image: must not contain spaces or control characters")
    _image_lengths(image)
    metadata = parse_string_map(config.get("metadata"), "config.metadata")
    guest = _guest(config)
    services = tuple(_service(s, i) for i, s in enumerate(_list(config, "services")))
    config["services"] = [
        _echo_service(s, raw_s) for s, raw_s in zip(services, config.get("services") or [], strict=True)
    ]
    if not config["services"]:
        del config["services"]
    restart = _dict(config, "restart")
    policy = restart.get("policy", "on-failure") or "on-failure"
    if policy not in RESTART_POLICIES:
        raise InvalidArgumentError(f"invalid restart policy {policy!r}: must be one of {', '.join(RESTART_POLICIES)}")
    stop = _dict(config, "stop_config")
    spec = MachineSpec(
        image=image,
        init_exec=_argv(config, "exec"),
        init_entrypoint=_argv(config, "entrypoint"),
        init_cmd=_argv(config, "cmd"),
        env=_env(config),
        files=tuple(_file(f) for f in _list(config, "files")),
        cpu_kind=guest["cpu_kind"],
        cpus=guest["cpus"],
        memory_mb=guest["memory_mb"],
        mounts=tuple(_mount(m) for m in _list(config, "mounts")),
        services=services,
        restart_policy=policy,
        restart_max_retries=_int(restart.get("max_retries", 10), "restart.max_retries", 0, 10_000),
        stop_signal=parse_signal(stop.get("signal", "SIGINT")),
        stop_timeout=parse_duration(stop.get("timeout", "10s"), field="stop_config.timeout"),
        auto_destroy=parse_bool(config.get("auto_destroy"), "config.auto_destroy", False),
        rootfs_size_gb=_rootfs_size(config),
        dns=parse_dns(config.get("dns")),
        process_group=metadata.get("fly_process_group", ""),
        checks=parse_checks(config),
        statics=parse_statics(config),
        **_containers(config),
        schedule=_schedule(config.get("schedule")),
        standbys=_standbys(config.get("standbys")),
    )
    if len(spec.mounts) > 1:
        raise InvalidArgumentError("invalid config: a machine can mount at most one volume")
    return config, spec


def _containers(config: JSON) -> dict[str, Any]:
    from aerodrome.core.containers import parse_containers, scratch_volumes, volume_names  # it imports this module

    return {"containers": parse_containers(config, volume_names(config)), "scratch_volumes": scratch_volumes(config)}


SCHEDULES = ("hourly", "daily", "weekly", "monthly")


def _schedule(raw: object) -> str:
    if raw is None or raw == "":
        return ""
    if raw not in SCHEDULES:
        raise InvalidArgumentError(f"invalid config.schedule {raw!r}: must be one of {', '.join(SCHEDULES)}")
    return str(raw)


def _standbys(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(m, str) and m for m in raw) or len(raw) > 64:
        raise InvalidArgumentError("invalid config.standbys: must be a list of at most 64 machine ids")
    return tuple(parse_text(m, "config.standbys", 64) for m in raw)


def _image_lengths(image: str) -> None:
    """The lengths Docker's reference grammar allows: a name (registry host included) of 255, a tag of 128."""
    name = image.split("@", 1)[0]
    tag = ""
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
    first = name.split("/", 1)[0]
    qualified = "/" in name and ("." in first or ":" in first or first == "localhost")
    # a name without a registry host gets one when it is resolved (the embedded registry's, or docker.io/library)
    limit = MAX_IMAGE_NAME if qualified else MAX_IMAGE_NAME - 64
    if len(name) > limit:
        raise InvalidArgumentError(f"invalid config.image: its name is {len(name)} characters, at most {limit} allowed")
    if len(tag) > MAX_IMAGE_TAG:
        raise InvalidArgumentError(f"invalid config.image: its tag is {len(tag)} characters, at most {MAX_IMAGE_TAG}")


def _rootfs_size(config: JSON) -> int:
    rootfs = _dict(config, "rootfs")
    persist = rootfs.get("persist", "never") or "never"
    if persist not in ("never", "always", "restart"):
        raise InvalidArgumentError(f"invalid rootfs.persist {persist!r}: must be never, always or restart")
    size = rootfs.get("size_gb")
    return DEFAULT_ROOTFS_GB if size in (None, 0) else _int(size, "rootfs.size_gb", 1, MAX_ROOTFS_GB)


def _guest(config: JSON) -> JSON:
    guest = {**DEFAULT_GUEST, **_dict(config, "guest")}
    if not isinstance(guest["cpu_kind"], str) or guest["cpu_kind"] not in MAX_CPUS:
        raise InvalidArgumentError(f"invalid guest.cpu_kind {guest['cpu_kind']!r}: must be shared or performance")
    guest["cpus"] = _int(guest["cpus"], "guest.cpus", 1, MAX_CPUS[guest["cpu_kind"]])
    guest["memory_mb"] = _int(guest["memory_mb"], "guest.memory_mb", 256, 256 * 1024)
    if guest["memory_mb"] % 256:
        raise InvalidArgumentError(f"invalid guest.memory_mb {guest['memory_mb']}: must be a multiple of 256")
    config["guest"] = guest
    return guest


def _service(raw: object, index: int) -> ServiceSpec:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid services[{index}]: must be an object")
    protocol = raw.get("protocol", "tcp")
    if protocol not in ("tcp", "udp"):
        raise InvalidArgumentError(f"invalid services[{index}].protocol {protocol!r}: must be tcp or udp")
    internal_port = _int(raw.get("internal_port"), f"services[{index}].internal_port", 1, 65535)
    autostart = raw.get("autostart", True)
    if not isinstance(autostart, bool):
        raise InvalidArgumentError(f"invalid services[{index}].autostart: must be a boolean")
    concurrency = raw.get("concurrency") or {}
    if not isinstance(concurrency, dict):
        raise InvalidArgumentError(f"invalid services[{index}].concurrency: must be an object")
    ctype = concurrency.get("type", "connections")
    if ctype not in ("connections", "requests"):
        raise InvalidArgumentError(f"invalid services[{index}].concurrency.type {ctype!r}")
    return ServiceSpec(
        protocol=protocol,
        internal_port=internal_port,
        ports=tuple(_port(p, index) for p in raw.get("ports") or []),
        autostop=_autostop(raw.get("autostop", "off"), index),
        autostart=autostart,
        min_machines_running=_int(raw.get("min_machines_running", 0), "min_machines_running", 0, 1000),
        concurrency_type=ctype,
        soft_limit=_int(concurrency.get("soft_limit", 20), "concurrency.soft_limit", 0, 1_000_000),
        hard_limit=_int(concurrency.get("hard_limit", 0), "concurrency.hard_limit", 0, 1_000_000),
        **_busy(raw.get("aerodrome_busy"), index),
    )


def _busy(raw: object, index: int) -> dict[str, float]:
    """`services[].aerodrome_busy {cpu_percent, io_bytes_per_second}`: an aerodrome extension, not Fly's."""
    if raw is None:
        return {}
    field = f"services[{index}].aerodrome_busy"
    if not isinstance(raw, dict) or set(raw) - {"cpu_percent", "io_bytes_per_second"}:
        raise InvalidArgumentError(f"invalid {field}: an object of cpu_percent and io_bytes_per_second")
    values = {}
    for key, name, high in (
        ("cpu_percent", "busy_cpu_percent", 100.0 * 1024),
        ("io_bytes_per_second", "busy_io_bytes_per_second", 1e15),
    ):
        value = raw.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            raise InvalidArgumentError(f"invalid {field}.{key}: a number between 0 and {high:g}")
        values[name] = float(value)
    return values


def _echo_service(spec: ServiceSpec, raw: JSON) -> JSON:
    # Fly serialises autostop as false | true | "suspend" (fly-go MachineAutostop).
    echoed = dict(raw)
    echoed["autostop"] = {"off": False, "stop": True, "suspend": "suspend"}[spec.autostop]
    echoed.setdefault("protocol", spec.protocol)
    return echoed


def _autostop(value: object, index: int) -> str:
    if value is None or value is False:
        return "off"
    if value is True:
        return "stop"
    if isinstance(value, str) and value in AUTOSTOP_VALUES:
        return value
    raise InvalidArgumentError(f"invalid services[{index}].autostop {value!r}: must be off, stop or suspend")


def _port(raw: object, index: int) -> PortSpec:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid services[{index}].ports: each port must be an object")
    port = raw.get("port", raw.get("start_port"))
    handlers = raw.get("handlers") or []
    if not isinstance(handlers, list) or not all(isinstance(h, str) for h in handlers):
        raise InvalidArgumentError(f"invalid services[{index}].ports.handlers: must be a list of strings")
    return PortSpec(
        port=_int(port, f"services[{index}].ports.port", 1, 65535),
        handlers=tuple(handlers),
        force_https=bool(raw.get("force_https", False)),
    )


def _mount(raw: object) -> MountSpec:
    if not isinstance(raw, dict):
        raise InvalidArgumentError("invalid mounts: each mount must be an object")
    volume, path = raw.get("volume") or raw.get("name"), raw.get("path")
    if not isinstance(volume, str) or not volume:
        raise InvalidArgumentError("invalid mounts: volume is required")
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise InvalidArgumentError(f"invalid mounts: path {path!r} must be an absolute path other than /")
    threshold, add, limit = (raw.get(k) or 0 for k in ("extend_threshold_percent", "add_size_gb", "size_gb_limit"))
    if threshold or add or limit:
        _int(threshold, "mounts.extend_threshold_percent", 50, 99)
        _int(add, "mounts.add_size_gb", 1, 100)
        _int(limit, "mounts.size_gb_limit", 0, 500)  # optional, as in flyctl: 0 or absent means no limit
    return MountSpec(volume, path, int(threshold), int(add), int(limit))


def parse_guest_file(raw: object) -> GuestFile:
    """One of Fly's `files` entries ({guest_path, raw_value, mode})."""
    return _file(raw)


def _file(raw: object) -> GuestFile:
    if not isinstance(raw, dict):
        raise InvalidArgumentError("invalid files: each file must be an object")
    path = raw.get("guest_path")
    if isinstance(path, str):
        parse_text(path, "files.guest_path", MAX_PATH)
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgumentError(f"invalid files: guest_path {path!r} must be absolute")
    if ".." in path.split("/"):
        raise InvalidArgumentError(f"invalid files: guest_path {path!r} escapes the root filesystem")
    mode = _int(raw.get("mode", 0o644), "files.mode", 0, 0o7777)
    secret_name = raw.get("secret_name")
    if secret_name is not None and secret_name != "":
        if not isinstance(secret_name, str) or raw.get("raw_value"):
            raise InvalidArgumentError(f"invalid files: {path} takes one of raw_value or secret_name (a string)")
        return GuestFile(path, b"", mode, parse_text(secret_name, "files.secret_name", 256))
    try:
        data = base64.b64decode(raw.get("raw_value") or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(f"invalid files: raw_value of {path} is not base64") from None
    return GuestFile(path, data, mode)


def _argv(config: JSON, key: str) -> tuple[str, ...]:
    """`init.<key>`, else the process's `<key>`: flyctl's `machine run --entrypoint/--command` and fly.toml
    `[processes]` put them in `processes[0]`."""
    return _strings(_dict(config, "init"), key, "init") or _strings(_process(config), key, "processes[0]")


def _strings(source: JSON, key: str, where: str) -> tuple[str, ...]:
    value = source.get(key) or []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InvalidArgumentError(f"invalid {where}.{key}: must be a list of strings")
    if len(value) > MAX_ITEMS:
        raise InvalidArgumentError(f"invalid {where}.{key}: {len(value)} arguments, at most {MAX_ITEMS} allowed")
    return tuple(parse_text(a, f"{where}.{key}[{i}]", MAX_VALUE) for i, a in enumerate(value))


def _process(config: JSON) -> JSON:
    """The machine's one process (`config.processes[0]`); a machine here runs one, so more are refused."""
    processes = _list(config, "processes")
    if len(processes) > 1:
        raise InvalidArgumentError(f"invalid processes: {len(processes)} given, a machine runs at most one")
    if processes and not isinstance(processes[0], dict):
        raise InvalidArgumentError("invalid processes[0]: must be an object")
    return processes[0] if processes else {}


def _env(config: JSON) -> dict[str, str]:
    env = _dict(config, "env")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise InvalidArgumentError("invalid env: keys and values must be strings")
    process_env = _dict(_process(config), "env")  # a process's env adds to the machine's, and wins
    env = {**env, **process_env}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise InvalidArgumentError("invalid processes[0].env: keys and values must be strings")
    if any("=" in k for k in env):
        raise InvalidArgumentError("invalid env: a variable's name must not contain '='")
    return parse_string_map(env, "env")


def _dict(config: JSON, key: str) -> JSON:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"invalid {key}: must be an object")
    return value


def _list(config: JSON, key: str) -> list[Any]:
    value = config.get(key) or []
    if not isinstance(value, list):
        raise InvalidArgumentError(f"invalid {key}: must be a list")
    if len(value) > MAX_ITEMS:
        raise InvalidArgumentError(f"invalid {key}: {len(value)} entries, at most {MAX_ITEMS} allowed")
    return value


def _int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"invalid {name}: {value!r} is not an integer")
    if not low <= value <= high:
        raise InvalidArgumentError(f"invalid {name}: {value} must be between {low} and {high}")
    return value
