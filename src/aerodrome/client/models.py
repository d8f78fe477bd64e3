"""What the API answers, as Fly's OpenAPI document shapes it. Every model keeps fields it does not name, and
every field has a default, so a newer server (or Fly itself, with more fields) still reads."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aerodrome.client.machine_config import MachineConfig, Model


class Organization(Model):
    id: str = ""
    slug: str = ""
    name: str = ""
    internal_numeric_id: int | str = 0
    type: str | None = None


class App(Model):
    id: str = ""
    name: str = ""
    status: str = ""
    network: str = ""
    machine_count: int = 0
    volume_count: int = 0
    internal_numeric_id: int = 0
    organization: Organization = Field(default_factory=Organization)


class MachineEvent(Model):
    id: str = ""
    type: str = ""
    status: str = ""
    source: str = ""
    timestamp: int = 0
    request: dict[str, Any] | None = None


class CheckStatus(Model):
    name: str = ""
    status: str = ""  # passing | warning | critical
    output: str = ""
    updated_at: str = ""


class MachineContainer(Model):
    """One container of a multi-container machine, as its host supervises it."""

    name: str = ""
    state: str = ""  # pending | running | exited | failed
    exit_code: int | None = None
    restart_count: int = 0
    healthy: bool | None = None


class Machine(Model):
    id: str = ""
    name: str = ""
    state: str = ""
    region: str = ""
    instance_id: str = ""
    version: str | None = None
    private_ip: str = ""
    image_ref: dict[str, Any] | None = None
    config: MachineConfig = Field(default_factory=MachineConfig)
    created_at: str = ""
    updated_at: str = ""
    events: list[MachineEvent] = Field(default_factory=list)
    nonce: str | None = None
    cordoned: bool | None = None
    host_status: str | None = None
    checks: list[CheckStatus] = Field(default_factory=list)
    containers: list[MachineContainer] | None = None

    def checks_summary(self) -> str:
        """ "2/3 passing", as flyctl's machine list counts them ("" without checks)."""
        if not self.checks:
            return ""
        return f"{sum(c.status == 'passing' for c in self.checks)}/{len(self.checks)} passing"


class Lease(Model):
    nonce: str = ""
    expires_at: int = 0
    owner: str = ""
    description: str = ""
    version: str = ""


class WaitResult(Model):
    ok: bool = True
    state: str = ""
    version: str = ""
    event_id: str = ""


class StartResult(Model):
    previous_state: str = ""
    migrated: bool = False
    new_host: str = ""


class ExecResult(Model):
    exit_code: int = 0
    exit_signal: int = 0
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False


class Volume(Model):
    id: str = ""
    name: str = ""
    state: str = ""
    size_gb: int = 0
    region: str = ""
    zone: str = ""
    encrypted: bool = False
    fstype: str = ""
    attached_machine_id: str | None = None
    created_at: str = ""
    snapshot_retention: int | None = None
    auto_backup_enabled: bool | None = None
    bytes_total: int = 0
    bytes_used: int = 0


class ExtendResult(Model):
    volume: Volume = Field(default_factory=Volume)
    needs_restart: bool = False


class Snapshot(Model):
    id: str = ""
    size: int = 0
    volume_size: int = 0
    digest: str = ""
    created_at: str = ""
    status: str = ""
    retention_days: int | None = None


class Secret(Model):
    name: str = ""
    digest: str = ""
    created_at: str = ""
    updated_at: str = ""
    value: str | None = None


class SecretsUpdate(Model):
    secrets: list[Secret] = Field(default_factory=list)
    version: int = 0


class IPAddress(Model):
    id: str = ""
    address: str = ""
    type: str = ""
    region: str = ""
    service_name: str = ""
    network: str = ""
    created_at: str = ""


class CertificateEntry(Model):
    source: str = ""
    status: str = ""
    issuer: str = ""
    created_at: str = ""
    expires_at: str = ""


class CertificateValidationError(Model):
    code: str = ""
    message: str = ""


class Certificate(Model):
    """A hostname's certificates: the list's summary, the detail, and a check's report share these fields."""

    hostname: str = ""
    status: str = ""
    configured: bool = False
    acme_requested: bool = False
    has_custom_certificate: bool | None = None
    certificates: list[CertificateEntry] = Field(default_factory=list)
    validation_errors: list[CertificateValidationError] = Field(default_factory=list)
    dns_requirements: dict[str, Any] | None = None
    created_at: str | None = None
    warning: str | None = None


class Token(Model):
    id: str = ""
    name: str = ""
    org_slug: str = ""
    created_at: str = ""
    last_used_at: str | None = None
    revoked_at: str | None = None
    revoked: bool = False


class Health(Model):
    """The daemon's `/health` (aerodrome's): every part `up`, or why one is not."""

    ok: bool = False
    error: str = ""
    parts: dict[str, str] = Field(default_factory=dict)


class CreatedToken(Token):
    """A token just made: its secret, which only this reply carries."""

    token: str = ""


class CreatedOrganization(Model):
    organization: Organization = Field(default_factory=Organization)
    token: str = ""


class CurrentToken(Model):
    token_id: str = ""
    org_slug: str = ""
    organization: str = ""
