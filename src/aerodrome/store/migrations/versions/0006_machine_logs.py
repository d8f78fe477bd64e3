"""Machine logs: each machine's output and aerodrome's own lines about it, and how far its output was read.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "machine_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.String(length=32), nullable=False),
        sa.Column("app_name", sa.String(length=255), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_logs")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_machine_logs_app_name_id", "machine_logs", ["app_name", "id"])
    op.create_index("ix_machine_logs_machine_id_id", "machine_logs", ["machine_id", "id"])
    op.create_index("ix_machine_logs_timestamp", "machine_logs", ["timestamp"])
    op.create_table(
        "machine_output",
        sa.Column("machine_id", sa.String(length=32), nullable=False),
        sa.Column("file", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("stored", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("machine_id", name=op.f("pk_machine_output")),
    )


def downgrade() -> None:
    op.drop_table("machine_output")
    op.drop_index("ix_machine_logs_timestamp", table_name="machine_logs")
    op.drop_index("ix_machine_logs_machine_id_id", table_name="machine_logs")
    op.drop_index("ix_machine_logs_app_name_id", table_name="machine_logs")
    op.drop_table("machine_logs")
