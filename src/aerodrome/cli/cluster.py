"""A control plane's side of the cluster: mutual TLS to the agents, and the hosts that registered themselves.

`serve --database URL --no-local-agent` keeps the cluster CA in the database (made by the first replica, its
key encrypted with the secrets key the replicas share), signs each registered host's certificate request, and
drives every signed host through `RemoteAgent` over mutual TLS, checking that the agent's certificate names the
host. Hosts that register later are signed and added within a heartbeat period; the heartbeats themselves
feed `HostWatch`, which takes a host whose heartbeat is stale as unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.fernet import Fernet

from aerodrome.agent import ClusterCA, Identity, RemoteAgent, read_ca_file
from aerodrome.agent.tls import key_pem, load_key
from aerodrome.cli.config import HostCheckError
from aerodrome.core import AGENT_PROTOCOL_VERSION, AerodromeError, HostAgent
from aerodrome.store import HostRecord, HostTable

log = logging.getLogger("aerodrome.hosts")
JOIN_INTERVAL = 2.0  # seconds between looks for hosts to sign and to add


def control_plane_tls(ca_file: Path) -> ssl.SSLContext:
    """This control plane's side of mutual TLS: a client certificate issued by the cluster CA's file."""
    try:
        return Identity.control_plane(read_ca_file(ca_file, create=False)).client_context()
    except AerodromeError as exc:
        raise HostCheckError(exc.message) from None


async def cluster_ca(table: HostTable, secrets_key: bytes) -> ClusterCA:
    """The database's cluster CA, made here when no replica made one yet."""
    kept = await table.ca()
    if kept is None:
        made = ClusterCA.generate()
        sealed = Fernet(secrets_key).encrypt(key_pem(made.key)).decode()
        kept = await table.ensure_ca(made.certificate_pem().decode(), sealed)
    certificate_pem, sealed = kept
    try:
        key = load_key(Fernet(secrets_key).decrypt(sealed.encode()))
    except Exception:
        raise HostCheckError(
            "the database's cluster CA does not decrypt with this data directory's secrets.key: "
            "every replica needs the same secrets.key"
        ) from None
    return ClusterCA.from_pem(certificate_pem.encode() + key_pem(key), "the database's cluster CA")


async def open_registrations(table: HostTable, secrets_key: bytes, interval: float) -> Registrations:
    return Registrations(table, await cluster_ca(table, secrets_key), interval=interval)


class Registrations:
    """The registered hosts this replica signs and drives."""

    def __init__(self, table: HostTable, ca: ClusterCA, *, interval: float = JOIN_INTERVAL) -> None:
        self._table = table
        self._ca = ca
        self._tls = Identity.control_plane(ca).client_context()
        self.interval = interval
        self.agents: dict[str, RemoteAgent] = {}  # by host name
        self._task: asyncio.Task[None] | None = None

    async def sign(self) -> list[HostRecord]:
        """Signs each request not signed yet; the hosts as they are now."""
        rows = await self._table.hosts()
        for row in rows:
            if row.certificate_pem is None and row.protocol == AGENT_PROTOCOL_VERSION:
                try:
                    certificate = self._ca.sign_request(row.csr_pem.encode()).decode()
                except (AerodromeError, ValueError) as exc:
                    log.warning("host %s: its certificate request is refused: %s", row.name, exc)
                    continue
                await self._table.set_certificate(row.name, row.csr_pem, certificate)
                log.info("host %s at %s signed", row.name, row.address)
        return await self._table.hosts()

    def _new(self, rows: list[HostRecord]) -> list[RemoteAgent]:
        made = []
        for row in rows:
            if row.certificate_pem is not None and row.name not in self.agents:
                agent = RemoteAgent(row.address, tls=self._tls, server_name=row.name)
                self.agents[row.name] = agent
                made.append(agent)
        return made

    async def wait_for_hosts(self) -> list[HostAgent]:
        """The signed hosts at start; waits for a first one to register when there is none."""
        said = False
        while True:
            found = self._new(await self.sign())
            if found:
                return list(found)
            if not said:
                log.info("no host registered yet: waiting for `aerodrome agent --database …` to join")
                said = True
            await asyncio.sleep(min(self.interval, 0.5))

    async def heartbeats(self) -> Mapping[str, float]:
        return {row.name: row.heartbeat_at for row in await self._table.hosts()}

    def start(self, add: Callable[[HostAgent], object]) -> None:
        """Hosts that join later are signed and handed to `add` (the control plane's `Hosts.add`)."""
        self._task = asyncio.get_running_loop().create_task(self._join(add), name="hosts joining")

    async def _join(self, add: Callable[[HostAgent], object]) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                for agent in self._new(await self.sign()):
                    log.info("host at %s joined", agent.url)
                    add(agent)
            except AerodromeError as exc:
                log.warning("could not read the hosts table: %s", exc.message)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for agent in self.agents.values():
            await agent.close()
