"""The `Store` seam: what the control plane asks of persistence. SQLite and PostgreSQL both implement it.

Lookups return None when absent (the caller words the 404); writes that must be atomic are one method.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from aerodrome.core.logs import LogLine, OutputCursor
from aerodrome.core.models import (
    App,
    Certificate,
    IPAddress,
    Lease,
    Machine,
    MachineEvent,
    MachineVersion,
    Organization,
    Release,
    Secret,
    SecretKey,
    Token,
    Volume,
    VolumeSnapshot,
)
from aerodrome.core.states import MachineState


class Store(Protocol):
    # organisations and tokens
    async def ensure_org(self, slug: str, name: str) -> Organization: ...
    async def get_org(self, slug: str) -> Organization | None: ...
    async def list_orgs(self) -> list[Organization]: ...
    async def add_token(self, token: Token, secret_hash: str) -> None: ...
    async def find_token(self, secret_hash: str) -> Token | None:
        """Revoked ones too: the caller refuses them."""
        ...

    async def list_tokens(self, org_slug: str) -> list[Token]:
        """Oldest first, revoked ones included."""
        ...

    async def revoke_token(self, org_slug: str, token_id: str, at: str) -> Token | None:
        """Mark `org_slug`'s token revoked (a revoked one keeps its first time); None if it has no such token."""
        ...

    async def touch_tokens(self, used: dict[str, str]) -> None:
        """Record each token id's last use."""
        ...

    # apps
    async def add_app(self, app: App) -> None:
        """Raise AlreadyExistsError when the name is taken (names are global, as on Fly)."""
        ...

    async def get_app(self, name: str) -> App | None: ...
    async def list_apps(self, org_slug: str | None) -> list[App]:
        """Ordered by name; every organisation's when `org_slug` is None."""
        ...

    async def set_app_status(self, name: str, status: str) -> None: ...
    async def app_counts(self, name: str) -> tuple[int, int]:
        """(machines not destroyed, volumes not destroyed)."""
        ...

    async def delete_app(self, name: str) -> None:
        """Remove the app and every row that belongs to it."""
        ...

    # machines
    async def add_machine(self, machine: Machine, event: MachineEvent) -> None:
        """Insert the machine, its first version and its launch event in one transaction."""
        ...

    async def get_machine(self, machine_id: str, app_name: str | None = None) -> Machine | None: ...
    def reading_machine(self, app_name: str, machine_id: str, events: int) -> AbstractAsyncContextManager[None]:
        """Within it, `get_app(app_name)`, `get_machine(machine_id)` and `list_events(machine_id, events)` may be
        answered, once each, from one read made on entry (a write drops what is left)."""
        ...

    async def list_machines(
        self,
        app_name: str,
        *,
        include_deleted: bool = False,
        region: str | None = None,
        states: Sequence[MachineState] = (),
    ) -> list[Machine]: ...

    async def list_org_machines(
        self,
        org_slug: str,
        *,
        include_deleted: bool = False,
        region: str | None = None,
        states: Sequence[MachineState] = (),
        updated_after: str | None = None,
        after_id: str | None = None,
        limit: int = 1000,
    ) -> list[Machine]:
        """Ordered by machine id; `after_id` is the cursor."""
        ...

    async def live_machines(self) -> list[Machine]:
        """Every machine not destroyed, of every app: what recovery reconciles."""
        ...

    async def save_machine(
        self, machine: Machine, *, event: MachineEvent | None = None, new_version: bool = False
    ) -> Machine:
        """Write the machine row (state, config, instance_id, lease…), and in the same transaction append the
        event and, when `new_version`, a version row for `machine.instance_id`. Compare-and-set: the row must
        still be at `machine.row_version` (the one read), else FailedPreconditionError and nothing is written;
        returns the machine as written, its `row_version` bumped."""
        ...

    async def add_event(self, machine: Machine, event: MachineEvent) -> None:
        """Append an event that changes nothing of the machine's row (a health check's new status)."""
        ...

    async def list_events(self, machine_id: str, limit: int = 20) -> list[MachineEvent]:
        """Newest first."""
        ...

    async def list_versions(self, machine_id: str) -> list[MachineVersion]:
        """Newest first."""
        ...

    async def set_lease(self, machine_id: str, lease: Lease | None, *, read_version: int | None = None) -> None:
        """Set or clear the lease alone; bumps the row's version (a write from an earlier read is refused). With
        `read_version`, compare-and-set as `save_machine`: the row must still be at it, else
        FailedPreconditionError, so two replicas granting the lease at once cannot both succeed."""
        ...

    async def prune(
        self,
        *,
        events_per_machine: int,
        events_before_ms: int,
        versions_per_machine: int,
        destroyed_before: str,
        batch: int = 500,
    ) -> int:
        """Remove, for up to `batch` machines each: events past a machine's newest `events_per_machine` or timed
        before `events_before_ms`; versions past its newest `versions_per_machine` (never its current one); and
        machines destroyed before `destroyed_before` (RFC 3339), with their events and versions. Returns how many
        rows went; a sweep repeats while it is not 0."""
        ...

    # host agents
    async def agent_cursor(self, agent: str) -> int:
        """The cursor of the last event of `agent` (its HostInfo name) the control plane recorded; 0 when none."""
        ...

    async def set_agent_cursor(self, agent: str, cursor: int) -> None: ...

    # logs
    async def output_cursor(self, machine_id: str) -> OutputCursor:
        """How far the machine's output was read into the store (the start when never)."""
        ...

    async def append_output(
        self, machine_id: str, lines: Sequence[LogLine], cursor: OutputCursor, *, max_bytes: int
    ) -> None:
        """In one transaction: append `lines`, move the machine's cursor to `cursor`, and drop its oldest lines
        past `max_bytes` of messages."""
        ...

    async def read_logs(
        self, app_name: str, *, after: int | None, machine_id: str | None, region: str | None, limit: int
    ) -> list[LogLine]:
        """The app's lines numbered after `after` in order, at most `limit`; with `after` None, its newest
        `limit` lines, in order."""
        ...

    async def last_log_id(self) -> int:
        """The number of the newest line of any app (0 when none): a token after which every line is new."""
        ...

    async def prune_logs(self, *, before_us: int, batch: int) -> int:
        """Remove up to `batch` lines timed before `before_us`; how many went."""
        ...

    # volumes
    async def add_volume(self, volume: Volume) -> None: ...
    async def get_volume(self, volume_id: str) -> Volume | None: ...
    async def list_volumes(self, app_name: str, *, include_destroyed: bool = False) -> list[Volume]: ...
    async def save_volume(self, volume: Volume) -> None: ...
    async def add_snapshot(self, snapshot: VolumeSnapshot) -> None: ...
    async def get_snapshot(self, snapshot_id: str) -> VolumeSnapshot | None: ...
    async def list_snapshots(self, volume_id: str) -> list[VolumeSnapshot]: ...

    # secrets
    async def put_secrets(self, app_name: str, secrets: Sequence[Secret], deleted: Sequence[str]) -> int:
        """Upsert and delete in one transaction; return the app's new secrets version."""
        ...

    async def list_secrets(self, app_name: str) -> list[Secret]: ...
    async def secrets_version(self, app_name: str) -> int: ...

    # IP addresses
    async def add_ip(self, ip: IPAddress) -> None:
        """Raise AlreadyExistsError when the address is allocated already."""
        ...

    async def list_ips(self, app_name: str | None = None) -> list[IPAddress]: ...
    async def delete_ip(self, ip_id: str) -> None: ...

    # certificates (custom hostnames)
    async def put_certificate(self, certificate: Certificate) -> None:
        """Insert or replace the hostname's row; AlreadyExistsError when another app holds the hostname."""
        ...

    async def get_certificate(self, hostname: str) -> Certificate | None: ...
    async def list_certificates(self, app_name: str | None = None) -> list[Certificate]:
        """Ordered by hostname; every app's when `app_name` is None."""
        ...

    async def delete_certificate(self, hostname: str) -> None: ...

    # releases
    async def add_release(self, release: Release) -> Release:
        """Store `release` as the app's next version (its `version` is ignored) and return it numbered."""
        ...

    async def get_release(self, release_id: str) -> Release | None: ...
    async def list_releases(self, app_name: str, limit: int) -> list[Release]:
        """Newest first."""
        ...

    async def update_release(self, release_id: str, status: str, metadata: str, at: str) -> Release | None: ...

    # secret keys
    async def add_secret_key(self, key: SecretKey) -> SecretKey:
        """Store `key` as its name's next version (its `version` is ignored) and return it numbered."""
        ...

    async def get_secret_key(self, app_name: str, name: str, version: int | None) -> SecretKey | None:
        """That version, or the newest when `version` is None."""
        ...

    async def list_secret_keys(self, app_name: str) -> list[SecretKey]:
        """The newest version of each name, by name."""
        ...

    async def delete_secret_key(self, app_name: str, name: str) -> bool: ...

    async def close(self) -> None: ...
