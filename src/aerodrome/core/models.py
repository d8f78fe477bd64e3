"""The domain records, as frozen dataclasses. Their JSON shapes are the API layer's business."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aerodrome.core.states import MachineState

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Organization:
    slug: str
    name: str
    id: str
    internal_numeric_id: int


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    org_slug: str
    name: str
    created_at: str
    last_used_at: str | None = None  # to the minute: written at most once a minute per token
    revoked_at: str | None = None
    app_name: str | None = None  # a deploy token acts on this one app only; None: the whole organisation
    expires_at: int | None = None  # seconds since the epoch; None: never


@dataclass(frozen=True, slots=True)
class App:
    id: str
    name: str
    org_slug: str
    network: str
    internal_numeric_id: int
    created_at: str
    status: str = "deployed"  # or APP_DESTROYING, from a DELETE until the last of the app is gone

    @property
    def destroying(self) -> bool:
        return self.status == APP_DESTROYING


APP_DESTROYING = "destroying"


@dataclass(frozen=True, slots=True)
class Lease:
    nonce: str
    owner: str
    description: str
    expires_at: int  # unix seconds
    version: str


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    app_name: str
    name: str
    region: str
    state: MachineState
    instance_id: str  # the version ULID; changes on every update
    config: JSON
    private_ip: str  # IPv6 in the organisation's private network (Fly's 6PN)
    image_ref: JSON
    created_at: str
    updated_at: str
    host: str = "local"
    cordoned: bool = False
    lease: Lease | None = None
    restart_count: int = 0
    deleted: bool = False
    private_ipv4: str = ""  # where the edge on this host connects
    row_version: int = 0  # bumped by every write of the row: a write names the one it read (compare-and-set)


@dataclass(frozen=True, slots=True)
class MachineEvent:
    id: str
    machine_id: str
    type: str  # launch, start, exit, update, stop, suspend, restart, destroy
    status: str  # the state the event left the machine in
    source: str  # "user" or "flyd"
    timestamp: int  # milliseconds since the epoch
    request: JSON = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Volume:
    id: str
    app_name: str
    name: str
    region: str
    size_gb: int
    fstype: str
    state: str
    created_at: str
    attached_machine_id: str | None = None
    encrypted: bool = False
    snapshot_retention: int = 5
    auto_backup_enabled: bool = True
    host: str = "local"


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a machine's main process ended, as the runtime saw it."""

    exit_code: int
    signal: int = -1
    oom_killed: bool = False
    requested_stop: bool = False
    exited_at: str = ""


@dataclass(frozen=True, slots=True)
class MachineVersion:
    version: str
    config: JSON
    created_at: str


@dataclass(frozen=True, slots=True)
class VolumeSnapshot:
    id: str
    volume_id: str
    size: int
    volume_size: int  # bytes of the volume when taken
    digest: str
    status: str  # created
    created_at: str
    retention_days: int = 5


@dataclass(frozen=True, slots=True)
class Release:
    """One version of an app: a deploy or a change of its secrets, numbered from 1 per app."""

    id: str
    app_name: str
    version: int  # assigned by the store: one more than the app's newest
    status: str  # what the deployer says (`pending`, `running`, `complete`, `failed`…); `complete` for aerodrome's own
    reason: str  # `deploy` or `change secrets`
    description: str
    image_ref: str
    strategy: str  # flyctl's deployment strategy, as it sent it
    user: str
    created_at: str
    updated_at: str
    metadata: str = "{}"  # JSON the deployer attaches when it finishes


@dataclass(frozen=True, slots=True)
class SecretKey:
    """One version of an app's named cryptographic key (Fly's `secretkeys`): the key material stays server-side."""

    app_name: str
    name: str
    version: int  # assigned by the store: one more than the name's newest
    type: str
    key_ciphertext: bytes  # encrypted like app secrets
    created_at: str


@dataclass(frozen=True, slots=True)
class Secret:
    app_name: str
    name: str
    ciphertext: bytes
    digest: str
    version: int
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class IPAddress:
    id: str
    app_name: str
    address: str
    type: str  # shared_v4 | v4 | v6 | private_v6
    region: str
    network: str
    service_name: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Certificate:
    """A hostname an app answers on, and the certificate the edge serves for it."""

    hostname: str  # unique across apps
    app_name: str
    source: str  # "custom" (uploaded) or "aerodrome" (issued by the local CA, standing in for ACME)
    fullchain: str  # PEM, leaf first
    key_ciphertext: bytes  # the private key's PEM, encrypted with the key that encrypts app secrets
    acme_requested: bool  # a CA certificate was asked for: it takes over when a custom one is removed
    created_at: str
    updated_at: str
