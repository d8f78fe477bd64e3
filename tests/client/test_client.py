"""`aerodrome.client` against a real `aerodrome serve` with Fly's rate limits on: typed replies, retries on 429
that honour `Retry-After`, lease conflicts and the lease helper, waits, GraphQL addresses, and the async client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from aerodrome.client import (
    NO_RETRIES,
    AsyncClient,
    Client,
    ClientSettings,
    CreateMachineRequest,
    LeaseConflictError,
    MachineConfig,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    UnauthorizedError,
    WaitTimeoutError,
)
from tests.support.server import Server, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--rate-limits") as started:
        started.push_image("busybox")
        yield started


@pytest.fixture
def settings(server: Server) -> ClientSettings:
    return ClientSettings(server.api_url, server.token)


@pytest.fixture
def client(settings: ClientSettings) -> Iterator[Client]:
    with Client(settings) as opened:
        yield opened


@pytest.fixture
def app_name(client: Client) -> Iterator[str]:
    name = f"client-{uuid.uuid4().hex[:10]}"
    assert client.create_app(name, "personal").name == name
    yield name
    client.delete_app(name)


def busybox(server: Server, **fields: object) -> CreateMachineRequest:
    return CreateMachineRequest(config=MachineConfig(image=server.image()), **fields)


class Statuses:
    """The status of every reply an httpx client received, from its event hook."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, response: httpx.Response) -> None:
        self.seen.append(response.status_code)


def test_a_burst_past_the_rate_limit_is_retried_after_retry_after(
    server: Server, settings: ClientSettings, app_name: str
) -> None:
    statuses = Statuses()
    http = httpx.Client(base_url=settings.base_url, headers=settings.headers(), event_hooks={"response": [statuses]})
    with Client(settings, http=http) as client:
        machine = client.create_machine(app_name, busybox(server, skip_launch=True))
        statuses.seen.clear()
        fetched = [client.get_machine(app_name, machine.id) for _ in range(20)]  # get: 5/s, burst 10
    assert all(m.id == machine.id and m.state == "created" for m in fetched)
    assert 429 in statuses.seen and statuses.seen.count(200) == 20
    with Client(settings, retry=NO_RETRIES) as impatient, pytest.raises(RateLimitedError) as refused:
        for _ in range(20):
            impatient.get_machine(app_name, machine.id)
    assert refused.value.status == 429 and refused.value.retry_after >= 1 and "rate limit" in refused.value.message


def test_a_held_lease_refuses_others_and_the_helper_releases_it(server: Server, client: Client, app_name: str) -> None:
    machine = client.create_machine(app_name, busybox(server))
    client.wait(app_name, machine.id, "started", timeout=60)
    with client.machine_lease(app_name, machine.id, ttl=60, description="maintenance") as lease:
        assert lease.nonce and lease.description == "maintenance"
        with pytest.raises(LeaseConflictError) as conflict:
            client.acquire_lease(app_name, machine.id)
        assert conflict.value.status == 409
        with pytest.raises(LeaseConflictError):
            client.stop_machine(app_name, machine.id)  # without the nonce
        assert client.get_lease(app_name, machine.id).nonce == lease.nonce
        client.stop_machine(app_name, machine.id, nonce=lease.nonce)
        stopped = client.wait(app_name, machine.id, "stopped", timeout=60)
        assert stopped.state == "stopped"
    with pytest.raises(NotFoundError):
        client.get_lease(app_name, machine.id)
    client.start_machine(app_name, machine.id)  # no lease held: anyone may act again


def test_waits_end_at_their_deadline_or_when_the_state_cannot_come(
    server: Server, client: Client, app_name: str
) -> None:
    machine = client.create_machine(app_name, busybox(server, skip_launch=True))
    seen: list[str] = []
    with pytest.raises(WaitTimeoutError):
        client.wait(app_name, machine.id, "started", timeout=1, poll=1, on_poll=lambda m: seen.append(m.state))
    assert seen and set(seen) == {"created"}
    client.destroy_machine(app_name, machine.id)
    with pytest.raises(PreconditionFailedError, match="destroyed"):
        client.wait(app_name, machine.id, "started", timeout=30)


def test_typed_replies_errors_and_graphql_addresses(server: Server, client: Client, app_name: str) -> None:
    app = client.get_app(app_name)
    assert app.organization.slug == "personal" and app.status
    assert app_name in [a.name for a in client.list_apps("personal")]
    with pytest.raises(NotFoundError) as missing:
        client.get_app(f"{app_name}-absent")
    assert missing.value.status == 404 and "Could not find App" in missing.value.message
    shared = client.allocate_ip(app_name, "shared_v4")
    dedicated = client.allocate_ip(app_name, "v6")
    assert shared.type == "shared_v4" and dedicated.type == "v6" and dedicated.id
    assert {ip.address for ip in client.list_ips(app_name)} == {shared.address, dedicated.address}
    client.release_ip(app_name, dedicated.address)
    assert [ip.address for ip in client.list_ips(app_name)] == [shared.address]
    with pytest.raises(NotFoundError):
        client.release_ip(app_name, dedicated.address)
    assert client.organization().slug == "personal"
    assert client.current_token().org_slug == "personal"
    with Client(ClientSettings(server.api_url, "fm2_unknown")) as stranger:
        with pytest.raises(UnauthorizedError):
            stranger.list_apps("personal")
        with pytest.raises(UnauthorizedError):
            stranger.list_ips(app_name)  # GraphQL's UNAUTHORIZED, as the same error


async def test_the_async_client_runs_the_same_operations(server: Server, settings: ClientSettings) -> None:
    name = f"client-{uuid.uuid4().hex[:10]}"
    async with AsyncClient(settings) as client:
        await client.create_app(name, "personal")
        try:
            machine = await client.create_machine(name, busybox(server))
            started = await client.wait(name, machine.id, "started", timeout=60)
            assert started.state == "started" and started.config.image.endswith("busybox:latest")
            result = await client.exec_machine(name, machine.id, ["echo", "async"])
            assert result.exit_code == 0 and result.stdout == "async\n"
            async with client.machine_lease(name, machine.id) as lease:
                with pytest.raises(LeaseConflictError):
                    await client.acquire_lease(name, machine.id)
                await client.destroy_machine(name, machine.id, force=True, nonce=lease.nonce)
            assert [m.id for m in await client.list_machines(name)] == []
        finally:
            await client.delete_app(name)


async def test_the_async_client_makes_tokens_and_organisations(settings: ClientSettings) -> None:
    slug = f"async-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(settings) as client:
        assert (await client.health()).ok is True
        made = await client.create_token("async-made")
        assert made.token.startswith("fm2_") and made.name == "async-made"
        created = await client.create_organization("Async Team", slug)
        assert created.organization.slug == slug and created.token.startswith("fm2_")
    async with AsyncClient(ClientSettings(settings.base_url, created.token)) as theirs:
        assert (await theirs.organization()).slug == slug
