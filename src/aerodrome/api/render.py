"""Fly's JSON shapes for aerodrome's records: field names and types as `machines-openapi.json` gives them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aerodrome.api.responses import encode
from aerodrome.core import (
    App,
    CheckBoard,
    CheckResult,
    ContainerStatus,
    Lease,
    Machine,
    MachineEvent,
    MachineVersion,
    Organization,
    Volume,
    VolumeSnapshot,
)

JSON = dict[str, Any]

#: Past this many rendered machines the cache starts again empty: a bound, not an eviction policy.
MAX_RENDERED = 100_000


def app_status(record: App, machine_count: int) -> str:
    """Fly's app status: `pending` until the app has a machine (flyctl's first-deploy test), then `deployed`."""
    if record.status == "deployed" and machine_count == 0:
        return "pending"
    return record.status


def app(
    record: App, org: Organization | None, machine_count: int = 0, volume_count: int = 0, *, app_domain: str = ""
) -> JSON:
    return {
        "id": record.id,
        "name": record.name,
        "internal_numeric_id": record.internal_numeric_id,
        "machine_count": machine_count,
        "volume_count": volume_count,
        "network": record.network,
        "status": app_status(record, machine_count),
        "cname_target": f"{record.name}.{app_domain}" if app_domain else "",
        "app_role": "",  # no app has one of Fly's roles (postgres_cluster, remote-docker-builder) here
        "organization": {
            "name": org.name if org else record.org_slug,
            "slug": record.org_slug,
            "internal_numeric_id": org.internal_numeric_id if org else 0,
        },
    }


def event(record: MachineEvent) -> JSON:
    return {
        "id": record.id,
        "type": record.type,
        "status": record.status,
        "source": record.source,
        "timestamp": record.timestamp,
        "request": record.request,
    }


def machine(
    record: Machine,
    events: list[MachineEvent] | None = None,
    *,
    nonce: str | None = None,
    checks: Sequence[CheckResult] = (),
    host_status: str = "ok",
    containers: Sequence[ContainerStatus] | None = None,
) -> JSON:
    body: JSON = {
        "id": record.id,
        "name": record.name,
        "state": record.state.value,
        "region": record.region,
        "instance_id": record.instance_id,
        "version": record.instance_id,
        "private_ip": record.private_ip,
        "config": record.config,
        "image_ref": record.image_ref,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "events": [event(e) for e in events or []],
        "checks": [check.to_json() for check in checks],
        "host_status": host_status,  # "unreachable" while the machine's host agent does not answer
        "cordoned": record.cordoned,
    }
    if nonce:
        body["nonce"] = nonce
    if containers is not None:  # a multi-container machine's, as its host last supervised them
        body["containers"] = [status.to_json() for status in containers]
    return body


def with_lease(body: JSON, record: Machine) -> JSON:
    """`?include_leases=true`: the lease without its nonce (Fly's StrippedLease), or none."""
    lease = record.lease
    if lease is None:
        return {**body, "lease": None}
    return {**body, "lease": {"owner": lease.owner, "description": lease.description, "expires_at": lease.expires_at}}


class RenderedMachines:
    """Each machine's JSON (without events), encoded once per record.

    Records are immutable and the store hands back the same object until the machine changes, so the object
    itself is the key: a changed machine is a new object, rendered afresh. A listing then joins encoded pieces.
    """

    def __init__(self) -> None:
        self._encoded: dict[str, tuple[Machine, tuple[CheckResult, ...], str, bytes]] = {}

    def encoded(self, record: Machine, checks: tuple[CheckResult, ...] = (), host_status: str = "ok") -> bytes:
        """`checks` is the board's tuple, replaced whole on a change: its identity is a key too."""
        entry = self._encoded.get(record.id)
        if entry is not None and entry[0] is record and entry[1] is checks and entry[2] == host_status:
            return entry[3]
        if len(self._encoded) >= MAX_RENDERED:
            self._encoded.clear()
        data = encode(machine(record, checks=checks, host_status=host_status))
        self._encoded[record.id] = (record, checks, host_status, data)
        return data

    def listing(
        self,
        records: list[Machine],
        board: CheckBoard,
        host_status: Callable[[str], str] = lambda _host: "ok",
        containers: Mapping[str, tuple[ContainerStatus, ...]] | None = None,
    ) -> bytes:
        """`host_status` gives Fly's host_status of a host by its name; `containers`, the multi-container
        machines' containers by machine id (those machines are rendered afresh: their containers change apart
        from their records)."""
        pieces = [
            encode(machine(r, checks=board.results(r.id), host_status=host_status(r.host), containers=containers[r.id]))
            if containers and r.id in containers
            else self.encoded(r, board.results(r.id), host_status(r.host))
            for r in records
        ]
        return b"[" + b",".join(pieces) + b"]"


def machine_summary(record: Machine) -> JSON:
    """`?summary=true`: no config, as Fly trims it for large lists."""
    body = machine(record)
    del body["config"], body["events"]
    return body


def org_machine(record: Machine) -> JSON:
    config = record.config
    return {
        "id": record.id,
        "name": record.name,
        "state": record.state.value,
        "region": record.region,
        "app_name": record.app_name,
        "private_ip": record.private_ip,
        "version": record.instance_id,
        "instance_id": record.instance_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "config": {
            "image": config.get("image"),
            "guest": config.get("guest") or {},
            "metadata": config.get("metadata") or {},
        },
    }


def lease(record: Lease) -> JSON:
    return {
        "status": "success",
        "data": {
            "nonce": record.nonce,
            "expires_at": record.expires_at,
            "owner": record.owner,
            "description": record.description,
            "version": record.version,
        },
    }


def version(record: MachineVersion) -> JSON:
    return {"version": record.version, "user_config": record.config, "created_at": record.created_at}


def volume(record: Volume, usage: dict[str, int] | None = None, *, host_status: str = "ok") -> JSON:
    return {
        "id": record.id,
        "name": record.name,
        "state": record.state,
        "size_gb": record.size_gb,
        "region": record.region,
        "zone": "local",
        "encrypted": record.encrypted,
        "fstype": record.fstype,
        "type": "local",
        "attached_machine_id": record.attached_machine_id,
        "attached_alloc_id": record.attached_machine_id,
        "created_at": record.created_at,
        "host_status": host_status,
        "snapshot_retention": record.snapshot_retention,
        "auto_backup_enabled": record.auto_backup_enabled,
        "host_dedication_id": "",
        **(
            usage
            or {"block_size": 0, "blocks": 0, "blocks_free": 0, "blocks_avail": 0, "bytes_total": 0, "bytes_used": 0}
        ),
    }


def snapshot(record: VolumeSnapshot) -> JSON:
    return {
        "id": record.id,
        "size": record.size,
        "volume_size": record.volume_size,
        "digest": record.digest,
        "created_at": record.created_at,
        "status": record.status,
        "retention_days": record.retention_days,
    }
