"""`aerodrome volumes`: create, list, show, extend, fork, destroy, and snapshots."""

from __future__ import annotations

from typing import Annotated

import typer

from aerodrome.cli.machines import AppOption
from aerodrome.cli.progress import activity, shown
from aerodrome.cli.session import Session, api_command
from aerodrome.client import CreateVolumeRequest, Snapshot, Volume

app = typer.Typer(help="Volumes: ext4 filesystems that outlive machines.", no_args_is_help=True)
snapshots_app = typer.Typer(help="A volume's snapshots.", no_args_is_help=True)
app.add_typer(snapshots_app, name="snapshots")

VolumeId = Annotated[str, typer.Argument(help="The volume's id (vol_…).")]


def _size(volume: Volume) -> str:
    used = f", {volume.bytes_used / 2**20:.1f} MiB used" if volume.bytes_total else ""
    return f"{volume.size_gb} GB{used}"


def _show(session: Session, volumes: list[Volume]) -> None:
    session.table(
        ("ID", "NAME", "STATE", "SIZE", "REGION", "ATTACHED TO", "CREATED"),
        [(v.id, v.name, v.state, _size(v), v.region, v.attached_machine_id, v.created_at) for v in volumes],
        empty="no volumes",
    )


@api_command(app, "create")
def create(
    session: Session,
    name: Annotated[str, typer.Argument(help="The volume's name (mounts may name it).")],
    app_name: AppOption,
    region: Annotated[str, typer.Option("--region", "-r", help="Region (else the server's).")] = "",
    size: Annotated[int, typer.Option("--size", "-s", min=1, help="Size in GB.")] = 1,
    snapshot_id: Annotated[str, typer.Option("--snapshot-id", help="Restore this snapshot.")] = "",
    source: Annotated[str, typer.Option("--fork-from", help="Copy this volume (id).")] = "",
) -> None:
    """Create a volume (empty, from a snapshot, or a copy of another volume)."""
    request = CreateVolumeRequest(
        name=name,
        region=region or None,
        size_gb=size,
        snapshot_id=snapshot_id or None,
        source_volume_id=source or None,
    )
    volume = session.client.create_volume(app_name, request)
    session.emit(volume, f"created volume {volume.id} ({volume.name}, {volume.size_gb} GB) in {volume.region}")


@api_command(app, "list")
def list_(session: Session, app_name: AppOption) -> None:
    """List the app's volumes."""
    volumes = session.client.list_volumes(app_name)
    session.emit(volumes, lambda: _show(session, volumes))


@api_command(app, "show")
def show(session: Session, volume_id: VolumeId, app_name: AppOption) -> None:
    """One volume, with its usage read from the filesystem."""
    volume = session.client.get_volume(app_name, volume_id)
    session.emit(volume, lambda: _show(session, [volume]))


@api_command(app, "extend")
def extend(
    session: Session,
    volume_id: VolumeId,
    app_name: AppOption,
    size: Annotated[int, typer.Option("--size", "-s", min=1, help="The new size in GB.")],
) -> None:
    """Grow a volume (a mounted one may need its machine restarted: said so)."""
    result = session.client.extend_volume(app_name, volume_id, size)
    restart = "; restart its machine to use it" if result.needs_restart else ""
    session.emit(result, f"volume {volume_id} is now {result.volume.size_gb} GB{restart}")


@api_command(app, "fork")
def fork(
    session: Session,
    volume_id: VolumeId,
    app_name: AppOption,
    name: Annotated[str, typer.Option("--name", help="The copy's name (else the source's).")] = "",
    region: Annotated[str, typer.Option("--region", "-r", help="Region (else the source's).")] = "",
) -> None:
    """A new volume with a copy of this one's data (a mounted one is frozen while it is copied)."""
    source = session.client.get_volume(app_name, volume_id)
    request = CreateVolumeRequest(
        name=name or source.name, region=region or source.region or None, source_volume_id=source.id
    )
    with activity(session.status_console, shown(session.status_console, session.json), f"forking {volume_id}"):
        volume = session.client.create_volume(app_name, request)
    session.emit(volume, f"forked {volume_id} into volume {volume.id} ({volume.name}, {volume.size_gb} GB)")


@api_command(app, "destroy")
def destroy(session: Session, volume_id: VolumeId, app_name: AppOption) -> None:
    """Destroy a volume and its data (not while a machine holds it)."""
    volume = session.client.destroy_volume(app_name, volume_id)
    session.emit(volume, f"destroyed volume {volume_id}")


def _show_snapshots(session: Session, snapshots: list[Snapshot]) -> None:
    session.table(
        ("ID", "STATUS", "SIZE", "CREATED", "RETENTION DAYS"),
        [(s.id, s.status, s.size, s.created_at, s.retention_days) for s in snapshots],
        empty="no snapshots",
    )


@api_command(snapshots_app, "list")
def snapshots_list(session: Session, volume_id: VolumeId, app_name: AppOption) -> None:
    """A volume's snapshots."""
    snapshots = session.client.list_snapshots(app_name, volume_id)
    session.emit(snapshots, lambda: _show_snapshots(session, snapshots))


@api_command(snapshots_app, "create")
def snapshots_create(session: Session, volume_id: VolumeId, app_name: AppOption) -> None:
    """Snapshot a volume (a mounted one is frozen while it is copied)."""
    with activity(session.status_console, shown(session.status_console, session.json), f"snapshotting {volume_id}"):
        snapshot = session.client.create_snapshot(app_name, volume_id)
    session.emit(snapshot, f"created snapshot {snapshot.id} of {volume_id} ({snapshot.size} bytes)")
