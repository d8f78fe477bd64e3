"""Conversions between table rows and the core's frozen dataclasses: the only place that knows both shapes."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import Row

from aerodrome.core import (
    App,
    Certificate,
    IPAddress,
    Lease,
    Machine,
    MachineEvent,
    MachineState,
    MachineVersion,
    Organization,
    Secret,
    Token,
    Volume,
    VolumeSnapshot,
)
from aerodrome.store.schema import machines

Values = dict[str, Any]


def org_from_row(row: Row[Any]) -> Organization:
    return Organization(slug=row.slug, name=row.name, id=row.id, internal_numeric_id=row.internal_numeric_id)


def token_from_row(row: Row[Any]) -> Token:
    return Token(
        id=row.id,
        org_slug=row.org_slug,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        app_name=row.app_name,
        expires_at=row.expires_at,
    )


def app_to_row(app: App) -> Values:
    return {
        "id": app.id,
        "name": app.name,
        "org_slug": app.org_slug,
        "network": app.network,
        "internal_numeric_id": app.internal_numeric_id,
        "created_at": app.created_at,
        "status": app.status,
    }


def app_from_row(row: Row[Any]) -> App:
    return App(
        id=row.id,
        name=row.name,
        org_slug=row.org_slug,
        network=row.network,
        internal_numeric_id=row.internal_numeric_id,
        created_at=row.created_at,
        status=row.status,
    )


def lease_to_row(lease: Lease | None) -> Values:
    if lease is None:
        return dict.fromkeys(
            ("lease_nonce", "lease_owner", "lease_description", "lease_expires_at", "lease_version"), None
        )
    return {
        "lease_nonce": lease.nonce,
        "lease_owner": lease.owner,
        "lease_description": lease.description,
        "lease_expires_at": lease.expires_at,
        "lease_version": lease.version,
    }


def machine_to_row(machine: Machine) -> Values:
    return {
        "id": machine.id,
        "app_name": machine.app_name,
        "name": machine.name,
        "region": machine.region,
        "state": machine.state.value,
        "instance_id": machine.instance_id,
        "config": machine.config,
        "private_ip": machine.private_ip,
        "private_ipv4": machine.private_ipv4,
        "image_ref": machine.image_ref,
        "created_at": machine.created_at,
        "updated_at": machine.updated_at,
        "host": machine.host,
        "cordoned": machine.cordoned,
        "restart_count": machine.restart_count,
        "deleted": machine.deleted,
        **lease_to_row(machine.lease),
        "row_version": machine.row_version,
    }


# Rows of `select(machines)` come in table order and are unpacked by position, several times faster than by
# attribute name, which matters when a listing maps ten thousand of them. The order is checked at import.
_MACHINE_COLUMNS = (
    "id", "app_name", "name", "region", "state", "instance_id", "config", "private_ip", "private_ipv4",
    "image_ref", "created_at", "updated_at", "host", "cordoned", "restart_count", "deleted",
    "lease_nonce", "lease_owner", "lease_description", "lease_expires_at", "lease_version", "row_version",
)  # fmt: skip
assert tuple(column.name for column in machines.columns) == _MACHINE_COLUMNS, "machines changed: update the mapping"
_MACHINE_FIELDS = (
    "id", "app_name", "name", "region", "state", "instance_id", "config", "private_ip", "image_ref", "created_at",
    "updated_at", "host", "cordoned", "lease", "restart_count", "deleted", "private_ipv4", "row_version",
)  # fmt: skip
assert tuple(f.name for f in fields(Machine)) == _MACHINE_FIELDS, "Machine changed: update the mapping"
_STATES = {state.value: state for state in MachineState}


def machine_from_row(row: Row[Any]) -> Machine:
    values: Any = row  # a Row unpacks like the tuple it is
    (
        id_, app_name, name, region, state, instance_id, config, private_ip, private_ipv4,
        image_ref, created_at, updated_at, host, cordoned, restart_count, deleted,
        lease_nonce, lease_owner, lease_description, lease_expires_at, lease_version, row_version,
    ) = values  # fmt: skip
    lease = None
    if lease_nonce is not None:
        lease = Lease(lease_nonce, lease_owner, lease_description, lease_expires_at, lease_version)
    return Machine(  # positionally, in the order _MACHINE_FIELDS checks
        id_,
        app_name,
        name,
        region,
        _STATES[state],
        instance_id,
        config,
        private_ip,
        image_ref,
        created_at,
        updated_at,
        host,
        cordoned,
        lease,
        restart_count,
        deleted,
        private_ipv4,
        row_version,
    )


def version_to_row(machine: Machine) -> Values:
    """The version a machine runs now: its instance id and config, dated by its last update."""
    return {
        "machine_id": machine.id,
        "version": machine.instance_id,
        "config": machine.config,
        "created_at": machine.updated_at,
    }


def version_from_row(row: Row[Any]) -> MachineVersion:
    return MachineVersion(version=row.version, config=row.config, created_at=row.created_at)


def event_to_row(event: MachineEvent) -> Values:
    return {
        "id": event.id,
        "machine_id": event.machine_id,
        "type": event.type,
        "status": event.status,
        "source": event.source,
        "timestamp": event.timestamp,
        "request": event.request,
    }


def event_from_row(row: Row[Any]) -> MachineEvent:
    return MachineEvent(
        id=row.id,
        machine_id=row.machine_id,
        type=row.type,
        status=row.status,
        source=row.source,
        timestamp=row.timestamp,
        request=row.request,
    )


def volume_to_row(volume: Volume) -> Values:
    return {
        "id": volume.id,
        "app_name": volume.app_name,
        "name": volume.name,
        "region": volume.region,
        "size_gb": volume.size_gb,
        "fstype": volume.fstype,
        "state": volume.state,
        "created_at": volume.created_at,
        "attached_machine_id": volume.attached_machine_id,
        "encrypted": volume.encrypted,
        "snapshot_retention": volume.snapshot_retention,
        "auto_backup_enabled": volume.auto_backup_enabled,
        "host": volume.host,
    }


def volume_from_row(row: Row[Any]) -> Volume:
    return Volume(
        id=row.id,
        app_name=row.app_name,
        name=row.name,
        region=row.region,
        size_gb=row.size_gb,
        fstype=row.fstype,
        state=row.state,
        created_at=row.created_at,
        attached_machine_id=row.attached_machine_id,
        encrypted=row.encrypted,
        snapshot_retention=row.snapshot_retention,
        auto_backup_enabled=row.auto_backup_enabled,
        host=row.host,
    )


def snapshot_to_row(snapshot: VolumeSnapshot) -> Values:
    return {
        "id": snapshot.id,
        "volume_id": snapshot.volume_id,
        "size": snapshot.size,
        "volume_size": snapshot.volume_size,
        "digest": snapshot.digest,
        "status": snapshot.status,
        "created_at": snapshot.created_at,
        "retention_days": snapshot.retention_days,
    }


def snapshot_from_row(row: Row[Any]) -> VolumeSnapshot:
    return VolumeSnapshot(
        id=row.id,
        volume_id=row.volume_id,
        size=row.size,
        volume_size=row.volume_size,
        digest=row.digest,
        status=row.status,
        created_at=row.created_at,
        retention_days=row.retention_days,
    )


def secret_to_row(secret: Secret, version: int) -> Values:
    return {
        "app_name": secret.app_name,
        "name": secret.name,
        "ciphertext": secret.ciphertext,
        "digest": secret.digest,
        "version": version,
        "created_at": secret.created_at,
        "updated_at": secret.updated_at,
    }


def secret_from_row(row: Row[Any]) -> Secret:
    return Secret(
        app_name=row.app_name,
        name=row.name,
        ciphertext=bytes(row.ciphertext),
        digest=row.digest,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def ip_to_row(ip: IPAddress) -> Values:
    return {
        "id": ip.id,
        "app_name": ip.app_name,
        "address": ip.address,
        "type": ip.type,
        "region": ip.region,
        "network": ip.network,
        "service_name": ip.service_name,
        "created_at": ip.created_at,
    }


def ip_from_row(row: Row[Any]) -> IPAddress:
    return IPAddress(
        id=row.id,
        app_name=row.app_name,
        address=row.address,
        type=row.type,
        region=row.region,
        network=row.network,
        service_name=row.service_name,
        created_at=row.created_at,
    )


def certificate_to_row(certificate: Certificate) -> Values:
    return {
        "hostname": certificate.hostname,
        "app_name": certificate.app_name,
        "source": certificate.source,
        "fullchain": certificate.fullchain,
        "key_ciphertext": certificate.key_ciphertext,
        "acme_requested": certificate.acme_requested,
        "created_at": certificate.created_at,
        "updated_at": certificate.updated_at,
    }


def certificate_from_row(row: Row[Any]) -> Certificate:
    return Certificate(
        hostname=row.hostname,
        app_name=row.app_name,
        source=row.source,
        fullchain=row.fullchain,
        key_ciphertext=bytes(row.key_ciphertext),
        acme_requested=row.acme_requested,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
