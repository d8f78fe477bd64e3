"""The initial schema: every table of the store.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:38:29.096984
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("machine_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index("ix_operations_status_host", "operations", ["status", "host"], unique=False)
    op.create_index(
        "uq_operations_running_machine_action",
        "operations",
        ["machine_id", "action"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )

    op.create_table(
        "organizations",
        sa.Column("internal_numeric_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("internal_numeric_id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("id", name=op.f("uq_organizations_id")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_table(
        "apps",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("org_slug", sa.String(length=128), nullable=False),
        sa.Column("network", sa.String(length=128), nullable=False),
        sa.Column("internal_numeric_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("secrets_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_slug"], ["organizations.slug"], name=op.f("fk_apps_org_slug_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("name", name=op.f("uq_apps_name")),
    )
    op.create_index(op.f("ix_apps_org_slug"), "apps", ["org_slug"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_slug", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["org_slug"], ["organizations.slug"], name=op.f("fk_tokens_org_slug_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_tokens_secret_hash")),
    )
    op.create_index(op.f("ix_tokens_org_slug"), "tokens", ["org_slug"], unique=False)

    op.create_table(
        "ip_addresses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("app_name", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("network", sa.String(length=128), nullable=False),
        sa.Column("service_name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["app_name"], ["apps.name"], name=op.f("fk_ip_addresses_app_name_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ip_addresses")),
        sa.UniqueConstraint("address", name=op.f("uq_ip_addresses_address")),
    )
    op.create_index(op.f("ix_ip_addresses_app_name"), "ip_addresses", ["app_name"], unique=False)

    op.create_table(
        "machines",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("app_name", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("private_ip", sa.String(length=64), nullable=False),
        sa.Column("image_ref", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("cordoned", sa.Boolean(), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("lease_nonce", sa.String(length=64), nullable=True),
        sa.Column("lease_owner", sa.String(length=256), nullable=True),
        sa.Column("lease_description", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("lease_version", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["app_name"], ["apps.name"], name=op.f("fk_machines_app_name_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machines")),
    )
    op.create_index("ix_machines_app_name_deleted", "machines", ["app_name", "deleted"], unique=False)
    op.create_index("ix_machines_host", "machines", ["host"], unique=False)
    op.create_index("ix_machines_region", "machines", ["region"], unique=False)
    op.create_index("ix_machines_state", "machines", ["state"], unique=False)
    op.create_index("ix_machines_updated_at", "machines", ["updated_at"], unique=False)

    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_name", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["app_name"], ["apps.name"], name=op.f("fk_secrets_app_name_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("app_name", "name", name=op.f("uq_secrets_app_name_name")),
    )
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("app_name", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("size_gb", sa.Integer(), nullable=False),
        sa.Column("fstype", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("attached_machine_id", sa.String(length=32), nullable=True),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("snapshot_retention", sa.Integer(), nullable=False),
        sa.Column("auto_backup_enabled", sa.Boolean(), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["app_name"], ["apps.name"], name=op.f("fk_volumes_app_name_apps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
    )
    op.create_index("ix_volumes_app_name_state", "volumes", ["app_name", "state"], unique=False)
    op.create_index("ix_volumes_host", "volumes", ["host"], unique=False)

    op.create_table(
        "machine_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("machine_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], name=op.f("fk_machine_events_machine_id_machines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_events")),
    )
    op.create_index(
        "ix_machine_events_machine_id_timestamp", "machine_events", ["machine_id", "timestamp"], unique=False
    )

    op.create_table(
        "machine_versions",
        sa.Column("machine_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], name=op.f("fk_machine_versions_machine_id_machines")),
        sa.PrimaryKeyConstraint("machine_id", "version", name=op.f("pk_machine_versions")),
    )
    op.create_table(
        "volume_snapshots",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("volume_id", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("volume_size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"], name=op.f("fk_volume_snapshots_volume_id_volumes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_snapshots")),
    )
    op.create_index(op.f("ix_volume_snapshots_volume_id"), "volume_snapshots", ["volume_id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; children go before the tables they reference.
    op.drop_table("volume_snapshots")
    op.drop_table("machine_versions")
    op.drop_table("machine_events")
    op.drop_table("volumes")
    op.drop_table("secrets")
    op.drop_table("machines")
    op.drop_table("ip_addresses")
    op.drop_table("tokens")
    op.drop_table("apps")
    op.drop_table("organizations")
    op.drop_table("operations")
