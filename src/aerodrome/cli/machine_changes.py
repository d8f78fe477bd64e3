"""`machine update` (the flags of `run` applied over the machine's config) and `machine clone` (a new machine
from another's config, with a fork of each volume it mounts, as flyctl makes them)."""

from __future__ import annotations

from typing import Annotated

import typer

from aerodrome.cli import machine_flags as flags
from aerodrome.cli.machine_specs import apply_flags, mounts
from aerodrome.cli.machines import AppOption, MachineId, app, create_with_spinner, machine_line, wait_with_spinner
from aerodrome.cli.session import Session, api_command
from aerodrome.client import (
    CreateMachineRequest,
    CreateVolumeRequest,
    Machine,
    Mount,
    NotFoundError,
    UpdateMachineRequest,
    Volume,
)

__all__ = ["app"]


@api_command(app, "update")
def update(
    session: Session,
    machine_id: MachineId,
    app_name: AppOption,
    image: Annotated[str | None, typer.Option("--image", "-i", help="A new image.")] = None,
    env: flags.Env = None,
    cmd: flags.Cmd = None,
    entrypoint: flags.Entrypoint = None,
    vm_cpus: flags.Cpus = None,
    vm_memory: flags.Memory = None,
    vm_cpu_kind: flags.CpuKind = None,
    volume: flags.Volume = None,
    port: flags.PortFlag = None,
    autostop: flags.Autostop = None,
    autostart: flags.Autostart = None,
    restart: flags.RestartFlag = None,
    metadata: flags.Metadata = None,
    file_local: flags.FileLocal = None,
    skip_start: Annotated[bool, typer.Option("--skip-start", help="Leave it stopped after the update.")] = False,
    detach: flags.Detach = False,
    timeout: flags.Timeout = 120.0,
) -> None:
    """Change a machine's config: only what the flags give, over its current config; it is restarted with it
    (unless --skip-start). Refused when the machine changed meanwhile (its version is sent along)."""
    machine = session.client.get_machine(app_name, machine_id)
    given = flags.run_flags(
        image, env=env, cmd=cmd, entrypoint=entrypoint, vm_cpus=vm_cpus, vm_memory=vm_memory,
        vm_cpu_kind=vm_cpu_kind, volume=volume, port=port, autostop=autostop, autostart=autostart,
        restart=restart, metadata=metadata, file_local=file_local,
    )  # fmt: skip
    request = UpdateMachineRequest(
        config=apply_flags(machine.config, given),
        current_version=machine.instance_id or None,
        skip_launch=skip_start or None,
    )
    updated = session.client.update_machine(app_name, machine_id, request)
    if not (detach or skip_start):
        updated = wait_with_spinner(session, app_name, updated, "started", timeout)
    session.emit(updated, machine_line(updated))


def _mounted_volume(volumes: list[Volume], mount: Mount, machine_id: str) -> Volume:
    """The volume a mount names: by id, or by name (a config may name it) the one this machine holds."""
    for volume in volumes:
        if volume.id == mount.volume or (volume.name == mount.volume and volume.attached_machine_id == machine_id):
            return volume
    raise NotFoundError(f"volume {mount.volume!r} mounted at {mount.path} not found", status=404)


def _forked_mounts(session: Session, app_name: str, source: Machine, region: str) -> list[Mount]:
    """A fork of each mounted volume (same name and size), mounted where the source's was."""
    volumes = session.client.list_volumes(app_name)
    forked = []
    for mount in source.config.mounts or []:
        origin = _mounted_volume(volumes, mount, source.id)
        request = CreateVolumeRequest(name=origin.name, region=region or origin.region, source_volume_id=origin.id)
        volume = session.client.create_volume(app_name, request)
        forked.append(mount.model_copy(update={"volume": volume.id, "name": None}))
    return forked


@api_command(app, "clone")
def clone(
    session: Session,
    machine_id: Annotated[str, typer.Argument(help="The machine to copy.")],
    app_name: AppOption,
    name: flags.Name = "",
    region: flags.Region = "",
    attach_volume: Annotated[
        list[str] | None,
        typer.Option("--attach-volume", help="VOLUME:/path: mount this existing volume instead of a fork."),
    ] = None,
    detach: flags.Detach = False,
    timeout: flags.Timeout = 120.0,
) -> None:
    """Create a machine with another's config; each volume the source mounts is forked for it (or given with
    --attach-volume)."""
    source = session.client.get_machine(app_name, machine_id)
    attached = mounts(attach_volume or [], "--attach-volume")
    config = source.config
    if config.mounts or attached:
        chosen = attached or _forked_mounts(session, app_name, source, region)
        config = config.model_copy(update={"mounts": chosen})
    request = CreateMachineRequest(config=config, name=name or None, region=region or source.region or None)
    machine = create_with_spinner(session, app_name, request)
    if not detach:
        machine = wait_with_spinner(session, app_name, machine, "started", timeout)
    session.emit(machine, machine_line(machine))
