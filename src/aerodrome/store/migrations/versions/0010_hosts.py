"""Hosts register themselves (`aerodrome agent --database`), and the cluster CA that signs their certificates.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.BigInteger(), nullable=False),
        sa.Column("disk_bytes", sa.BigInteger(), nullable=False),
        sa.Column("protocol", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.Column("csr_pem", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hosts")),
    )
    op.create_table(
        "cluster_ca",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_ca")),
    )


def downgrade() -> None:
    op.drop_table("cluster_ca")
    op.drop_table("hosts")
