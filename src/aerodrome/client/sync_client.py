"""`Client`: the Machines API (and the few GraphQL calls flyctl makes) from synchronous code."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TypeVar

import httpx

from aerodrome.client import endpoints as e
from aerodrome.client import graphql as g
from aerodrome.client.calls import Call, RetryPolicy
from aerodrome.client.errors import NotFoundError, WaitTimeoutError
from aerodrome.client.logs import LogEntry, LogFollow, app_logs
from aerodrome.client.models import Lease, Machine
from aerodrome.client.operations import Report, WaitPlan, no_report, sync_operation
from aerodrome.client.settings import ClientSettings
from aerodrome.client.transport import SyncTransport

T = TypeVar("T")


class Client:
    """`Client(ClientSettings.from_env())`, or `Client.from_env()`; a context manager, or `close()` it."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings or ClientSettings.from_env()
        self._transport = SyncTransport(self.settings, retry or RetryPolicy(), http)

    @classmethod
    def from_env(cls, base_url: str | None = None, token: str | None = None) -> Client:
        return cls(ClientSettings.from_env(base_url, token))

    def send(self, call: Call[T]) -> T:
        """Send one request (any of `endpoints`' or your own), with retries; its result or an `ApiError`."""
        return self._transport.send(call)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    health = sync_operation(e.health)
    create_app = sync_operation(e.create_app)
    list_apps = sync_operation(e.list_apps)
    get_app = sync_operation(e.get_app)
    delete_app = sync_operation(e.delete_app)
    create_machine = sync_operation(e.create_machine)
    list_machines = sync_operation(e.list_machines)
    get_machine = sync_operation(e.get_machine)
    update_machine = sync_operation(e.update_machine)
    destroy_machine = sync_operation(e.destroy_machine)
    start_machine = sync_operation(e.start_machine)
    stop_machine = sync_operation(e.stop_machine)
    suspend_machine = sync_operation(e.suspend_machine)
    restart_machine = sync_operation(e.restart_machine)
    signal_machine = sync_operation(e.signal_machine)
    cordon_machine = sync_operation(e.cordon_machine)
    wait_machine = sync_operation(e.wait_machine)
    machine_events = sync_operation(e.machine_events)
    exec_machine = sync_operation(e.exec_machine)
    acquire_lease = sync_operation(e.acquire_lease)
    get_lease = sync_operation(e.get_lease)
    release_lease = sync_operation(e.release_lease)
    create_volume = sync_operation(e.create_volume)
    list_volumes = sync_operation(e.list_volumes)
    get_volume = sync_operation(e.get_volume)
    extend_volume = sync_operation(e.extend_volume)
    destroy_volume = sync_operation(e.destroy_volume)
    create_snapshot = sync_operation(e.create_snapshot)
    list_snapshots = sync_operation(e.list_snapshots)
    list_secrets = sync_operation(e.list_secrets)
    set_secrets = sync_operation(e.set_secrets)
    delete_secret = sync_operation(e.delete_secret)
    add_certificate = sync_operation(e.add_certificate)
    list_certificates = sync_operation(e.list_certificates)
    get_certificate = sync_operation(e.get_certificate)
    check_certificate = sync_operation(e.check_certificate)
    remove_certificate = sync_operation(e.remove_certificate)
    current_token = sync_operation(e.current_token)
    list_tokens = sync_operation(e.list_tokens)
    create_token = sync_operation(e.create_token)
    revoke_token = sync_operation(e.revoke_token)
    allocate_ip = sync_operation(g.allocate_ip)
    release_ip = sync_operation(g.release_ip)
    list_ips = sync_operation(g.list_ips)
    organization = sync_operation(g.organization)
    create_organization = sync_operation(g.create_organization)
    app_logs = sync_operation(app_logs)

    def follow_logs(
        self, app: str, *, instance: str = "", region: str = "", next_token: str = "", poll: float = 1.0
    ) -> Iterator[LogEntry]:
        """The app's lines (its newest first, without `next_token`), then each new one as it comes, forever:
        flyctl's poll. Stop iterating to stop."""
        follow = LogFollow(app, instance=instance, region=region, next_token=next_token, poll=poll)
        while True:
            entries = follow.advance(self.send(follow.call()))
            yield from entries
            if not entries:
                time.sleep(follow.poll)

    def wait(
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
            machine = self.get_machine(app, machine_id)
            on_poll(machine)
            if plan.check(machine):
                return machine
            chunk = plan.next_chunk()  # raises at the deadline
            with contextlib.suppress(WaitTimeoutError):
                self.wait_machine(app, machine_id, state, timeout=chunk)

    @contextlib.contextmanager
    def machine_lease(self, app: str, machine_id: str, *, ttl: int = 30, description: str = "") -> Iterator[Lease]:
        """Hold the machine's lease for the block: pass `lease.nonce` as `nonce=` to act under it. Released at the
        end (a lease that expired meanwhile is no error). `LeaseConflictError` when another holder has it."""
        lease = self.acquire_lease(app, machine_id, ttl=ttl, description=description)
        try:
            yield lease
        finally:
            with contextlib.suppress(NotFoundError):
                self.release_lease(app, machine_id, lease.nonce)
