"""`AsyncClient`: the same operations as `Client`, each a coroutine; for asyncio programs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TypeVar

import httpx

from aerodrome.client import endpoints as e
from aerodrome.client import graphql as g
from aerodrome.client.calls import Call, RetryPolicy
from aerodrome.client.errors import NotFoundError, WaitTimeoutError
from aerodrome.client.logs import LogEntry, LogFollow, app_logs
from aerodrome.client.models import Lease, Machine
from aerodrome.client.operations import Report, WaitPlan, async_operation, no_report
from aerodrome.client.settings import ClientSettings
from aerodrome.client.transport import AsyncTransport

T = TypeVar("T")


class AsyncClient:
    """`Client(ClientSettings.from_env())`, or `Client.from_env()`; a context manager, or `close()` it."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings or ClientSettings.from_env()
        self._transport = AsyncTransport(self.settings, retry or RetryPolicy(), http)

    @classmethod
    def from_env(cls, base_url: str | None = None, token: str | None = None) -> AsyncClient:
        return cls(ClientSettings.from_env(base_url, token))

    async def send(self, call: Call[T]) -> T:
        """Send one request (any of `endpoints`' or your own), with retries; its result or an `ApiError`."""
        return await self._transport.send(call)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    health = async_operation(e.health)
    create_app = async_operation(e.create_app)
    list_apps = async_operation(e.list_apps)
    get_app = async_operation(e.get_app)
    delete_app = async_operation(e.delete_app)
    create_machine = async_operation(e.create_machine)
    list_machines = async_operation(e.list_machines)
    get_machine = async_operation(e.get_machine)
    update_machine = async_operation(e.update_machine)
    destroy_machine = async_operation(e.destroy_machine)
    start_machine = async_operation(e.start_machine)
    stop_machine = async_operation(e.stop_machine)
    suspend_machine = async_operation(e.suspend_machine)
    restart_machine = async_operation(e.restart_machine)
    signal_machine = async_operation(e.signal_machine)
    cordon_machine = async_operation(e.cordon_machine)
    wait_machine = async_operation(e.wait_machine)
    machine_events = async_operation(e.machine_events)
    exec_machine = async_operation(e.exec_machine)
    acquire_lease = async_operation(e.acquire_lease)
    get_lease = async_operation(e.get_lease)
    release_lease = async_operation(e.release_lease)
    create_volume = async_operation(e.create_volume)
    list_volumes = async_operation(e.list_volumes)
    get_volume = async_operation(e.get_volume)
    extend_volume = async_operation(e.extend_volume)
    destroy_volume = async_operation(e.destroy_volume)
    create_snapshot = async_operation(e.create_snapshot)
    list_snapshots = async_operation(e.list_snapshots)
    list_secrets = async_operation(e.list_secrets)
    set_secrets = async_operation(e.set_secrets)
    delete_secret = async_operation(e.delete_secret)
    add_certificate = async_operation(e.add_certificate)
    list_certificates = async_operation(e.list_certificates)
    get_certificate = async_operation(e.get_certificate)
    check_certificate = async_operation(e.check_certificate)
    remove_certificate = async_operation(e.remove_certificate)
    current_token = async_operation(e.current_token)
    list_tokens = async_operation(e.list_tokens)
    create_token = async_operation(e.create_token)
    revoke_token = async_operation(e.revoke_token)
    allocate_ip = async_operation(g.allocate_ip)
    release_ip = async_operation(g.release_ip)
    list_ips = async_operation(g.list_ips)
    organization = async_operation(g.organization)
    create_organization = async_operation(g.create_organization)
    app_logs = async_operation(app_logs)

    async def follow_logs(
        self, app: str, *, instance: str = "", region: str = "", next_token: str = "", poll: float = 1.0
    ) -> AsyncIterator[LogEntry]:
        """The app's lines (its newest first, without `next_token`), then each new one as it comes, forever:
        flyctl's poll. Stop iterating to stop."""
        follow = LogFollow(app, instance=instance, region=region, next_token=next_token, poll=poll)
        while True:
            entries = follow.advance(await self.send(follow.call()))
            for entry in entries:
                yield entry
            if not entries:
                await asyncio.sleep(follow.poll)

    async def wait(
        self,
        app: str,
        machine_id: str,
        state: str = "started",
        *,
        timeout: float = 60.0,
        poll: float = 60.0,
        on_poll: Report = no_report,
    ) -> Machine:
        """The machine once it is in `state`, waiting up to `timeout` seconds in API waits of `poll` seconds;
        `on_poll` sees the machine after each. `WaitTimeoutError` at the deadline; `PreconditionFailedError` when
        it is failed or destroyed instead."""
        plan = WaitPlan(state, timeout, poll)
        while True:
            machine = await self.get_machine(app, machine_id)
            on_poll(machine)
            if plan.check(machine):
                return machine
            chunk = plan.next_chunk()  # raises at the deadline
            with contextlib.suppress(WaitTimeoutError):
                await self.wait_machine(app, machine_id, state, timeout=chunk)

    @contextlib.asynccontextmanager
    async def machine_lease(
        self, app: str, machine_id: str, *, ttl: int = 30, description: str = ""
    ) -> AsyncIterator[Lease]:
        """Hold the machine's lease for the block: pass `lease.nonce` as `nonce=` to act under it. Released at the
        end (a lease that expired meanwhile is no error). `LeaseConflictError` when another holder has it."""
        lease = await self.acquire_lease(app, machine_id, ttl=ttl, description=description)
        try:
            yield lease
        finally:
            with contextlib.suppress(NotFoundError):
                await self.release_lease(app, machine_id, lease.nonce)
