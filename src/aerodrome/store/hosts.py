"""The hosts table and the cluster CA: what `aerodrome agent --database` registers and serve's replicas read.

An agent upserts its row (address, capacity, certificate request) at start and moves `heartbeat_at` every few
seconds; a replica signs a row's request with the cluster CA and writes the certificate back. The CA is made by
the first replica and kept in one row, its key encrypted with the replicas' secrets key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from aerodrome.store.runner import Runner
from aerodrome.store.schema import cluster_ca, hosts

CA_ROW = 1


@dataclass(frozen=True, slots=True)
class HostRecord:
    name: str
    address: str  # https://HOST:PORT
    region: str
    cpus: int
    memory_mb: int
    disk_bytes: int
    protocol: int
    heartbeat_at: float  # the agent's wall clock, seconds since the epoch
    csr_pem: str
    certificate_pem: str | None = None


def register_host(conn: Connection, record: HostRecord) -> None:
    """The agent's row as it starts: a new request means a new key, so the old certificate goes."""
    values = {k: getattr(record, k) for k in HostRecord.__dataclass_fields__}
    moved = conn.execute(update(hosts).where(hosts.c.name == record.name).values(values))
    if moved.rowcount == 0:
        conn.execute(insert(hosts).values(values))


def heartbeat(conn: Connection, name: str, at: float) -> bool:
    """Moves the host's heartbeat; False when its row is gone."""
    return bool(conn.execute(update(hosts).where(hosts.c.name == name).values(heartbeat_at=at)).rowcount)


def list_hosts(conn: Connection) -> list[HostRecord]:
    rows = conn.execute(select(hosts).order_by(hosts.c.name)).mappings()
    return [HostRecord(**dict(row)) for row in rows]


def set_certificate(conn: Connection, name: str, csr_pem: str, certificate_pem: str) -> None:
    """The certificate for the request a replica read (not for a newer one the agent wrote meanwhile)."""
    where = (hosts.c.name == name) & (hosts.c.csr_pem == csr_pem)
    conn.execute(update(hosts).where(where).values(certificate_pem=certificate_pem))


def read_ca(conn: Connection) -> tuple[str, str] | None:
    row = conn.execute(select(cluster_ca.c.certificate_pem, cluster_ca.c.key).where(cluster_ca.c.id == CA_ROW)).first()
    return (row.certificate_pem, row.key) if row is not None else None


def ensure_ca(conn: Connection, certificate_pem: str, key: str) -> tuple[str, str]:
    """The CA already kept, else this one: of two replicas making one at once, one row wins for both."""
    kept = read_ca(conn)
    if kept is not None:
        return kept
    conn.execute(insert(cluster_ca).values(id=CA_ROW, certificate_pem=certificate_pem, key=key))
    return certificate_pem, key


class HostTable:
    """The queries above through a store's runner (SqlStore.host_table())."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def register(self, record: HostRecord) -> None:
        await self._runner.write(register_host, record)

    async def heartbeat(self, name: str, at: float) -> bool:
        return await self._runner.write(heartbeat, name, at)

    async def hosts(self) -> list[HostRecord]:
        return await self._runner.read(list_hosts)

    async def set_certificate(self, name: str, csr_pem: str, certificate_pem: str) -> None:
        await self._runner.write(set_certificate, name, csr_pem, certificate_pem)

    async def ca(self) -> tuple[str, str] | None:
        return await self._runner.read(read_ca)

    async def ensure_ca(self, certificate_pem: str, key: str) -> tuple[str, str]:
        return await self._runner.write(ensure_ca, certificate_pem, key)
