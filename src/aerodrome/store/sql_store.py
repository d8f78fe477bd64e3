"""`SqlStore`: the core's `Store` over SQLAlchemy Core, for SQLite (embedded) and PostgreSQL (several writers).

Each method hands one query function to the runner, which runs it in one transaction: whatever a method
writes is committed together, or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from aerodrome.core import (
    App,
    Certificate,
    IPAddress,
    Lease,
    LogLine,
    Machine,
    MachineEvent,
    MachineState,
    MachineVersion,
    Organization,
    OutputCursor,
    Release,
    Secret,
    SecretKey,
    Token,
    Volume,
    VolumeSnapshot,
)
from aerodrome.store import agents, app_resources, certificates, logs, machines, orgs, releases, retention, volumes
from aerodrome.store.async_runner import AsyncRunner, is_unavailable, unavailable
from aerodrome.store.buckets import RowBuckets
from aerodrome.store.cache import ALL, RecordCache
from aerodrome.store.changes import PgChangeRelay
from aerodrome.store.database import (
    SQLITE_WRITER,
    check_database_url,
    create_async_store_engine,
    create_store_engine,
    is_postgresql,
    is_sqlite,
    migrate,
    migrate_on,
    sqlite_url,
)
from aerodrome.store.hosts import HostTable
from aerodrome.store.listing import VersionedListing
from aerodrome.store.read_ahead import ReadAhead, machine_view
from aerodrome.store.runner import P, Runner, SyncRunner, T, Work


class SqlStore:
    def __init__(self, engine: Engine | AsyncEngine) -> None:
        """Wrap an engine whose database is migrated already; `open` and `open_sqlite` do both steps."""
        sqlite = engine.dialect.name == "sqlite"
        self._runner: Runner
        if isinstance(engine, AsyncEngine):
            self._runner = AsyncRunner(engine)
        else:
            self._runner = SyncRunner(engine, write_options=SQLITE_WRITER if sqlite else None)
        # Exact only with this process as the database's one writer, which an embedded SQLite file guarantees;
        # several replicas write a PostgreSQL database, and a change one made would not reach the others' memory.
        self._cache = RecordCache(enabled=sqlite)
        self._shared_url = None if sqlite else engine.url.render_as_string(hide_password=False)
        self._postgresql = not sqlite
        self._ahead = ReadAhead()
        self._versioned = VersionedListing(self._runner)
        if not sqlite:
            self._runner = _DroppingReadAhead(self._runner, self._ahead)

    @classmethod
    async def open(cls, url: str) -> SqlStore:
        """Migrate the database at `url` (SQLite or PostgreSQL) to the newest schema and open it."""
        if is_postgresql(check_database_url(url)):
            return await cls._open_postgresql(url)
        return cls._open(url)

    @classmethod
    async def _open_postgresql(cls, url: str) -> SqlStore:
        engine = create_async_store_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate_on)
        except Exception as error:
            await engine.dispose()
            if is_unavailable(error):
                raise unavailable(error) from error
            raise
        return cls(engine)

    @classmethod
    def open_sqlite(cls, path: str | Path) -> SqlStore:
        """Migrate and open the SQLite file at `path`, creating it when absent."""
        return cls._open(sqlite_url(path))

    @classmethod
    def _open(cls, url: str) -> SqlStore:
        if is_sqlite(url):
            # Switch to WAL before Alembic's first write, so even the migration is journaled the same way.
            create_store_engine(url).dispose()
        migrate(url)
        return cls(create_store_engine(url))

    async def close(self) -> None:
        await self._runner.close()

    # what the replicas of one PostgreSQL database share; None on SQLite, whose one process keeps them in memory
    def change_relay(self) -> PgChangeRelay | None:
        return None if self._shared_url is None else PgChangeRelay(self._shared_url)

    def shared_buckets(self) -> RowBuckets | None:
        return None if self._shared_url is None else RowBuckets(self._runner)

    # organisations and tokens
    async def ensure_org(self, slug: str, name: str) -> Organization:
        return await self._runner.write(orgs.ensure_org, slug, name)

    async def get_org(self, slug: str) -> Organization | None:
        # Organisations never change once made, so one found stays valid (one added by the CLI is found later).
        org = self._cache.orgs.get(slug)
        if org is None:
            org = await self._runner.read(orgs.get_org, slug)
            self._cache.put_org(org)
        return org

    async def list_orgs(self) -> list[Organization]:
        return await self._runner.read(orgs.list_orgs)

    async def add_token(self, token: Token, secret_hash: str) -> None:
        await self._runner.write(orgs.add_token, token, secret_hash)

    async def find_token(self, secret_hash: str) -> Token | None:
        return await self._runner.read(orgs.find_token, secret_hash)

    async def list_tokens(self, org_slug: str) -> list[Token]:
        return await self._runner.read(orgs.list_tokens, org_slug)

    async def revoke_token(self, org_slug: str, token_id: str, at: str) -> Token | None:
        return await self._runner.write(orgs.revoke_token, org_slug, token_id, at)

    async def touch_tokens(self, used: dict[str, str]) -> None:
        await self._runner.write(orgs.touch_tokens, used)

    # apps
    async def add_app(self, app: App) -> None:
        await self._runner.write(orgs.add_app, app)
        self._cache.apps.pop(app.name, None)  # a new name: delete_app already forgot whatever bore it before

    async def get_app(self, name: str) -> App | None:
        held, ahead = self._ahead.take(f"app:{name}")
        if held:
            return ahead  # type: ignore[no-any-return]
        app = self._cache.apps.get(name)
        if app is None:
            app = await self._runner.read(orgs.get_app, name)
            self._cache.put_app(app)
        return app

    async def list_apps(self, org_slug: str | None) -> list[App]:
        return await self._runner.read(orgs.list_apps, org_slug)

    async def set_app_status(self, name: str, status: str) -> None:
        try:
            await self._runner.write(orgs.set_app_status, name, status)
        finally:
            self._cache.apps.pop(name, None)

    async def app_counts(self, name: str) -> tuple[int, int]:
        return await self._runner.read(orgs.app_counts, name)

    async def delete_app(self, name: str) -> None:
        await self._runner.write(orgs.delete_app, name)
        self._cache.forget_app(name)

    # machines
    async def add_machine(self, machine: Machine, event: MachineEvent) -> None:
        if not self._postgresql:
            await self._runner.write(machines.add_machine, machine, event)
        else:  # PostgreSQL: one statement in autocommit, one round trip where the transaction took six
            await self._runner.write_one(machines.add_machine_at_once, machine, event)
        self._cache.put_machine(machine)
        self._cache.put_events(machine.id, [event], ALL)

    @contextlib.asynccontextmanager
    async def reading_machine(self, app_name: str, machine_id: str, events: int) -> AsyncIterator[None]:
        """The app, the machine and its newest `events` read in one round trip, for the reads of this request
        (PostgreSQL: on SQLite they are in memory or microseconds away already)."""
        if self._cache.enabled:
            yield
            return
        held = self._ahead.hold(await self._runner.read(machine_view, app_name, machine_id, events))
        try:
            yield
        finally:
            self._ahead.release(held)

    async def get_machine(self, machine_id: str, app_name: str | None = None) -> Machine | None:
        held, ahead = self._ahead.take(f"machine:{machine_id}")
        machine = ahead if held else self._cache.machines.get(machine_id)
        if machine is None and not held:
            machine = await self._runner.read(machines.get_machine, machine_id, None)
            self._cache.put_machine(machine)
        return None if machine is None or (app_name is not None and machine.app_name != app_name) else machine

    async def list_machines(
        self,
        app_name: str,
        *,
        include_deleted: bool = False,
        region: str | None = None,
        states: Sequence[MachineState] = (),
    ) -> list[Machine]:
        if self._cache.enabled:  # which machines, then the ones in memory: most of a listing is decoding rows
            ids = await self._runner.read(
                machines.list_machine_ids, app_name, include_deleted=include_deleted, region=region, states=states
            )
            cached = self._cache.machines_in(ids)
            if cached is not None:
                return cached
        else:
            return await self._versioned.listing(
                app_name, include_deleted=include_deleted, region=region, states=states
            )
        listed = await self._runner.read(
            machines.list_machines, app_name, include_deleted=include_deleted, region=region, states=states
        )
        self._cache.put_machines(listed)
        return listed

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
        return await self._runner.read(
            machines.list_org_machines,
            org_slug,
            include_deleted=include_deleted,
            region=region,
            states=states,
            updated_after=updated_after,
            after_id=after_id,
            limit=limit,
        )

    async def live_machines(self) -> list[Machine]:
        live = await self._runner.read(machines.live_machines)
        self._cache.put_machines(live)  # recovery reads them all at start: later listings find them in memory
        return live

    async def save_machine(
        self, machine: Machine, *, event: MachineEvent | None = None, new_version: bool = False
    ) -> Machine:
        try:
            saved = await self._runner.write(machines.save_machine, machine, event, new_version)
        finally:  # even a failed write may have been a row removed meanwhile: read it afresh next time
            self._cache.machines.pop(machine.id, None)
        self._cache.put_machine(saved)
        if event is not None:
            self._cache.forget_events(machine.id)
        return saved

    async def add_event(self, machine: Machine, event: MachineEvent) -> None:
        try:
            await self._runner.write(machines.add_event, machine, event)
        finally:
            self._cache.forget_events(machine.id)

    async def list_events(self, machine_id: str, limit: int = 20) -> list[MachineEvent]:
        held, ahead = self._ahead.take(f"events:{machine_id}:{limit}")
        if held:
            return ahead  # type: ignore[no-any-return]
        events = self._cache.events(machine_id, limit)
        if events is None:
            events = await self._runner.read(machines.list_events, machine_id, limit)
            self._cache.put_events(machine_id, events, limit)
        return events

    async def list_versions(self, machine_id: str) -> list[MachineVersion]:
        return await self._runner.read(machines.list_versions, machine_id)

    async def set_lease(self, machine_id: str, lease: Lease | None, *, read_version: int | None = None) -> None:
        try:
            await self._runner.write(machines.set_lease, machine_id, lease, read_version)
        finally:
            self._cache.machines.pop(machine_id, None)

    async def prune(
        self,
        *,
        events_per_machine: int,
        events_before_ms: int,
        versions_per_machine: int,
        destroyed_before: str,
        batch: int = 500,
    ) -> int:
        pruned = await self._runner.write(
            retention.prune,
            events_per_machine=events_per_machine,
            events_before_ms=events_before_ms,
            versions_per_machine=versions_per_machine,
            destroyed_before=destroyed_before,
            batch=batch,
        )
        for machine_id in pruned.touched:
            self._cache.forget_events(machine_id)
        for machine_id in pruned.machines:
            self._cache.machines.pop(machine_id, None)
            self._cache.forget_events(machine_id)
        return pruned.total

    # host agents
    async def agent_cursor(self, agent: str) -> int:
        return await self._runner.read(agents.agent_cursor, agent)

    async def set_agent_cursor(self, agent: str, cursor: int) -> None:
        await self._runner.write(agents.set_agent_cursor, agent, cursor)

    def host_table(self) -> HostTable:
        """The hosts that registered themselves, and the cluster CA (not the core's port: the CLI's wiring)."""
        return HostTable(self._runner)

    # logs
    async def output_cursor(self, machine_id: str) -> OutputCursor:
        return await self._runner.read(logs.output_cursor, machine_id)

    async def append_output(
        self, machine_id: str, lines: Sequence[LogLine], cursor: OutputCursor, *, max_bytes: int
    ) -> None:
        await self._runner.write(logs.append_output, machine_id, lines, cursor, max_bytes)

    async def read_logs(
        self, app_name: str, *, after: int | None, machine_id: str | None, region: str | None, limit: int
    ) -> list[LogLine]:
        return await self._runner.read(
            logs.read_logs, app_name, after=after, machine_id=machine_id, region=region, limit=limit
        )

    async def last_log_id(self) -> int:
        return await self._runner.read(logs.last_log_id)

    async def prune_logs(self, *, before_us: int, batch: int) -> int:
        return await self._runner.write(logs.prune_logs, before_us, batch)

    # volumes
    async def add_volume(self, volume: Volume) -> None:
        await self._runner.write(volumes.add_volume, volume)

    async def get_volume(self, volume_id: str) -> Volume | None:
        return await self._runner.read(volumes.get_volume, volume_id)

    async def list_volumes(self, app_name: str, *, include_destroyed: bool = False) -> list[Volume]:
        return await self._runner.read(volumes.list_volumes, app_name, include_destroyed=include_destroyed)

    async def save_volume(self, volume: Volume) -> None:
        await self._runner.write(volumes.save_volume, volume)

    async def add_snapshot(self, snapshot: VolumeSnapshot) -> None:
        await self._runner.write(volumes.add_snapshot, snapshot)

    async def get_snapshot(self, snapshot_id: str) -> VolumeSnapshot | None:
        return await self._runner.read(volumes.get_snapshot, snapshot_id)

    async def list_snapshots(self, volume_id: str) -> list[VolumeSnapshot]:
        return await self._runner.read(volumes.list_snapshots, volume_id)

    # secrets
    async def put_secrets(self, app_name: str, secrets: Sequence[Secret], deleted: Sequence[str]) -> int:
        try:
            return await self._runner.write(app_resources.put_secrets, app_name, secrets, deleted)
        finally:
            self._cache.secrets.pop(app_name, None)

    async def list_secrets(self, app_name: str) -> list[Secret]:
        listed = self._cache.secrets.get(app_name)
        if listed is None:
            listed = await self._runner.read(app_resources.list_secrets, app_name)
            self._cache.put_secrets(app_name, listed)
        return list(listed)

    async def secrets_version(self, app_name: str) -> int:
        return await self._runner.read(app_resources.secrets_version, app_name)

    # IP addresses
    async def add_ip(self, ip: IPAddress) -> None:
        await self._runner.write(app_resources.add_ip, ip)

    async def list_ips(self, app_name: str | None = None) -> list[IPAddress]:
        return await self._runner.read(app_resources.list_ips, app_name)

    async def delete_ip(self, ip_id: str) -> None:
        await self._runner.write(app_resources.delete_ip, ip_id)

    # certificates (custom hostnames)
    async def put_certificate(self, certificate: Certificate) -> None:
        await self._runner.write(certificates.put_certificate, certificate)

    async def get_certificate(self, hostname: str) -> Certificate | None:
        return await self._runner.read(certificates.get_certificate, hostname)

    async def list_certificates(self, app_name: str | None = None) -> list[Certificate]:
        return await self._runner.read(certificates.list_certificates, app_name)

    async def delete_certificate(self, hostname: str) -> None:
        await self._runner.write(certificates.delete_certificate, hostname)

    # releases
    async def add_release(self, release: Release) -> Release:
        return await self._runner.write(releases.add_release, release)

    async def get_release(self, release_id: str) -> Release | None:
        return await self._runner.read(releases.get_release, release_id)

    async def list_releases(self, app_name: str, limit: int) -> list[Release]:
        return await self._runner.read(releases.list_releases, app_name, limit)

    async def update_release(self, release_id: str, status: str, metadata: str, at: str) -> Release | None:
        return await self._runner.write(releases.update_release, release_id, status, metadata, at)

    # secret keys
    async def add_secret_key(self, key: SecretKey) -> SecretKey:
        return await self._runner.write(releases.add_secret_key, key)

    async def get_secret_key(self, app_name: str, name: str, version: int | None) -> SecretKey | None:
        return await self._runner.read(releases.get_secret_key, app_name, name, version)

    async def list_secret_keys(self, app_name: str) -> list[SecretKey]:
        return await self._runner.read(releases.list_secret_keys, app_name)

    async def delete_secret_key(self, app_name: str, name: str) -> bool:
        return await self._runner.write(releases.delete_secret_key, app_name, name)


class _DroppingReadAhead:
    """The runner, with every write dropping what the request read ahead: a read after it sees the write."""

    def __init__(self, runner: Runner, ahead: ReadAhead) -> None:
        self._runner = runner
        self._ahead = ahead

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._runner.read(work, *args, **kwargs)

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self._ahead.drop()
        return await self._runner.write(work, *args, **kwargs)

    async def write_one(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self._ahead.drop()
        return await self._runner.write_one(work, *args, **kwargs)

    async def close(self) -> None:
        await self._runner.close()
