"""`aerodrome agent --database URL`: the host registers itself in the hosts table and heartbeats there.

At start the agent writes its row (address, region, capacity, protocol) with a certificate request for its key
(DIR/agent.key, kept across restarts), waits until a control-plane replica has signed it with the cluster CA,
and only then answers, over mutual TLS. A restart with the same key, name and address keeps the certificate, so
an agent comes back without a replica. Every `interval` seconds it moves its heartbeat; a replica takes a host
whose heartbeat is several intervals old as unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from dataclasses import replace
from pathlib import Path

from aerodrome.agent import Identity
from aerodrome.agent.tls import PrivateKey, certificate_matches, key_pem, load_key, new_key, signing_request
from aerodrome.core import HostAgent
from aerodrome.store import HostRecord, HostTable, SqlStore

log = logging.getLogger("aerodrome.agent")
KEY_FILE = "agent.key"
HEARTBEAT_INTERVAL = 2.0
POLL = 0.2  # seconds between looks for the CA and the certificate while waiting for a replica


class Registration:
    def __init__(self, database: str, root: Path, address: str, *, interval: float = HEARTBEAT_INTERVAL) -> None:
        self.database, self.root, self.address, self.interval = database, root, address, interval
        self._store: SqlStore | None = None
        self._beating: asyncio.Task[None] | None = None
        self.name = ""

    async def start(self, agent: HostAgent) -> ssl.SSLContext:
        """Register `agent`'s host; its TLS once a replica signed it (waits for one meanwhile)."""
        self._store = await SqlStore.open(self.database)
        table = self._store.host_table()
        info = await agent.info()
        self.name = info.name
        key = read_key(self.root / KEY_FILE)
        host, _, _ = self.address.rpartition(":")
        record = HostRecord(
            name=info.name,
            address=f"https://{self.address}",
            region=info.region,
            cpus=info.cpus,
            memory_mb=info.memory_mb,
            disk_bytes=info.disk_bytes,
            protocol=info.protocol,
            heartbeat_at=time.time(),
            csr_pem=signing_request(key, info.name, (host.strip("[]"),)).decode(),
        )
        await table.register(kept_certificate(record, await table.hosts(), key))
        ca_pem, certificate_pem = await self._signed(table, key)
        self._beating = asyncio.get_running_loop().create_task(self._beat(table), name="heartbeat")
        return Identity(ca_pem.encode(), certificate_pem.encode(), key_pem(key)).server_context()

    async def _signed(self, table: HostTable, key: PrivateKey) -> tuple[str, str]:
        said = False
        while True:
            ca = await table.ca()
            mine = next((h for h in await table.hosts() if h.name == self.name), None)
            signed = mine is not None and mine.certificate_pem
            if ca is not None and mine is not None and signed and certificate_matches(signed.encode(), key):
                return ca[0], signed
            if not said:
                log.info("host %s registered; waiting for a control plane to sign its certificate", self.name)
                said = True
            await asyncio.sleep(POLL)

    async def _beat(self, table: HostTable) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if not await table.heartbeat(self.name, time.time()):
                    log.warning("host %s: its row is gone from the hosts table", self.name)
            except Exception as exc:  # the database restarting: the next beat tries again
                log.warning("host %s could not heartbeat: %s", self.name, exc)

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        if self._store is not None:
            await self._store.close()


def kept_certificate(record: HostRecord, rows: list[HostRecord], key: PrivateKey) -> HostRecord:
    """The row's certificate and request kept when they are this key's, for this name and address."""
    old = next((row for row in rows if row.name == record.name), None)
    if old is None or old.address != record.address or not old.certificate_pem:
        return record
    if not certificate_matches(old.certificate_pem.encode(), key):
        return record
    return replace(record, csr_pem=old.csr_pem, certificate_pem=old.certificate_pem)


def read_key(path: Path) -> PrivateKey:
    """The agent's TLS key: made on first start (0600), read afterwards."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as source:
            return load_key(source.read(1 << 16))
    key = new_key()
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem(key))
    return key
