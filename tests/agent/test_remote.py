"""`RemoteAgent` over real HTTP on loopback: an agent that cannot be reached, connect retries by key, a peer that
is not an agent of this protocol, and error kinds from the far side."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aerodrome.agent import AgentLimits, RemoteAgent
from aerodrome.core import (
    CapacityError,
    Deadline,
    FailedPreconditionError,
    HostState,
    HostUnreachableError,
    InsufficientStorageError,
    MachineVersionSpec,
    OutputCursor,
    PreparedVersion,
    RuntimeFailureError,
    UnauthenticatedError,
    UnavailableError,
    WaitTimeoutError,
    machine_id,
    ulid,
    volume_id,
)
from tests.support.agent_server import serving, serving_app
from tests.support.fake_agent import FakeAgent

TOKEN = secrets.token_urlsafe(32)
WAIT = 15.0  # an upper bound, never a measurement


class ConnectFails(httpx.AsyncBaseTransport):
    """A real transport whose first `failures` connections are refused, as an agent that is restarting."""

    def __init__(self, failures: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.failures = failures
        self.sent: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(await request.aread())
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def spec() -> MachineVersionSpec:
    return MachineVersionSpec(machine_id(), ulid(), "remote", 1, "registry.local/remote/app:1")


@pytest.fixture
async def fake() -> FakeAgent:
    return FakeAgent(capacity_bytes=1024**3)


@pytest.fixture
async def url(fake: FakeAgent) -> AsyncIterator[str]:
    async with serving(fake, TOKEN) as served:
        yield served


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_agent_no_one_listens_for_is_unavailable() -> None:
    remote = RemoteAgent(f"http://127.0.0.1:{closed_port()}", TOKEN, connect_attempts=2)
    try:
        with pytest.raises(HostUnreachableError, match="unreachable"):  # not delivered: nothing was done
            await remote.status(machine_id())
        with pytest.raises(HostUnreachableError, match="unreachable"):
            await remote.prepare(spec(), key=ulid(), deadline=Deadline.after(5))
    finally:
        await remote.close()


async def test_a_keyed_call_is_sent_again_after_a_refused_connection(url: str, fake: FakeAgent) -> None:
    transport = ConnectFails(failures=2)
    remote = RemoteAgent(url, TOKEN, transport=transport, connect_attempts=3)
    try:
        prepared = await remote.prepare(version := spec(), key="prepare-1", deadline=Deadline.after(10))
        assert prepared.version == version.version and fake.calls == {"prepare": 1}
        assert len(transport.sent) == 3 and len(set(transport.sent)) == 1  # the same body, the same key
        assert b'"key":"prepare-1"' in transport.sent[0]
        transport.failures = 1  # a read has no key: it is not sent again
        with pytest.raises(UnavailableError):
            await remote.status(version.machine_id)
        assert (await remote.status(version.machine_id)).state == HostState.CREATED
    finally:
        await remote.close()


async def test_a_wrong_token_is_unauthenticated(url: str) -> None:
    remote = RemoteAgent(url, TOKEN + "x")
    try:
        with pytest.raises(UnauthenticatedError):
            await remote.info()
    finally:
        await remote.close()


class FullHost(FakeAgent):
    """A host whose organisation subnet is full."""

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        raise CapacityError("every address of 172.30.0.0/20 is taken (4093)")


async def test_capacity_and_storage_errors_cross_as_themselves() -> None:
    async with serving(FullHost(capacity_bytes=1024**3), TOKEN) as url:
        remote = RemoteAgent(url, TOKEN)
        try:
            with pytest.raises(InsufficientStorageError) as full:
                await remote.create_volume(volume_id(), 2 * 1024**3, "ext4", key=ulid(), deadline=Deadline.after(5))
            assert "no space left" in full.value.message
            with pytest.raises(CapacityError) as capacity:
                await remote.prepare(spec(), key=ulid(), deadline=Deadline.after(5))
            assert capacity.value.status == "insufficient_capacity" and "4093" in capacity.value.message
        finally:
            await remote.close()


async def test_a_peer_of_another_protocol_or_none_is_refused() -> None:
    async def other(request: Request) -> JSONResponse:
        version = request.query_params.get("v")
        return JSONResponse(
            {"value": {"name": "x", "region": "y"}}, headers={"aerodrome-agent-protocol": version} if version else {}
        )

    async with serving_app(Starlette(routes=[Route("/v1/info", other)])) as url:
        for version, refusal in (("", "sends no aerodrome-agent-protocol"), ("2", "speaks aerodrome-agent-protocol 2")):
            remote = RemoteAgent(url, TOKEN)
            remote._client.params = httpx.QueryParams({"v": version} if version else {})
            try:
                with pytest.raises(FailedPreconditionError, match=refusal):
                    await remote.info()
            finally:
                await remote.close()


async def test_a_reply_that_does_not_read_is_a_runtime_failure() -> None:
    async def garbled(request: Request) -> JSONResponse:
        return JSONResponse({"value": {"nothing": 1}}, headers={"aerodrome-agent-protocol": "1"})

    async with serving_app(Starlette(routes=[Route("/v1/info", garbled)])) as url:
        remote = RemoteAgent(url, TOKEN)
        try:
            with pytest.raises(RuntimeFailureError, match="cannot read"):
                await remote.info()
        finally:
            await remote.close()


class SlowHost(FakeAgent):
    async def start(self, machine_id: str, version: str, *, key: str, deadline: Deadline) -> None:
        await asyncio.sleep(60)


async def test_a_deadline_that_runs_out_on_the_agent_is_a_wait_timeout() -> None:
    async with serving(SlowHost(), TOKEN) as url:
        remote = RemoteAgent(url, TOKEN)
        try:
            with pytest.raises(WaitTimeoutError, match="deadline passed"):
                await remote.start(machine_id(), ulid(), key=ulid(), deadline=Deadline.after(0.3))
        finally:
            await remote.close()


async def test_a_long_poll_past_the_agents_bound_returns_empty() -> None:
    async with serving(FakeAgent(), TOKEN, AgentLimits(event_wait=0.2)) as url:
        remote = RemoteAgent(url, TOKEN, timeout=WAIT)
        try:
            assert await remote.events(0, wait=3600) == []
        finally:
            await remote.close()


async def test_every_route_reaches_the_agent(url: str, fake: FakeAgent) -> None:
    remote = RemoteAgent(url, TOKEN)
    try:
        version = spec()
        await remote.prepare(version, key=ulid(), deadline=Deadline.after(5))
        await remote.start(version.machine_id, version.version, key=ulid(), deadline=Deadline.after(5))
        await remote.signal(version.machine_id, 10, deadline=Deadline.after(5))
        assert fake._machines[version.machine_id].signals == [10]
        fake.write_output(version.machine_id, b"\xffhello\n")
        chunk = await remote.read_output(version.machine_id, OutputCursor(), 3)
        assert chunk == await fake.read_output(version.machine_id, OutputCursor(), 3) and chunk.data == b"\xffhe"
        assert await remote.machines() == await fake.machines()
        assert await remote.ps(version.machine_id) == await fake.ps(version.machine_id)
        assert await remote.exec(version.machine_id, ["nothing"], None, 5, deadline=Deadline.after(5)) == (
            await fake.exec(version.machine_id, ["nothing"], None, 5, deadline=Deadline.after(5))
        )
        fake.exit(version.machine_id, 7)
        [event] = await remote.events(0)
        assert event.exit is not None and event.exit.exit_code == 7
        await remote.acknowledge(event.cursor)
        assert await fake.events(0) == []
    finally:
        await remote.close()
