"""`machine run`'s flags turned into a machine config: `--env K=V`, `--port 80:8080/tcp:http`, `--volume vol:/path`,
`--cmd`, `--entrypoint`, guest size, autostop/autostart and the restart policy."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from aerodrome.cli.session import UsageError
from aerodrome.client import Guest, Init, MachineConfig, Mount, Port, Restart, Service

AUTOSTOP = ("stop", "suspend", "off")
RESTART_POLICIES = ("no", "always", "on-failure")
PROTOCOLS = ("tcp", "udp")


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


def mounts(values: list[str]) -> list[Mount]:
    parsed = []
    for value in values:
        volume, sep, path = value.partition(":")
        if not sep or not volume or not path.startswith("/"):
            raise UsageError(f"--volume {value!r}: use VOLUME:/path (a volume's id or name)")
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


@dataclass(frozen=True, slots=True)
class RunFlags:
    image: str
    env: list[str]
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


def machine_config(flags: RunFlags) -> MachineConfig:
    if flags.restart is not None and flags.restart not in RESTART_POLICIES:
        raise UsageError(f"--restart {flags.restart!r}: one of {', '.join(RESTART_POLICIES)}")
    cmd, entrypoint = command_line(flags.cmd, "--cmd"), command_line(flags.entrypoint, "--entrypoint")
    guest = None
    if flags.cpus is not None or flags.memory_mb is not None or flags.cpu_kind is not None:
        guest = Guest(cpu_kind=flags.cpu_kind or "shared", cpus=flags.cpus or 1, memory_mb=flags.memory_mb or 256)
    return MachineConfig(
        image=flags.image,
        env=parse_env(flags.env) or None,
        init=Init(cmd=cmd, entrypoint=entrypoint) if cmd or entrypoint else None,
        guest=guest,
        services=services(flags.ports, flags.autostop, flags.autostart) or None,
        mounts=mounts(flags.volumes) or None,
        restart=Restart(policy=flags.restart) if flags.restart else None,
        metadata=parse_env(flags.metadata, "--metadata") or None,
    )
