"""A machine's config as Fly's `fly.MachineConfig` shapes it: the parts the CLI builds, each tolerating fields it
does not name (they are kept and sent back as they came), so a config read from the API and updated loses
nothing."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Model(BaseModel):
    """Unknown fields are kept; a `null` reads as the field's default (Go's encoders write `null` for empty
    lists and maps); `None` fields are left out of what is sent."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class Guest(Model):
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    gpu_kind: str | None = None
    kernel_args: list[str] | None = None


class Init(Model):
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    exec_: list[str] | None = Field(default=None, alias="exec")
    tty: bool | None = None
    swap_size_mb: int | None = None


class Port(Model):
    port: int | None = None
    start_port: int | None = None
    end_port: int | None = None
    handlers: list[str] | None = None
    force_https: bool | None = None


class Concurrency(Model):
    type: str | None = None
    soft_limit: int | None = None
    hard_limit: int | None = None


class Service(Model):
    protocol: str = "tcp"
    internal_port: int = 0
    ports: list[Port] = Field(default_factory=list)
    autostop: str | bool | None = None
    autostart: bool | None = None
    min_machines_running: int | None = None
    concurrency: Concurrency | None = None


class Mount(Model):
    volume: str = ""
    path: str = ""
    name: str | None = None
    size_gb: int | None = None
    encrypted: bool | None = None
    extend_threshold_percent: int | None = None
    add_size_gb: int | None = None
    size_gb_limit: int | None = None


class Restart(Model):
    policy: str | None = None
    max_retries: int | None = None


class File(Model):
    guest_path: str = ""
    raw_value: str | None = None
    secret_name: str | None = None
    mode: int | None = None


class StopConfig(Model):
    signal: str | None = None
    timeout: str | int | None = None


class MachineConfig(Model):
    image: str = ""
    env: dict[str, str] | None = None
    init: Init | None = None
    guest: Guest | None = None
    services: list[Service] | None = None
    mounts: list[Mount] | None = None
    restart: Restart | None = None
    files: list[File] | None = None
    metadata: dict[str, str] | None = None
    auto_destroy: bool | None = None
    stop_config: StopConfig | None = None
    schedule: str | None = None


class CreateMachineRequest(Model):
    config: MachineConfig
    name: str | None = None
    region: str | None = None
    skip_launch: bool | None = None
    lease_ttl: int | None = None


class UpdateMachineRequest(Model):
    config: MachineConfig
    region: str | None = None
    current_version: str | None = None
    skip_launch: bool | None = None


class CreateVolumeRequest(Model):
    name: str
    region: str | None = None
    size_gb: int | None = None
    fstype: str | None = None
    encrypted: bool | None = None
    snapshot_retention: int | None = None
    snapshot_id: str | None = None
    source_volume_id: str | None = None
