"""The config flags `machine run` and `machine update` share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from aerodrome.cli.machine_specs import RunFlags

Name = Annotated[str, typer.Option("--name", help="The machine's name (else one is made up).")]
Region = Annotated[str, typer.Option("--region", "-r", help="Region (else the server's).")]
Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE, repeatable.")]
Cmd = Annotated[str | None, typer.Option("--cmd", help="The command, as a shell would split it.")]
Entrypoint = Annotated[str | None, typer.Option("--entrypoint", help="Instead of the image's.")]
Cpus = Annotated[int | None, typer.Option("--vm-cpus", min=1, help="CPUs.")]
Memory = Annotated[int | None, typer.Option("--vm-memory", min=1, help="Memory in MB.")]
CpuKind = Annotated[str | None, typer.Option("--vm-cpu-kind", help="shared or performance.")]
Volume = Annotated[list[str] | None, typer.Option("--volume", "-v", help="VOLUME:/path, repeatable.")]
PortFlag = Annotated[list[str] | None, typer.Option("--port", "-p", help="80:8080/tcp:http, repeatable.")]
Autostop = Annotated[str | None, typer.Option("--autostop", help="stop, suspend or off, for --port's.")]
Autostart = Annotated[bool | None, typer.Option("--autostart/--no-autostart", help="Start on a request to --port's.")]
RestartFlag = Annotated[str | None, typer.Option("--restart", help="no, always or on-failure.")]
Metadata = Annotated[list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE, repeatable.")]
FileLocal = Annotated[
    list[str] | None, typer.Option("--file-local", help="/GUEST/PATH=LOCAL_FILE: the file put in the machine.")
]
Detach = Annotated[bool, typer.Option("--detach", "-d", help="Do not wait for the machine to start.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for it to start.")]


def run_flags(
    image: str | None,
    *,
    env: list[str] | None = None,
    cmd: str | None = None,
    entrypoint: str | None = None,
    vm_cpus: int | None = None,
    vm_memory: int | None = None,
    vm_cpu_kind: str | None = None,
    volume: list[str] | None = None,
    port: list[str] | None = None,
    autostop: str | None = None,
    autostart: bool | None = None,
    restart: str | None = None,
    metadata: list[str] | None = None,
    file_local: list[str] | None = None,
) -> RunFlags:
    return RunFlags(
        image=image,
        env=env or [],
        cmd=cmd,
        entrypoint=entrypoint,
        cpus=vm_cpus,
        memory_mb=vm_memory,
        cpu_kind=vm_cpu_kind,
        volumes=volume or [],
        ports=port or [],
        autostop=autostop,
        autostart=autostart,
        restart=restart,
        metadata=metadata or [],
        files=file_local or [],
    )
