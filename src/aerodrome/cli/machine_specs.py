"""`machine run`'s and `machine update`'s flags turned into a machine config: `--env K=V`, `--port 80:8080/tcp:http`,
`--volume vol:/path`, `--cmd`, `--entrypoint`, guest size, autostop/autostart, the restart policy and
`--file-local guest=local`. A flag not given leaves that part of the config as it was (`apply_flags`)."""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from aerodrome.cli.session import UsageError
from aerodrome.client import File, Guest, Init, MachineConfig, Mount, Port, Restart, Service

AUTOSTOP = ("stop", "suspend", "off")
RESTART_POLICIES = ("no", "always", "on-failure")
PROTOCOLS = ("tcp", "udp")
MAX_LOCAL_FILE = 1 << 20  # a config is one JSON request: a larger file belongs in the image or on a volume


def parse_env(values: list[str], flag: str = "--env") -> dict[str, str]:
    env = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} {value!r}: use NAME=VALUE")
        env[name] = setting
    return env


@dataclass(frozen=True, slots=True)
class PortSpec:
    """`80:8080/tcp:http:tls`: the public port, the machine's port (the same when left out), the protocol
    (`tcp` when left out) and the handlers, as `fly machine run --port` reads it."""

    port: int
    internal_port: int
    protocol: str = "tcp"
    handlers: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, value: str) -> PortSpec:
        ports, _, rest = value.partition("/")
        public, _, internal = ports.partition(":")
        protocol, *handlers = rest.split(":") if rest else ["tcp"]
        try:
            port, internal_port = int(public), int(internal or public)
        except ValueError:
            raise UsageError(f"--port {value!r}: use PORT[:INTERNAL_PORT][/PROTOCOL[:HANDLER…]]") from None
        if not (0 < port < 65536 and 0 < internal_port < 65536):
            raise UsageError(f"--port {value!r}: ports are 1 to 65535")
        if protocol not in PROTOCOLS:
            raise UsageError(f"--port {value!r}: the protocol is tcp or udp")
        return cls(port, internal_port, protocol, tuple(h for h in handlers if h))


def services(ports: list[str], autostop: str | None, autostart: bool | None) -> list[Service]:
    """One service per (internal port, protocol), with its public ports."""
    if autostop is not None and autostop not in AUTOSTOP:
        raise UsageError(f"--autostop {autostop!r}: one of {', '.join(AUTOSTOP)}")
    grouped: dict[tuple[int, str], list[PortSpec]] = {}
    for value in ports:
        spec = PortSpec.parse(value)
        grouped.setdefault((spec.internal_port, spec.protocol), []).append(spec)
    return [
        Service(
            protocol=protocol,
            internal_port=internal_port,
            ports=[Port(port=s.port, handlers=list(s.handlers) or None) for s in specs],
            autostop=autostop,
            autostart=autostart,
        )
        for (internal_port, protocol), specs in grouped.items()
    ]


def mounts(values: list[str], flag: str = "--volume") -> list[Mount]:
    parsed = []
    for value in values:
        volume, sep, path = value.partition(":")
        if not sep or not volume or not path.startswith("/"):
            raise UsageError(f"{flag} {value!r}: use VOLUME:/path (a volume's id or name)")
        parsed.append(Mount(volume=volume, path=path))
    return parsed


def command_line(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise UsageError(f"{flag} {value!r}: {exc}") from None
    if not words:
        raise UsageError(f"{flag} is empty")
    return words


def local_files(values: list[str]) -> list[File]:
    """`--file-local /guest/path=./local/file`: the local file's bytes, sent as Fly's `raw_value` (base64)."""
    files = []
    for value in values:
        guest, sep, local = value.partition("=")
        if not sep or not guest.startswith("/") or not local:
            raise UsageError(f"--file-local {value!r}: use /GUEST/PATH=LOCAL_FILE")
        path = Path(local)
        try:
            if path.stat().st_size > MAX_LOCAL_FILE:
                raise UsageError(f"--file-local {value!r}: {local} is over {MAX_LOCAL_FILE} bytes")
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--file-local {value!r}: {exc.strerror or exc}") from None
        files.append(File(guest_path=guest, raw_value=base64.b64encode(data).decode()))
    return files


@dataclass(frozen=True, slots=True)
class RunFlags:
    """The flags as given; None (or empty) is "not given"."""

    image: str | None = None
    env: list[str] = field(default_factory=list)
    cmd: str | None = None
    entrypoint: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    cpu_kind: str | None = None
    volumes: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    autostop: str | None = None
    autostart: bool | None = None
    restart: str | None = None
    metadata: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def machine_config(flags: RunFlags) -> MachineConfig:
    """A new machine's config: only what the flags say."""
    return apply_flags(MachineConfig(image=flags.image or ""), flags)


def _guest(current: Guest | None, flags: RunFlags) -> Guest | None:
    if flags.cpus is None and flags.memory_mb is None and flags.cpu_kind is None:
        return current
    base = current or Guest(cpu_kind="shared", cpus=1, memory_mb=256)
    changes = {"cpu_kind": flags.cpu_kind, "cpus": flags.cpus, "memory_mb": flags.memory_mb}
    return base.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _init(current: Init | None, flags: RunFlags) -> Init | None:
    cmd, entrypoint = command_line(flags.cmd, "--cmd"), command_line(flags.entrypoint, "--entrypoint")
    if not cmd and not entrypoint:
        return current
    changes = {"cmd": cmd, "entrypoint": entrypoint}
    return (current or Init()).model_copy(update={k: v for k, v in changes.items() if v})


def _services(current: list[Service] | None, flags: RunFlags) -> list[Service] | None:
    """From `--port` when given; else `--autostop`/`--autostart` alone change the services there are."""
    given = services(flags.ports, flags.autostop, flags.autostart)
    if given or not current:
        return given or current
    changes = {"autostop": flags.autostop, "autostart": flags.autostart}
    return [s.model_copy(update={k: v for k, v in changes.items() if v is not None}) for s in current]


def _merged_files(current: list[File] | None, added: list[File]) -> list[File] | None:
    if not added:
        return current
    kept = [f for f in current or [] if f.guest_path not in {a.guest_path for a in added}]
    return kept + added


def apply_flags(config: MachineConfig, flags: RunFlags) -> MachineConfig:
    """`config` with what the flags give over it: env and metadata merged, files merged by guest path, the
    guest's given fields, and the services (from `--port`), mounts and restart policy replaced when given."""
    if flags.restart is not None and flags.restart not in RESTART_POLICIES:
        raise UsageError(f"--restart {flags.restart!r}: one of {', '.join(RESTART_POLICIES)}")
    env = {**(config.env or {}), **parse_env(flags.env)}
    metadata = {**(config.metadata or {}), **parse_env(flags.metadata, "--metadata")}
    changes = {
        "image": flags.image or config.image,
        "env": env or None,
        "init": _init(config.init, flags),
        "guest": _guest(config.guest, flags),
        "services": _services(config.services, flags),
        "mounts": mounts(flags.volumes) or config.mounts,
        "restart": Restart(policy=flags.restart) if flags.restart else config.restart,
        "metadata": metadata or None,
        "files": _merged_files(config.files, local_files(flags.files)),
    }
    return config.model_copy(update=changes)
