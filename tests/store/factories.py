"""Builders for the core records the store tests persist."""

from __future__ import annotations

from typing import Any

from aerodrome.core import App, Machine, MachineEvent, MachineState, Volume, ulid

ORG = "personal"


def make_app(name: str = "app1", org_slug: str = ORG) -> App:
    return App(
        id=f"id-{name}",
        name=name,
        org_slug=org_slug,
        network="default",
        internal_numeric_id=abs(hash(name)) % 1_000_000,
        created_at="2024-05-01T10:00:00Z",
    )


def make_machine(machine_id: str, app_name: str = "app1", **changes: Any) -> Machine:
    fields: dict[str, Any] = {
        "id": machine_id,
        "app_name": app_name,
        "name": f"name-{machine_id}",
        "region": "ord",
        "state": MachineState.CREATED,
        "instance_id": ulid(),
        "config": {"image": "busybox", "guest": {"cpus": 1, "memory_mb": 256}, "env": {"A": "b"}},
        "private_ip": "fdaa:0:1::2",
        "image_ref": {"registry": "localhost:5000", "repository": "busybox", "tag": "latest"},
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
    }
    fields.update(changes)
    return Machine(**fields)


def make_event(machine_id: str, type_: str = "launch", status: str = "created", timestamp: int = 1_000) -> MachineEvent:
    return MachineEvent(
        id=ulid(timestamp),
        machine_id=machine_id,
        type=type_,
        status=status,
        source="user",
        timestamp=timestamp,
        request={"config": {"image": "busybox"}},
    )


def make_volume(volume_id: str, app_name: str = "app1", **changes: Any) -> Volume:
    fields: dict[str, Any] = {
        "id": volume_id,
        "app_name": app_name,
        "name": "data",
        "region": "ord",
        "size_gb": 1,
        "fstype": "ext4",
        "state": "created",
        "created_at": "2024-05-01T10:00:00Z",
    }
    fields.update(changes)
    return Volume(**fields)
