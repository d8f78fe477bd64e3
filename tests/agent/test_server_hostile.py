"""`aerodrome agent`'s server against hostile or broken peers: every refusal in the wire shape, never a bare 500."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from aerodrome.agent import AgentLimits, ensure_token
from aerodrome.agent.wire import PROTOCOL_HEADER
from aerodrome.core import Deadline, InvalidArgumentError, MachineVersionSpec, PreparedVersion, machine_id
from tests.support.agent_server import serving
from tests.support.fake_agent import FakeAgent

TOKEN = secrets.token_urlsafe(32)
HEADERS = {"authorization": f"Bearer {TOKEN}", PROTOCOL_HEADER: "1"}
LIMITS = AgentLimits(body_bytes=4096)


class SlowAgent(FakeAgent):
    """Takes as long as it is given to prepare; or fails as a bug would."""

    async def prepare(self, spec: MachineVersionSpec, *, key: str, deadline: Deadline) -> PreparedVersion:
        if spec.app_name == "bug":
            raise ValueError("a bug in the agent")
        await asyncio.sleep(60)
        return await super().prepare(spec, key=key, deadline=deadline)


@pytest.fixture
async def agent() -> SlowAgent:
    return SlowAgent()


@pytest.fixture
async def client(agent: SlowAgent) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(agent, TOKEN, LIMITS) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


def error_of(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers[PROTOCOL_HEADER] == "1"
    error = orjson.loads(response.content)["error"]
    assert error["kind"] == kind, error
    return str(error["message"])


def prepare_body(deadline: float, **fields: object) -> bytes:
    spec = {"machine_id": "148e21ea7e3389", "version": "v1", "app_name": "app", "org_network_id": 1, "image": "i"}
    return orjson.dumps({"spec": spec | fields, "key": "k1", "deadline": {"at": deadline}})


async def test_no_token_or_a_wrong_one_is_refused(client: httpx.AsyncClient) -> None:
    authorizations: tuple[str | bytes | None, ...] = (
        None,
        "",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        TOKEN,
        "Bearer \xe9t\xe9".encode("latin-1"),
    )
    for authorization in authorizations:
        headers: dict[str, str | bytes] = {PROTOCOL_HEADER: "1"}
        if authorization is not None:
            headers["authorization"] = authorization
        response = await client.get("/v1/info", headers=headers)  # type: ignore[arg-type]
        error_of(response, 401, "UnauthenticatedError")
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/v1/info", headers=HEADERS)).status_code == 200


async def test_another_protocol_version_is_refused(client: httpx.AsyncClient) -> None:
    for spoken in ("2", "0", "1.0"):
        response = await client.get("/v1/info", headers=HEADERS | {PROTOCOL_HEADER: spoken})
        assert "speaks aerodrome-agent-protocol" in error_of(response, 412, "FailedPreconditionError")
    response = await client.get("/v1/info", headers={"authorization": HEADERS["authorization"]})
    assert "sends no aerodrome-agent-protocol" in error_of(response, 412, "FailedPreconditionError")


async def test_a_body_over_the_limit_is_refused_unread(client: httpx.AsyncClient, agent: SlowAgent) -> None:
    path = "/v1/machines/148e21ea7e3389/prepare"
    response = await client.post(path, headers=HEADERS, content=b"{" + b" " * 10_000 + b"}")
    assert "over 4096 bytes" in error_of(response, 413, "InvalidArgumentError")

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post(path, headers=HEADERS, content=chunked())
    error_of(response, 413, "InvalidArgumentError")
    assert agent.calls == {}


async def test_bad_json_and_bad_fields_are_400(client: httpx.AsyncClient) -> None:
    path = "/v1/machines/148e21ea7e3389"
    for body in (b"{not json", b"[]", b"null", b'{"version": 1}', b"\xff\xfe", b""):
        error_of(await client.post(f"{path}/start", headers=HEADERS, content=body), 400, "InvalidArgumentError")
    bad = orjson.dumps({"signal": 99, "timeout": -1, "key": "k", "deadline": {"at": 9e9}})
    assert "signal" in error_of(
        await client.post(f"{path}/stop", headers=HEADERS, content=bad), 400, "InvalidArgumentError"
    )
    other_machine = prepare_body(9e9, machine_id=machine_id())
    response = await client.post(f"{path}/prepare", headers=HEADERS, content=other_machine)
    assert "machine of the path" in error_of(response, 400, "InvalidArgumentError")


async def test_bad_ids_and_queries_are_400(client: httpx.AsyncClient) -> None:
    for path in ("/v1/machines/-dash", "/v1/machines/" + "a" * 200, "/v1/volumes/..x/usage"):
        error_of(await client.get(path, headers=HEADERS), 400, "InvalidArgumentError")
    for query in ("after=abc", "after=-1", "limit=0", "wait=nan", "wait=inf", "wait=-1", "after=" + "9" * 30):
        error_of(await client.get(f"/v1/events?{query}", headers=HEADERS), 400, "InvalidArgumentError")


async def test_unknown_routes_and_methods_answer_in_the_wire_shape(client: httpx.AsyncClient) -> None:
    error_of(await client.get("/v1/nothing", headers=HEADERS), 404, "NotFoundError")
    error_of(await client.delete("/v1/machines", headers=HEADERS), 405, "InvalidArgumentError")


async def test_a_deadline_already_past_acts_not(client: httpx.AsyncClient, agent: SlowAgent) -> None:
    response = await client.post("/v1/machines/148e21ea7e3389/prepare", headers=HEADERS, content=prepare_body(1.0))
    assert "had passed" in error_of(response, 408, "WaitTimeoutError")
    assert agent.calls == {} and await agent.machines() == []


async def test_a_deadline_that_runs_out_cuts_the_call_off(client: httpx.AsyncClient) -> None:
    deadline = Deadline.after(0.3).at
    response = await client.post("/v1/machines/148e21ea7e3389/prepare", headers=HEADERS, content=prepare_body(deadline))
    assert "passed while" in error_of(response, 408, "WaitTimeoutError")


async def test_a_failure_of_the_agent_is_a_runtime_failure_in_the_wire_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/machines/148e21ea7e3389/prepare", headers=HEADERS, content=prepare_body(9e9, app_name="bug")
    )
    assert "a bug in the agent" in error_of(response, 500, "RuntimeFailureError")


async def test_a_head_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/info", headers=HEADERS | {"x-padding": "p" * 100_000})
    assert "headers are over" in error_of(response, 431, "InvalidArgumentError")


def test_the_token_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "agent.token"
    token = ensure_token(path)
    assert len(token) >= 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert ensure_token(path) == token
    os.chmod(path, 0o644)
    with pytest.raises(InvalidArgumentError, match="chmod 600"):
        ensure_token(path)
    link = tmp_path / "link.token"
    link.symlink_to(path)
    with pytest.raises(OSError):
        ensure_token(link)
    (tmp_path / "short.token").write_text("x")
    os.chmod(tmp_path / "short.token", 0o600)
    with pytest.raises(InvalidArgumentError, match="holds no token"):
        ensure_token(tmp_path / "short.token")
