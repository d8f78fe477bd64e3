"""Mutual TLS between a control plane and an agent, over real TLS on loopback: the cluster CA's certificates
pass both ways, and a wrong CA, a wrong host name or no client certificate is refused with a clear error."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aerodrome.agent import ClusterCA, Identity, RemoteAgent, read_ca_file
from aerodrome.core import HostUnreachableError, InvalidArgumentError
from tests.support.agent_server import serving
from tests.support.fake_agent import FakeAgent

CA = ClusterCA.generate()


@pytest.fixture
async def url() -> AsyncIterator[str]:
    tls = Identity.agent(CA, "host-a", ("127.0.0.1",)).server_context()
    async with serving(FakeAgent(name="host-a"), None, tls=tls) as served:
        yield served


async def info_name(agent: RemoteAgent) -> str:
    try:
        return (await agent.info()).name
    finally:
        await agent.close()


async def test_the_cluster_ca_s_certificates_pass_both_ways(url: str) -> None:
    tls = Identity.control_plane(CA).client_context()
    assert await info_name(RemoteAgent(url, tls=tls, server_name="host-a")) == "host-a"
    assert await info_name(RemoteAgent(url, tls=tls)) == "host-a"  # the address is in the certificate too


async def test_an_agent_of_another_ca_is_refused(url: str) -> None:
    tls = Identity.control_plane(ClusterCA.generate()).client_context()
    with pytest.raises(HostUnreachableError, match=r"TLS with the agent at .* failed: .*certificate verify failed"):
        await info_name(RemoteAgent(url, tls=tls, server_name="host-a"))


async def test_an_agent_whose_certificate_names_another_host_is_refused(url: str) -> None:
    tls = Identity.control_plane(CA).client_context()
    with pytest.raises(HostUnreachableError, match=r"TLS with the agent .*not valid for 'host-b'"):
        await info_name(RemoteAgent(url, tls=tls, server_name="host-b"))


async def test_a_client_without_a_certificate_is_refused(url: str) -> None:
    context = ssl.create_default_context(cadata=CA.certificate_pem().decode())
    with pytest.raises(
        HostUnreachableError,
        match=r"TLS with the agent at .* failed: the agent ended the handshake: it takes no certificate",
    ):
        await info_name(RemoteAgent(url, tls=context, server_name="host-a"))


async def test_a_client_of_another_ca_is_refused(url: str) -> None:
    other = Identity.control_plane(ClusterCA.generate())
    context = Identity(CA.certificate_pem(), other.certificate_pem, other.key_pem).client_context()
    with pytest.raises(
        HostUnreachableError, match="the agent ended the handshake: it takes no certificate this side offers"
    ):
        await info_name(RemoteAgent(url, tls=context, server_name="host-a"))


async def test_an_agent_s_own_certificate_does_not_pass_as_a_control_plane_s(url: str) -> None:
    agent_identity = Identity.agent(CA, "host-b", ("127.0.0.1",))
    context = Identity(CA.certificate_pem(), agent_identity.certificate_pem, agent_identity.key_pem).client_context()
    with pytest.raises(
        HostUnreachableError, match="the agent ended the handshake: it takes no certificate this side offers"
    ):
        await info_name(RemoteAgent(url, tls=context, server_name="host-a"))


async def test_plain_http_to_a_tls_agent_gets_no_answer(url: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(url.replace("https://", "http://") + "/v1/info")


def test_the_ca_file_is_made_once_and_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "cluster-ca.pem"
    made = read_ca_file(path, create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_ca_file(path, create=False).certificate == made.certificate
    path.chmod(0o644)
    with pytest.raises(InvalidArgumentError, match="chmod 600"):
        read_ca_file(path, create=False)
    with pytest.raises(InvalidArgumentError, match="cannot read the cluster CA"):
        read_ca_file(tmp_path / "missing.pem", create=False)
