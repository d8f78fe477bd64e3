"""The one schema, as SQLAlchemy Core tables. Alembic's migrations must match it (a test compares them).

Timestamps the API shows are RFC 3339 strings, stored as given so they round-trip exactly; times the store
compares or sorts by number (event time, lease expiry, run-log times) are integers. Every row a host owns
names that host, so several hosts can share one PostgreSQL database later.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Stable constraint names: Alembic needs them to alter or drop constraints on any engine.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = Table(
    "organizations",
    metadata,
    Column("internal_numeric_id", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("slug", String(128), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_slug", String(128), ForeignKey("organizations.slug"), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("secret_hash", String(128), nullable=False, unique=True),
    Column("created_at", String(40), nullable=False),
    Column("last_used_at", String(40), nullable=True),
    Column("revoked_at", String(40), nullable=True),
    Column("app_name", String(128), nullable=True),
    Column("expires_at", BigInteger, nullable=True),
)

apps = Table(
    "apps",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("org_slug", String(128), ForeignKey("organizations.slug"), nullable=False, index=True),
    Column("network", String(128), nullable=False),
    Column("internal_numeric_id", BigInteger, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("status", String(32), nullable=False),
    # Bumped by every put_secrets: the version machines compare against to know their secrets are stale.
    Column("secrets_version", Integer, nullable=False),
)

machines = Table(
    "machines",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("app_name", String(128), ForeignKey("apps.name"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("region", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("instance_id", String(32), nullable=False),
    Column("config", JSON, nullable=False),
    Column("private_ip", String(64), nullable=False),
    Column("private_ipv4", String(64), nullable=False, server_default=""),
    Column("image_ref", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("host", String(128), nullable=False),
    Column("cordoned", Boolean, nullable=False),
    Column("restart_count", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("lease_nonce", String(64)),
    Column("lease_owner", String(256)),
    Column("lease_description", Text),
    Column("lease_expires_at", BigInteger),
    Column("lease_version", String(32)),
    # Bumped by every write of the row; a write that names another than the row's is refused (compare-and-set).
    Column("row_version", Integer, nullable=False, server_default="0"),
    Index("ix_machines_app_name_deleted", "app_name", "deleted"),
    Index("ix_machines_state", "state"),
    Index("ix_machines_region", "region"),
    Index("ix_machines_updated_at", "updated_at"),
    Index("ix_machines_host", "host"),
)

machine_versions = Table(
    "machine_versions",
    metadata,
    Column("machine_id", String(32), ForeignKey("machines.id"), primary_key=True),
    Column("version", String(32), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
)

machine_events = Table(
    "machine_events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("machine_id", String(32), ForeignKey("machines.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("timestamp", BigInteger, nullable=False),  # milliseconds since the epoch
    Column("request", JSON, nullable=False),
    Index("ix_machine_events_machine_id_timestamp", "machine_id", "timestamp"),
)

# A machine's output and aerodrome's own lines about it; `id` is the logs API's paging token. No foreign key:
# a destroyed machine's lines stay readable until their age or the machine's size bound removes them.
machine_logs = Table(
    "machine_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("machine_id", String(32), nullable=False),
    Column("app_name", String(255), nullable=False),
    Column("region", String(16), nullable=False),
    Column("timestamp", BigInteger, nullable=False),  # microseconds since the epoch
    Column("level", String(16), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("bytes", Integer, nullable=False),
    Index("ix_machine_logs_app_name_id", "app_name", "id"),
    Index("ix_machine_logs_machine_id_id", "machine_id", "id"),
    Index("ix_machine_logs_timestamp", "timestamp"),
    sqlite_autoincrement=True,  # never reuse the id of a deleted newest line: a token past it would skip lines
)

# How far each machine's output file was read into machine_logs.
machine_output = Table(
    "machine_output",
    metadata,
    Column("machine_id", String(32), primary_key=True),
    Column("file", String(64), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("stored", BigInteger, nullable=False),  # bytes of its output lines stored, at most (trims are exact)
)

# How far the control plane has recorded each host agent's event stream (`HostAgent.events`).
agent_cursors = Table(
    "agent_cursors",
    metadata,
    Column("agent", String(128), primary_key=True),
    Column("cursor", BigInteger, nullable=False),
)

# The hosts that registered themselves (`aerodrome agent --database`): where each answers, what it has, when it
# last said it is alive (its wall clock, seconds), its certificate request and the certificate a replica signed.
hosts = Table(
    "hosts",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("address", String(300), nullable=False),  # https://HOST:PORT
    Column("region", String(32), nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("memory_mb", BigInteger, nullable=False),
    Column("disk_bytes", BigInteger, nullable=False),
    Column("protocol", Integer, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("csr_pem", Text, nullable=False),
    Column("certificate_pem", Text, nullable=True),
)

# The cluster CA (one row): its certificate, and its key (Fernet-encrypted with serve's secrets key).
cluster_ca = Table(
    "cluster_ca",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("certificate_pem", Text, nullable=False),
    Column("key", Text, nullable=False),
)

volumes = Table(
    "volumes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("app_name", String(128), ForeignKey("apps.name"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("region", String(16), nullable=False),
    Column("size_gb", Integer, nullable=False),
    Column("fstype", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("attached_machine_id", String(32)),
    Column("encrypted", Boolean, nullable=False),
    Column("snapshot_retention", Integer, nullable=False),
    Column("auto_backup_enabled", Boolean, nullable=False),
    Column("host", String(128), nullable=False),
    Index("ix_volumes_app_name_state", "app_name", "state"),
    Index("ix_volumes_host", "host"),
)

volume_snapshots = Table(
    "volume_snapshots",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("volume_id", String(32), ForeignKey("volumes.id"), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("volume_size", BigInteger, nullable=False),
    Column("digest", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("retention_days", Integer, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app_name", String(128), ForeignKey("apps.name"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("digest", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    UniqueConstraint("app_name", "name"),
)

ip_addresses = Table(
    "ip_addresses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("app_name", String(128), ForeignKey("apps.name"), nullable=False, index=True),
    Column("address", String(64), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("region", String(16), nullable=False),
    Column("network", String(128), nullable=False),
    Column("service_name", String(128), nullable=False),
    Column("created_at", String(40), nullable=False),
)

# Custom hostnames: one row per hostname, holding the certificate the edge serves for it. Rows go with their app.
certificates = Table(
    "certificates",
    metadata,
    Column("hostname", String(253), primary_key=True),
    Column("app_name", String(128), ForeignKey("apps.name", ondelete="CASCADE"), nullable=False, index=True),
    Column("source", String(16), nullable=False),
    Column("fullchain", Text, nullable=False),
    Column("key_ciphertext", LargeBinary, nullable=False),
    Column("acme_requested", Boolean, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

releases = Table(
    "releases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("app_name", String(128), ForeignKey("apps.name", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("image_ref", Text, nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("user", String(256), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    UniqueConstraint("app_name", "version"),
)

secret_keys = Table(
    "secret_keys",
    metadata,
    Column("app_name", String(128), ForeignKey("apps.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("key_ciphertext", LargeBinary, nullable=False),
    Column("created_at", String(40), nullable=False),
)

# Rate-limit buckets shared by the replicas of a PostgreSQL database (store/buckets.py); SQLite's one process
# keeps them in memory and leaves this table empty.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("refreshed_at", Float, nullable=False),
    Column("granted", Boolean, nullable=False),
)
